"""Conversions between annotations and napari layer data, without importing napari.

napari describes a layer as a "layer data tuple" ``(data, kwargs, layer_type)``
(what readers return and ``viewer._add_layer_from_data`` takes). These
functions make and read such tuples from plain arrays and dicts, so the core
stays free of napari; the napari plugin passes them to ``viewer.add_*``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import numpy as np

from polystore.annotations._model import Annotation, Labels, Points, Shapes
from polystore.exceptions import InvalidAnnotationError

__all__ = ["LayerData", "to_layer_data", "from_layer_data"]

#: ``(data, layer kwargs, layer type)`` as napari's readers return them.
LayerData = tuple[Any, dict[str, Any], str]


def to_layer_data(annotation: Annotation) -> LayerData:
    """The napari layer data tuple of ``annotation`` (``"labels"``, ``"points"`` or ``"shapes"``).

    The layer kwargs hold ``axis_labels`` and, for points and shapes,
    ``features`` (the properties table as a dict of columns) and, for shapes,
    ``shape_type``.
    """
    kwargs: dict[str, Any] = {"axis_labels": annotation.axes}
    if isinstance(annotation, Labels):
        return annotation.data, kwargs, "labels"
    kwargs["features"] = dict(annotation.properties)
    if isinstance(annotation, Points):
        return annotation.data, kwargs, "points"
    kwargs["shape_type"] = list(annotation.shape_types)
    return list(annotation.data), kwargs, "shapes"


def _axes(kwargs: Mapping[str, Any]) -> tuple[str, ...] | None:
    labels = kwargs.get("axis_labels")
    if not labels:
        return None
    names = tuple(str(label) for label in labels)
    # napari's unnamed axes are "-2", "-1" (or "axis -1"): use polystore's default names instead.
    if all(re.fullmatch(r"(axis )?-?[0-9]+", name) for name in names):
        return None
    return names


def _table(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    table = kwargs.get("features")
    if table is None or (hasattr(table, "__len__") and len(table) == 0 and not hasattr(table, "columns")):
        table = kwargs.get("properties")
    if table is None:
        return {}
    if hasattr(table, "columns"):  # a pandas DataFrame, napari's type for features
        return {str(name): np.asarray(table[name]) for name in table.columns}
    return {str(name): np.asarray(values) for name, values in dict(table).items()}


def from_layer_data(data: Any, kwargs: Mapping[str, Any] | None = None, layer_type: str = "points") -> Annotation:
    """The annotation held by napari layer data (the inverse of :func:`to_layer_data`).

    ``kwargs`` may hold ``axis_labels``, ``features`` (or ``properties``) and
    ``shape_type``, as napari layers and readers give them; napari's
    unnamed axes become polystore's default names.
    """
    options = kwargs or {}
    axes = _axes(options)
    if layer_type == "labels":
        return Labels(data, axes=axes)
    if layer_type == "points":
        return Points(data, properties=_table(options), axes=axes)
    if layer_type == "shapes":
        return Shapes(list(data), shape_type=options.get("shape_type", "polygon"), properties=_table(options), axes=axes)
    raise InvalidAnnotationError(f"annotations: napari layer type {layer_type!r} is not labels, points or shapes")
