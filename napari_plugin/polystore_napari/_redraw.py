"""Redraw a live layer whose buffer was overwritten in place, without napari's full refresh.

A live frame of the same shape and dtype is copied into the buffer its layer
was created with (:func:`polystore_napari._layers.apply_update`). napari's
``layer.refresh()`` then re-slices the layer, recomputes its transforms,
redraws its thumbnail and repaints the layer list, about a quarter of the GUI
thread's time per 2048x2048 frame under software OpenGL. For a plain 2D
layer shown in 2D whose vispy node already holds a view of that buffer, all
that is needed is to upload the texture again: :func:`redraw_in_place` does
that and leaves the thumbnail stale, and :func:`refresh_stale_thumbnails`
(called at most every :data:`THUMBNAIL_PERIOD` seconds per layer, and by the
receiver widget's status timer once the stream pauses) brings thumbnails up to
date. Anything else (N-D, RGB, multiscale, 3D display, auto contrast, a
viewer without a canvas) takes napari's ``refresh()`` as before.
"""

from __future__ import annotations

import time
import weakref
from typing import Any

import numpy as np

__all__ = ["redraw_in_place", "refresh_stale_thumbnails", "THUMBNAIL_PERIOD"]

#: Seconds between thumbnail updates of a layer redrawn in place.
THUMBNAIL_PERIOD = 1.0

# layer -> monotonic time of its last thumbnail, for layers whose thumbnail is stale
_stale: weakref.WeakKeyDictionary[Any, float] = weakref.WeakKeyDictionary()
# layer -> monotonic time of its last thumbnail (every layer redrawn in place)
_last_thumbnail: weakref.WeakKeyDictionary[Any, float] = weakref.WeakKeyDictionary()


def _node(viewer: Any, layer: Any) -> Any:
    """The vispy node showing ``layer``, or None when there is none to reach."""
    viewer = getattr(viewer, "__wrapped__", viewer)  # the plugin menu passes a public-only proxy
    qt_viewer = getattr(getattr(viewer, "window", None), "_qt_viewer", None)
    visual = getattr(getattr(qt_viewer, "canvas", None), "layer_to_visual", {}).get(layer)
    return getattr(visual, "node", None)


def redraw_in_place(viewer: Any, layer: Any) -> bool:
    """Upload ``layer``'s overwritten buffer to its texture; False when napari must refresh it instead."""
    if (
        getattr(layer, "ndim", None) != 2
        or getattr(layer, "rgb", True)
        or getattr(layer, "multiscale", True)
        or getattr(layer, "auto_contrast", True)
        or not getattr(layer, "visible", False)
        or getattr(getattr(viewer, "dims", None), "ndisplay", None) != 2
    ):
        return False
    node = _node(viewer, layer)
    shown = getattr(node, "_data", None)
    if not isinstance(shown, np.ndarray) or shown.shape != layer.data.shape or not np.may_share_memory(shown, layer.data):
        return False  # the node holds a converted copy (or nothing): only a refresh updates it
    node.set_data(shown)  # the same view: marks the texture for upload, no copy
    node.update()
    now = time.monotonic()
    last = _last_thumbnail.get(layer)
    if last is None or now - last >= THUMBNAIL_PERIOD:
        _refresh_thumbnail(layer, now)
    else:
        _stale.setdefault(layer, last)
    return True


def refresh_stale_thumbnails(min_age: float = 0.0) -> int:
    """Bring thumbnails left stale by :func:`redraw_in_place` up to date; returns how many.

    Only those last drawn at least ``min_age`` seconds ago.
    """
    now = time.monotonic()
    done = 0
    for layer, since in list(_stale.items()):
        if now - since >= min_age:
            _refresh_thumbnail(layer, now)
            done += 1
    return done


def _refresh_thumbnail(layer: Any, now: float) -> None:
    _stale.pop(layer, None)
    _last_thumbnail[layer] = now
    layer.refresh(data_displayed=False, highlight=False, extent=False)
