"""npe2 reader for polystore zarr and OME-Zarr stores (lazy, via dask)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from polystore_napari._store import is_zarr_store, open_zarr_layers

__all__ = ["get_reader", "read_store"]

LayerData = list[tuple[Any, dict[str, Any], str]]


def read_store(path: str | list[str]) -> LayerData:
    """Layer data tuples for one store path (or the first of a list)."""
    target = path[0] if isinstance(path, list) else path
    return open_zarr_layers(str(target).rstrip("/") or "/")


def get_reader(path: str | list[str]) -> Callable[[str | list[str]], LayerData] | None:
    """Return :func:`read_store` if ``path`` is a zarr store this plugin reads, else None."""
    target = path[0] if isinstance(path, list) else path
    if not isinstance(target, str) or not is_zarr_store(target.rstrip("/")):
        return None
    return read_store
