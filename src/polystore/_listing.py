"""Filtering of file listings, shared by every backend that lists files."""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable

__all__ = ["normalize_extensions", "matches"]


def normalize_extensions(extensions: Iterable[str] | None) -> tuple[str, ...] | None:
    """``{"npy", ".TIF"}`` -> ``(".npy", ".tif")``; a single string counts as one; None stays None."""
    if extensions is None:
        return None
    if isinstance(extensions, str):
        extensions = [extensions]
    return tuple(e.lower() if e.startswith(".") else "." + e.lower() for e in extensions)


def matches(name: str, pattern: str | None, extensions: tuple[str, ...] | None) -> bool:
    """True if a file ``name`` passes the glob ``pattern`` and the (normalised) extension filter."""
    if extensions is not None and not name.lower().endswith(extensions):
        return False
    return pattern is None or fnmatch.fnmatchcase(name, pattern)
