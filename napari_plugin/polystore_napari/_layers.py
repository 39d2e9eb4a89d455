"""Show :class:`~polystore.streaming.LayerUpdate` objects as napari layers, with shared named axes.

napari lines layers up by their trailing axes, so a ``czyx`` stack and a
``tyx`` series in one viewer would share one slider for ``z`` and ``t``.
:class:`AxisOrder` keeps one ordering of every axis letter the stream has
used (``t c z y x`` first, others before them in order of appearance) and
:func:`embed` gives each layer that many dimensions (length 1 where the layer
has no such axis, a view, no copy), so every slider moves one named axis and
is labelled with it. RGB(A) layers keep their colour axis last, outside the
sliders.
"""

from __future__ import annotations

import weakref
from collections.abc import Sequence
from typing import Any

import numpy as np

from polystore.streaming.placement import LayerUpdate
from polystore_napari._redraw import redraw_in_place

__all__ = ["AxisOrder", "embed", "apply_update"]

_CANONICAL = "tczyx"

# The buffers live layers were created with (by id): a later live frame of the same
# shape and dtype is copied into its layer's buffer instead of replacing the data.
_owned: weakref.WeakValueDictionary[int, np.ndarray[Any, Any]] = weakref.WeakValueDictionary()


class AxisOrder:
    """The viewer-wide order of axis letters; grows as layers with new axes arrive."""

    def __init__(self) -> None:
        self.axes: list[str] = []

    def add(self, axes: Sequence[str]) -> bool:
        """Merge ``axes`` in; returns True when the order changed (re-embed every layer)."""
        new = [a for a in axes if a not in self.axes]
        if not new:
            return False
        merged = self.axes + new
        self.axes = sorted(merged, key=lambda a: (_CANONICAL.find(a), merged.index(a)))
        return True


def slider_axes(update: LayerUpdate) -> tuple[str, ...]:
    """The axes of ``update`` that napari shows as dimensions (the RGB colour axis is not one)."""
    return update.axis_labels[:-1] if update.rgb else update.axis_labels


def embed(data: np.ndarray[Any, Any], axes: Sequence[str], order: Sequence[str], rgb: bool = False) -> np.ndarray[Any, Any]:
    """View ``data`` (whose slider axes are ``axes``) with one dimension per letter of ``order``.

    Axes are transposed into ``order`` and missing ones added with length 1;
    an RGB colour axis stays last. Returns ``data`` itself when nothing changes.
    """
    n = len(axes)
    if len(order) <= n or any(a not in order for a in axes):
        return data
    perm = sorted(range(n), key=lambda i: order.index(axes[i]))
    view = data
    if perm != list(range(n)):
        view = np.transpose(view, perm + list(range(n, data.ndim)))
    present = {axes[i] for i in perm}
    for pos, letter in enumerate(order):
        if letter not in present:
            view = np.expand_dims(view, pos)
    return view


def _fit_scale(scale: list[float], ndim: int) -> list[float]:
    """Pad (with 1) or trim a per-axis scale so it has one entry per data axis."""
    values = [float(s) for s in scale][-ndim:]
    return [1.0] * (ndim - len(values)) + values


def apply_update(viewer: Any, update: LayerUpdate, order: Sequence[str] | None = None) -> Any:
    """Show ``update`` in ``viewer`` (a napari Viewer or its plugin proxy); returns the layer.

    Creates the layer the first time (named ``update.name``, with the
    colormap/contrast limits/scale sent, as an RGB layer for colour frames),
    replaces its data for live frames, refreshes it when a stack was written in
    place, and recreates it when its dimensionality, dtype or RGB-ness
    changes. With ``order`` (an :class:`AxisOrder`'s letters) the layer is
    embedded so that every slider moves one named axis.
    """
    display = update.display
    labels = slider_axes(update)
    data = update.data
    if order is not None and len(labels) > 2:
        data = embed(data, labels, order, update.rgb)
        labels = tuple(order) if data is not update.data else labels
    ndim = data.ndim - (1 if update.rgb else 0)
    layer = viewer.layers[update.name] if update.name in viewer.layers else None
    if layer is not None and (
        getattr(layer.data, "ndim", None) != data.ndim
        or getattr(layer.data, "dtype", None) != data.dtype
        or bool(getattr(layer, "rgb", False)) != update.rgb
    ):
        viewer.layers.remove(layer)
        layer = None
    if layer is None:
        kwargs: dict[str, Any] = {
            "name": update.name,
            "metadata": {"polystore": {"path": update.path, "meta": update.meta}},
            "rgb": update.rgb,
        }
        if len(labels) == ndim:
            kwargs["axis_labels"] = labels
        if "colormap" in display and not update.rgb:
            kwargs["colormap"] = display["colormap"]
        if "contrast_limits" in display:
            kwargs["contrast_limits"] = display["contrast_limits"]
        if "scale" in display:
            kwargs["scale"] = _fit_scale(display["scale"], ndim)
        if display.get("auto_contrast"):
            kwargs["auto_contrast"] = True
        if not update.stacked and data is update.data:
            data = np.array(data)  # the layer's own buffer; later frames are copied into it
            _owned[id(data)] = data
        layer = viewer.add_image(data, **kwargs)
        _label_sliders(viewer, labels)
        return layer
    if "auto_contrast" in display and getattr(layer, "auto_contrast", None) != bool(display["auto_contrast"]):
        layer.auto_contrast = bool(display["auto_contrast"])
    if not update.reassign:
        layer.refresh()  # a stack written in place
    elif not _copy_into_layer(layer, data, update):
        layer.data = data
    elif not redraw_in_place(viewer, layer):
        layer.refresh()
    if "colormap" in display and not update.rgb and getattr(layer.colormap, "name", None) != display["colormap"]:
        layer.colormap = display["colormap"]
    if "contrast_limits" in display and list(layer.contrast_limits) != display["contrast_limits"]:
        layer.contrast_limits = display["contrast_limits"]
    if "scale" in display:
        scale = _fit_scale(display["scale"], ndim)
        if list(layer.scale) != scale:
            layer.scale = scale
    layer.metadata["polystore"] = {"path": update.path, "meta": update.meta}
    return layer


def _copy_into_layer(layer: Any, data: np.ndarray[Any, Any], update: LayerUpdate) -> bool:
    """Copy a live frame into the buffer its layer was created with, if it fits; True when done.

    Cheaper on the GUI thread than assigning ``layer.data`` (which re-derives
    the layer's and the viewer's dimensions): one 8 MB copy against ~10 ms of
    napari bookkeeping per 2048x2048 frame. Only for buffers this module
    created: an array the user gave the layer is never written to.
    """
    current = layer.data
    owned = _owned.get(id(current))
    if (
        owned is None
        or owned is not current
        or update.stacked
        or data is not update.data
        or owned.shape != data.shape
        or owned.dtype != data.dtype
    ):
        return False
    np.copyto(owned, data)
    return True


def _label_sliders(viewer: Any, labels: Sequence[str]) -> None:
    """Name the viewer's sliders after the axes they move (when the dimensions agree)."""
    if len(labels) > 2 and viewer.dims.ndim == len(labels) and tuple(viewer.dims.axis_labels) != tuple(labels):
        viewer.dims.axis_labels = tuple(labels)
