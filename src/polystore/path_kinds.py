"""What a path names, from its spelling and the files beside it: URL, zarr store, array file."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["ARRAY_EXTENSIONS", "is_url", "is_zarr_dir", "guess_backend"]

#: Disk formats ``cp``/``copy_tree`` copy and ``ls`` inspects for shape and dtype.
ARRAY_EXTENSIONS = (".tif", ".tiff", ".npy")
_ZARR_MARKERS = ("zarr.json", ".zgroup", ".zarray")


def is_url(path: str) -> bool:
    """True for ``s3://...``-style paths."""
    return "://" in path and not path.startswith("file://")


def is_zarr_dir(path: str | os.PathLike[str]) -> bool:
    """True if ``path`` is a local folder holding zarr metadata."""
    p = Path(path)
    return p.is_dir() and any((p / m).is_file() for m in _ZARR_MARKERS)


def guess_backend(path: str, given: str | None = None) -> str:
    """``given`` if set, else ``"zarr"`` for URLs, ``*.zarr`` paths and folders inside stores, else ``"disk"``."""
    if given and given != "auto":
        return given
    if is_url(path):
        return "zarr"
    parts = Path(path).parts
    if any(part.lower().endswith(".zarr") for part in parts):
        return "zarr"
    probe = Path(path)
    for candidate in (probe, *probe.parents):
        if str(candidate) in ("", "."):
            break
        if is_zarr_dir(candidate):
            return "zarr"
    return "disk"
