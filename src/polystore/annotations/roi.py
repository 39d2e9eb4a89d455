"""Conversions between annotations and ImageJ ROIs (``roifile.ImagejRoi``).

ImageJ ROIs are 2-D: the last two axes must be ``y`` and ``x`` and any other
axis must be ``t``, ``c`` or ``z``, constant over one shape (its plane,
stored as the ROI's 1-based ``t/c/z_position``). Coordinates are stored as
ImageJ's sub-pixel float32. Shape types map to ROI types: polygon -> POLYGON,
path -> POLYLINE, line -> LINE, rectangle -> RECT, ellipse -> OVAL (both
axis-aligned; a rotated one is refused). Points become POINT ROIs, one per run
of consecutive points in the same plane. Each ROI's ImageJ properties hold a
``polystore`` entry (JSON: axes and the properties of its shape or points), so
a round trip gives back the same object; a property called ``name`` is also
the ROI's name. Needs ``roifile`` (``pip install "polystore[roi]"``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from polystore.annotations._model import Points, Shapes, plane_of, rows_to_columns
from polystore.exceptions import InvalidAnnotationError, MissingDependencyError

__all__ = ["to_rois", "from_rois", "import_roifile", "PLANE_AXES"]

#: Axes an ImageJ ROI can sit in besides ``y`` and ``x``.
PLANE_AXES = ("t", "c", "z")
_PROP = "polystore"


def import_roifile() -> Any:
    """The ``roifile`` module, or :class:`MissingDependencyError` naming the ``roi`` extra."""
    try:
        import roifile
    except ImportError as exc:
        raise MissingDependencyError("roifile", "roi", "ImageJ ROI files (.roi, .roi.zip)") from exc
    return roifile


def _plane(vertices: np.ndarray[Any, Any], axes: Sequence[str], what: str) -> dict[str, int]:
    values = plane_of(vertices, axes, what)
    plane: dict[str, int] = {}
    for name, value in zip(axes[:-2], values):
        if name not in PLANE_AXES:
            raise InvalidAnnotationError(f"{what}: ImageJ ROIs know only the axes t, c, z, y, x, not {name!r}")
        if value != int(value) or value < 0:
            raise InvalidAnnotationError(
                f"{what}: axis {name!r} must be one non-negative integer index per ROI (its plane)"
            )
        plane[name] = int(value)
    return plane


def _json_value(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def _new_roi(roifile: Any, xy: np.ndarray[Any, Any], roitype: Any, plane: dict[str, int], name: str) -> Any:
    roi = roifile.ImagejRoi.frompoints(xy.astype(np.float64), name=name, c=plane.get("c"), z=plane.get("z"), t=plane.get("t"))
    roi.roitype = roitype
    return roi


def _box(roifile: Any, xy: np.ndarray[Any, Any], roitype: Any, what: str) -> Any:
    xs, ys = np.unique(xy[:, 0]), np.unique(xy[:, 1])
    corners = {(float(x), float(y)) for x, y in xy}
    expected = {(float(x), float(y)) for x in (xs[0], xs[-1]) for y in (ys[0], ys[-1])}
    if len(xs) > 2 or len(ys) > 2 or corners != expected:
        raise InvalidAnnotationError(f"{what}: ImageJ stores only axis-aligned boxes; save it as a polygon")
    roi = roifile.ImagejRoi()
    roi.roitype = roitype
    roi.version = 228
    roi.options |= roifile.ROI_OPTIONS.SUB_PIXEL_RESOLUTION
    roi.xd, roi.yd = float(xs[0]), float(ys[0])
    roi.widthd, roi.heightd = float(xs[-1] - xs[0]), float(ys[-1] - ys[0])
    roi.left, roi.top = int(np.floor(xs[0])), int(np.floor(ys[0]))
    roi.right, roi.bottom = int(np.ceil(xs[-1])), int(np.ceil(ys[-1]))
    return roi


def _shape_roi(roifile: Any, vertices: np.ndarray[Any, Any], kind: str, plane: dict[str, int], name: str, what: str) -> Any:
    types = roifile.ROI_TYPE
    xy = vertices[:, [-1, -2]]
    if kind in ("polygon", "path"):
        return _new_roi(roifile, xy, types.POLYGON if kind == "polygon" else types.POLYLINE, plane, name)
    if kind == "line":
        roi = _new_roi(roifile, xy, types.LINE, plane, name)
        roi.x1, roi.y1, roi.x2, roi.y2 = (float(v) for v in (*xy[0], *xy[1]))
        roi.subpixel_coordinates = None
        roi.integer_coordinates = None
        roi.n_coordinates = 0
        return roi
    roi = _box(roifile, xy, types.RECT if kind == "rectangle" else types.OVAL, what)
    roi.name = name
    for axis in PLANE_AXES:
        if axis in plane:
            setattr(roi, f"{axis}_position", plane[axis] + 1)
    return roi


def to_rois(annotation: Points | Shapes) -> list[Any]:
    """ImageJ ROIs (``roifile.ImagejRoi``) for ``annotation``; see the module doc for the mapping."""
    import json

    roifile = import_roifile()
    axes = list(annotation.axes)
    rois: list[Any] = []
    if isinstance(annotation, Shapes):
        names = annotation.properties.get("name")
        for i, (vertices, kind) in enumerate(zip(annotation.data, annotation.shape_types)):
            what = f"Shapes: shape {i} ({kind})"
            plane = _plane(vertices, axes, what)
            name = str(names[i]) if names is not None else f"{i + 1:04d}"
            roi = _shape_roi(roifile, vertices, kind, plane, name, what)
            row = {k: _json_value(v[i]) for k, v in annotation.properties.items()}
            roi.properties = {_PROP: json.dumps({"axes": axes, "shape_type": kind, "properties": row})}
            rois.append(roi)
        return rois
    if not isinstance(annotation, Points):
        raise InvalidAnnotationError(f"ImageJ ROIs hold points and shapes, not {type(annotation).__name__}")
    data = annotation.data
    start = 0
    while start < len(data):
        plane = _plane(data[start : start + 1], axes, f"Points: point {start}")
        stop = start + 1
        lead = data[start, :-2]
        while stop < len(data) and np.array_equal(data[stop, :-2], lead):
            stop += 1
        roi = _new_roi(roifile, data[start:stop, [-1, -2]], roifile.ROI_TYPE.POINT, plane, f"points-{start + 1:04d}")
        columns = {k: [_json_value(x) for x in v[start:stop]] for k, v in annotation.properties.items()}
        roi.properties = {_PROP: json.dumps({"axes": axes, "properties": columns})}
        rois.append(roi)
        start = stop
    return rois


def _xy(roi: Any, roifile: Any) -> np.ndarray[Any, Any]:
    types = roifile.ROI_TYPE
    if roi.roitype in (types.RECT, types.OVAL):
        if roi.subpixelrect:
            x0, y0, x1, y1 = roi.xd, roi.yd, roi.xd + roi.widthd, roi.yd + roi.heightd
        else:
            x0, y0, x1, y1 = roi.left, roi.top, roi.right, roi.bottom
        return np.array([[x0, y0], [x1, y0], [x1, y1], [x0, y1]], dtype=np.float64)
    return np.asarray(roi.coordinates(), dtype=np.float64)


_SHAPE_OF = {"POLYGON": "polygon", "FREEHAND": "polygon", "TRACED": "polygon", "POLYLINE": "path",
             "FREELINE": "path", "ANGLE": "path", "LINE": "line", "RECT": "rectangle", "OVAL": "ellipse"}


def _stored(roi: Any) -> dict[str, Any]:
    import json

    props = roi.properties if isinstance(roi.properties, dict) else {}
    try:
        stored = json.loads(props.get(_PROP, "{}"))
    except ValueError:
        return {}
    return stored if isinstance(stored, dict) else {}


def _axes_of(rois: Sequence[Any], stored: dict[str, Any]) -> list[str]:
    if isinstance(stored.get("axes"), list):
        return [str(a) for a in stored["axes"]]
    used = [a for a in PLANE_AXES if any(getattr(r, f"{a}_position", 0) for r in rois)]
    return [*used, "y", "x"]


def _with_plane(xy: np.ndarray[Any, Any], roi: Any, axes: Sequence[str]) -> np.ndarray[Any, Any]:
    out = np.empty((len(xy), len(axes)), dtype=np.float64)
    for k, name in enumerate(axes[:-2]):
        out[:, k] = max(int(getattr(roi, f"{name}_position", 0) or 0) - 1, 0)
    out[:, -2], out[:, -1] = xy[:, 1], xy[:, 0]
    return out


def from_rois(rois: Any, kind: str | None = None) -> Points | Shapes:
    """The :class:`Points` or :class:`Shapes` held by ImageJ ROIs (one ROI or a list).

    ``kind="points"`` or ``"shapes"`` keeps only those ROIs; without it a
    mix of point and shape ROIs is refused.
    """
    roifile = import_roifile()
    items: list[Any] = [rois] if isinstance(rois, roifile.ImagejRoi) else list(rois)
    point_type = roifile.ROI_TYPE.POINT
    points = [r for r in items if r.roitype == point_type]
    shapes = [r for r in items if r.roitype != point_type]
    if kind is None:
        if points and shapes:
            raise InvalidAnnotationError(
                f"ImageJ ROIs: {len(points)} point and {len(shapes)} shape ROI(s) together; "
                "load with kind='points' or kind='shapes'"
            )
        kind = "points" if points else "shapes"
    chosen = points if kind == "points" else shapes
    stored = _stored(chosen[0]) if chosen else {}
    axes = _axes_of(chosen, stored)
    if kind == "points":
        return _points(chosen, roifile, axes)
    vertices: list[np.ndarray[Any, Any]] = []
    types: list[str] = []
    rows: list[dict[str, Any]] = []
    for roi in chosen:
        name = getattr(roi.roitype, "name", str(roi.roitype))
        shape = _SHAPE_OF.get(name)
        if shape is None:
            raise InvalidAnnotationError(f"ImageJ ROI {roi.name!r} has type {name}, which has no shape type here")
        info = _stored(roi)
        if shape == "polygon" and info.get("shape_type") == "path":
            shape = "path"
        vertices.append(_with_plane(_xy(roi, roifile), roi, axes))
        types.append(shape)
        row = info.get("properties")
        rows.append(row if isinstance(row, dict) else {"name": roi.name})
    return Shapes(vertices, shape_type=types, properties=rows_to_columns(rows), axes=axes)


def _points(rois: Sequence[Any], roifile: Any, axes: Sequence[str]) -> Points:
    blocks = [_with_plane(_xy(roi, roifile), roi, axes) for roi in rois]
    tables = [_stored(roi).get("properties") or {} for roi in rois]
    keys = list(tables[0]) if tables else []
    columns = {k: [v for t in tables for v in t.get(k, [])] for k in keys}
    data = np.concatenate(blocks) if blocks else np.empty((0, len(axes)))
    return Points(data, properties=columns, axes=axes)
