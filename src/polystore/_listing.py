"""Filtering of file listings, shared by every backend that lists files."""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable

from polystore.atomic import is_temp_name

__all__ = ["normalize_extensions", "matches", "is_working_file", "COPY_JOURNAL_NAME", "LOCK_SUFFIX"]

#: Journal of finished items that ``polystore cp`` keeps at the root of a destination.
COPY_JOURNAL_NAME = ".polystore-cp.jsonl"
#: ``atomic_write``/``file_lock`` serialise writers of ``<path>`` on ``<path>.lock``.
LOCK_SUFFIX = ".lock"


def is_working_file(name: str) -> bool:
    """True for a file polystore keeps for its own work: temp files, locks, the cp journal.

    Listings hide these.
    """
    return name.endswith(LOCK_SUFFIX) or name == COPY_JOURNAL_NAME or is_temp_name(name)


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
