"""Annotations: label images, points and shapes, saved, loaded and streamed like images.

The model (:class:`Labels`, :class:`Points`, :class:`Shapes`) is validated on
construction; :func:`to_layer_data`/:func:`from_layer_data` convert to and from
napari layer data (no napari import), :func:`to_rois`/:func:`from_rois` to and
from ImageJ ROIs (needs ``roifile``: ``pip install "polystore[roi]"``).
docs/annotations.md describes the model, the file formats, the wire kinds and
the limits.
"""

from __future__ import annotations

from polystore.annotations._model import (
    ANNOTATION_KINDS,
    DEFAULT_AXES,
    MAX_COORDINATES,
    MIN_VERTICES,
    SHAPE_TYPES,
    Annotation,
    AxesLike,
    Labels,
    Points,
    PropertiesLike,
    Shapes,
    as_annotation,
    default_axes,
)
from polystore.annotations.napari_data import LayerData, from_layer_data, to_layer_data
from polystore.annotations.roi import from_rois, to_rois
from polystore.exceptions import InvalidAnnotationError

__all__ = [
    "Labels",
    "Points",
    "Shapes",
    "Annotation",
    "AxesLike",
    "PropertiesLike",
    "LayerData",
    "InvalidAnnotationError",
    "SHAPE_TYPES",
    "MIN_VERTICES",
    "MAX_COORDINATES",
    "DEFAULT_AXES",
    "default_axes",
    "ANNOTATION_KINDS",
    "as_annotation",
    "to_layer_data",
    "from_layer_data",
    "to_rois",
    "from_rois",
]
