"""npe2 napari plugin for polystore.

Contributes a **Stream receiver** dock widget (shows what
``fm.save(..., backend="napari")`` sends), a **Store browser** dock widget
(browse folders and zarr stores through FileManager) and a reader for
polystore zarr / OME-Zarr stores. ``python -m polystore_napari`` opens a
viewer with the receiver already listening.
"""

from __future__ import annotations

__all__ = ["StreamController", "StreamStatus", "StreamReceiverWidget", "StoreBrowserWidget", "get_reader"]


def __getattr__(name: str) -> object:
    # The controller is Qt-free: run a receiver in-process (scripts, notebooks, tests).
    if name in ("StreamController", "StreamStatus"):
        from polystore_napari import _controller

        return getattr(_controller, name)
    # Widgets import Qt: load them only when asked for.
    if name in ("StreamReceiverWidget", "StoreBrowserWidget"):
        from polystore_napari import _widgets

        return getattr(_widgets, name)
    if name == "get_reader":
        from polystore_napari._reader import get_reader

        return get_reader
    raise AttributeError(f"module 'polystore_napari' has no attribute {name!r}")
