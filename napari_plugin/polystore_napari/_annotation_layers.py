"""Show streamed labels, points and shapes (protocol version 2) as napari layers.

A message for a layer replaces what the layer shows: the label image or the
points (with their features) are set in place; shapes are re-added, since
napari's Shapes layer cannot take new shape types through ``data``. A layer
of another type with the same name is replaced by a new one.
"""

from __future__ import annotations

from typing import Any

from polystore.annotations import to_layer_data
from polystore.streaming.receiver import Frame

__all__ = ["apply_annotation"]

_LAYER_CLASS = {"labels": "Labels", "points": "Points", "shapes": "Shapes"}


def apply_annotation(viewer: Any, frame: Frame) -> Any:
    """Show ``frame.annotation`` in the layer ``frame.layer``; returns the layer."""
    data, kwargs, layer_type = to_layer_data(frame.annotation)
    name = frame.layer
    metadata = {"polystore": {"path": frame.header.path, "meta": frame.header.meta, "kind": layer_type}}
    layer = viewer.layers[name] if name in viewer.layers else None
    if layer is not None and (type(layer).__name__ != _LAYER_CLASS[layer_type] or layer_type == "shapes"):
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
