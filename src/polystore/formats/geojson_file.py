"""``.geojson``: points and shapes as a GeoJSON FeatureCollection (RFC 7946).

Positions are ``[x, y]`` in pixels. A point is a ``Point`` feature; a polygon,
rectangle or ellipse is a ``Polygon`` (its ring closed, as GeoJSON wants); a
path or line is a ``LineString``. Properties are the feature's
``properties``. polystore's own data rides in foreign members named
``polystore``: on the collection ``{"version": 1, "kind", "axes", "properties"}``
(the property names, kept for an empty collection) and on a
feature ``{"shape_type", "plane"}`` (the values of the axes before ``y, x``),
so a round trip returns an equal object. GeoJSON written elsewhere loads with
axes ``y, x``: Point features as Points, the others as Shapes (polygons
without holes; ``kind=`` picks one from a file that holds both).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from polystore.annotations import InvalidAnnotationError, Points, Shapes
from polystore.annotations._model import plane_of, rows_to_columns
from polystore.formats._codec import Codec, data_type_error

VERSION = 1
_MEMBER = "polystore"


def _value(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def _row(annotation: Points | Shapes, i: int) -> dict[str, Any]:
    return {k: _value(v[i]) for k, v in annotation.properties.items()}


def _feature(geometry: dict[str, Any], properties: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    return {"type": "Feature", "geometry": geometry, "properties": properties, _MEMBER: extra}


def to_geojson(annotation: Points | Shapes) -> dict[str, Any]:
    """The GeoJSON FeatureCollection (a dict) of ``annotation``."""
    axes = list(annotation.axes)
    features = []
    if isinstance(annotation, Points):
        for i, point in enumerate(annotation.data):
            plane = plane_of(point[None, :], axes, f"Points: point {i}")
            geometry = {"type": "Point", "coordinates": [float(point[-1]), float(point[-2])]}
            features.append(_feature(geometry, _row(annotation, i), {"plane": list(plane)}))
    else:
        for i, (vertices, kind) in enumerate(zip(annotation.data, annotation.shape_types)):
            plane = plane_of(vertices, axes, f"Shapes: shape {i} ({kind})")
            xy = vertices[:, [-1, -2]].tolist()
            if kind in ("path", "line"):
                geometry = {"type": "LineString", "coordinates": xy}
            else:
                geometry = {"type": "Polygon", "coordinates": [[*xy, xy[0]]]}
            features.append(_feature(geometry, _row(annotation, i), {"shape_type": kind, "plane": list(plane)}))
    return {
        "type": "FeatureCollection",
        _MEMBER: {"version": VERSION, "kind": annotation.kind, "axes": axes, "properties": list(annotation.properties)},
        "features": features,
    }


def _vertices(feature: dict[str, Any], index: int) -> tuple[np.ndarray[Any, Any], str]:
    geometry: dict[str, Any] = feature.get("geometry") or {}
    gtype: Any = geometry.get("type")
    coords: Any = geometry.get("coordinates")
    if gtype == "Point":
        return np.asarray([coords], dtype=np.float64), "point"
    if gtype == "LineString":
        return np.asarray(coords, dtype=np.float64), "path"
    if gtype == "Polygon":
        if len(coords) != 1:
            raise InvalidAnnotationError(f"GeoJSON: feature {index} is a polygon with holes, which Shapes cannot hold")
        ring = np.asarray(coords[0], dtype=np.float64)
        return (ring[:-1] if len(ring) > 1 and np.array_equal(ring[0], ring[-1]) else ring), "polygon"
    raise InvalidAnnotationError(f"GeoJSON: feature {index} has geometry {gtype!r}; Point, LineString and Polygon load")


def from_geojson(document: Any, kind: str | None = None) -> Points | Shapes:
    """The Points or Shapes of a GeoJSON FeatureCollection (a dict); see the module doc."""
    if not isinstance(document, dict) or document.get("type") != "FeatureCollection":
        raise InvalidAnnotationError("GeoJSON: expected a FeatureCollection")
    header: dict[str, Any] = document[_MEMBER] if isinstance(document.get(_MEMBER), dict) else {}
    if int(header.get("version", VERSION)) > VERSION:
        raise InvalidAnnotationError(
            f"GeoJSON: written by a newer polystore (version {header['version']}, this one reads {VERSION}); upgrade polystore"
        )
    axes = [str(a) for a in header.get("axes", ["y", "x"])]
    parsed = [(*_vertices(f, i), f) for i, f in enumerate(document.get("features") or [])]
    points = [p for p in parsed if p[1] == "point"]
    shapes = [p for p in parsed if p[1] != "point"]
    if kind is None:
        if points and shapes:
            raise InvalidAnnotationError("GeoJSON: holds points and shapes; load with kind='points' or kind='shapes'")
        kind = header.get("kind") or ("points" if points else "shapes")
    chosen = points if kind == "points" else shapes
    blocks: list[np.ndarray[Any, Any]] = []
    types: list[str] = []
    rows: list[dict[str, Any]] = []
    for xy, gtype, feature in chosen:
        extra: dict[str, Any] = feature[_MEMBER] if isinstance(feature.get(_MEMBER), dict) else {}
        plane = list(extra.get("plane", [0.0] * (len(axes) - 2)))
        full = np.empty((len(xy), len(axes)), dtype=np.float64)
        full[:, :-2] = plane
        full[:, -2], full[:, -1] = xy[:, 1], xy[:, 0]
        blocks.append(full)
        types.append(str(extra.get("shape_type", gtype)))
        rows.append(feature.get("properties") or {})
    columns = rows_to_columns(rows) if rows else {str(n): [] for n in header.get("properties", [])}
    if kind == "points":
        data = np.concatenate(blocks) if blocks else np.empty((0, len(axes)))
        return Points(data, properties=columns, axes=axes)
    return Shapes(blocks, shape_type=types, properties=columns, axes=axes)


class GeoJsonCodec(Codec):
    """GeoJSON FeatureCollections of points or shapes."""

    name = "GeoJSON"
    extensions = (".geojson",)
    kinds = frozenset({"points", "shapes"})

    def write(self, data: Any, path: str, metadata: dict[str, Any] | None, **kwargs: Any) -> None:
        """Write Points or Shapes as a FeatureCollection."""
        if not isinstance(data, (Points, Shapes)):
            raise data_type_error(self, "polystore.annotations Points or Shapes", data)
        import json

        document = to_geojson(data)
        with open(path, "w", encoding="utf-8") as handle:
            json.dump(document, handle, allow_nan=False)

    def read(self, path: str, **kwargs: Any) -> Any:
        """Return the Points or Shapes in the file (``kind=`` to pick one of a mix)."""
        import json

        with open(path, encoding="utf-8") as handle:
            return from_geojson(json.load(handle), kind=kwargs.get("kind"))
