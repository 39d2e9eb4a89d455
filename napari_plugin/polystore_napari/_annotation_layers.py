"""Show streamed labels, points and shapes (protocol version 2) as napari layers.

A message for a layer replaces what the layer shows: the label image or the
points (with their features) are set in place; shapes are re-added, since
napari's Shapes layer cannot take new shape types through ``data``. A layer
of another type (or another number of dimensions) with the same name is
replaced by a new one. Points and shapes sent with ``index`` replace only
their plane: the layer shows every plane received (docs/annotations.md).
"""

from __future__ import annotations

from typing import Any

from polystore.annotations import Points, Shapes, to_layer_data
from polystore.annotations.planes import PlaneStack
from polystore.streaming.receiver import Frame

__all__ = ["apply_annotation"]

_LAYER_CLASS = {"labels": "Labels", "points": "Points", "shapes": "Shapes"}
#: Layer metadata key of the planes of a layer filled by ``index`` (None: replaced as a whole).
_PLANES = "polystore_planes"


def _annotation_of(layer: Any, frame: Frame) -> tuple[Any, PlaneStack | None]:
    """The object to show: the message's, or with ``index`` the layer's planes with it."""
    if frame.header.index is None or not isinstance(frame.annotation, (Points, Shapes)):
        return frame.annotation, None
    planes = layer.metadata.get(_PLANES) if layer is not None else None
    if not isinstance(planes, PlaneStack):
        planes = PlaneStack()
    return planes.put(frame.annotation, frame.header.index), planes


def apply_annotation(viewer: Any, frame: Frame) -> Any:
    """Show ``frame.annotation`` in the layer ``frame.layer``; returns the layer.

    Points and shapes with an ``index`` replace only their plane of the layer
    (:class:`~polystore.annotations.planes.PlaneStack`).
    """
    name = frame.layer
    layer = viewer.layers[name] if name in viewer.layers else None
    annotation, planes = _annotation_of(layer, frame)
    data, kwargs, layer_type = to_layer_data(annotation)
    metadata = {
        "polystore": {"path": frame.header.path, "meta": frame.header.meta, "kind": layer_type},
        _PLANES: planes,
    }
    if layer is not None and (
        type(layer).__name__ != _LAYER_CLASS[layer_type]
        or layer_type == "shapes"
        or layer.ndim != len(kwargs["axis_labels"])
    ):
        viewer.layers.remove(layer)
        layer = None
    if layer is None:
        add = {"labels": viewer.add_labels, "points": viewer.add_points, "shapes": viewer.add_shapes}[layer_type]
        scale = frame.header.display.get("scale")
        if scale is not None:
            kwargs["scale"] = [float(s) for s in scale][-len(kwargs["axis_labels"]):]
        return add(data, name=name, metadata=metadata, **kwargs)
    if layer_type == "points":
        layer.data = data
        layer.features = kwargs["features"]
    else:
        layer.data = data
    layer.metadata.update(metadata)
    return layer
