"""One version per load: pin what a load reads from, start over when it changed underneath.

Writers never change an array in place on local stores: a save builds the
new array beside the old one and swaps the folders; a replaced batch image
swaps its member folder (``_batch``). So a load that saw the same folders at
the end as at the start read one version. :class:`_Pins` remembers the
folders a load reads from (the node folders are held open, so their inode
cannot be reused meanwhile; member folders by inode and change time) and
:func:`read_stable` repeats the load while a pin moved.

A lazy load (``load(lazy=True)``) reads later, chunk by chunk: its
:class:`OpenedVersion` records the same folders when the array is opened and
:class:`PinnedArray` checks them after every block it reads, raising
:class:`ImageLoadError` (load it again) once one was swapped, so a lazy
array returns blocks of the version it opened or nothing.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import Any, TypeVar

import numpy as np

from polystore.exceptions import ImageLoadError, PathNotFoundError, StorageResolutionError
from polystore.zarr._fs import _FS

T = TypeVar("T")


class _Pins:
    """Identities of the folders (and chunk files) one load reads from.

    Local stores pin folders. Object stores cannot; there a load
    :meth:`watch` es the metadata of the node it reads, and when something
    looked wrong (:attr:`suspect`: a chunk was absent, or the read failed)
    :meth:`changed` reads that metadata again: a node saved anew meanwhile
    (a cluster save's new generation switched in, the old one being
    deleted, ``_generations``) makes the load start over.
    """

    def __init__(self, fs: _FS) -> None:
        self.local = fs.supports_pins
        self._fs = fs
        self._held: list[tuple[str, int | None]] = []
        self._seen: list[tuple[str, tuple[int, int, int] | None]] = []
        self.watched: list[tuple[str, dict[str, Any]]] = []
        #: Something looked wrong (an absent chunk): :meth:`changed` checks the watched metadata.
        self.suspect = False

    def watch(self, path: str, meta: Mapping[str, Any]) -> None:
        """Object stores: remember the metadata ``meta`` of the node at ``path`` this load reads."""
        if not self.local:
            self.watched.append((path, dict(meta)))

    def hold(self, path: str) -> None:
        """Pin ``path`` by keeping it open (for the few node folders of a load)."""
        if not self.local:
            return
        try:
            fd: int | None = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        except OSError:
            fd = None
        self._held.append((path, fd))

    def note(self, path: str) -> None:
        """Pin ``path`` by inode and change time (member folders: any number of them)."""
        if self.local:
            self._seen.append((path, _identity(path)))

    def changed(self) -> bool:
        """True if any pinned path now names something else (or appeared, or vanished)."""
        if not self.local:
            return self.suspect and _rewritten(self._fs, self.watched)
        for path, fd in self._held:
            now = _identity(path)
            if fd is None or now is None:
                if (fd is None) != (now is None):
                    return True
                continue
            st = os.fstat(fd)
            if (st.st_dev, st.st_ino) != now[:2]:
                return True
        return any(_identity(path) != seen for path, seen in self._seen)

    def close(self) -> None:
        for _, fd in self._held:
            if fd is not None:
                os.close(fd)
        self._held.clear()


def _rewritten(fs: _FS, watched: Sequence[tuple[str, Mapping[str, Any]]]) -> bool:
    """True when a watched node's metadata is now another (or gone): it was saved anew meanwhile."""
    from polystore.zarr._locate import read_node_meta

    for path, meta in watched:
        try:
            now = read_node_meta(fs, path)
        except ImageLoadError:
            return True
        if now is None or now.raw != meta:
            return True
    return False


def _identity(path: str) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino, st.st_ctime_ns)


def read_stable(fs: _FS, retries: int, where: str, read: Callable[[_Pins], T]) -> T:
    """Run ``read`` until it finishes with none of the paths it pinned changed.

    An error raised while something changed underneath (a chunk that
    vanished, metadata that no longer fits) also starts over; an error with
    nothing changed is real and propagates. After ``retries`` attempts that
    all saw a change, :class:`ImageLoadError` says so.
    """
    for attempt in range(retries):
        pins = _Pins(fs)
        try:
            try:
                result = read(pins)
            except (ImageLoadError, PathNotFoundError, StorageResolutionError, IndexError, ValueError):
                pins.suspect = True
                if not pins.changed():
                    raise
            else:
                if not pins.changed():
                    return result
        finally:
            pins.close()
        time.sleep(min(0.05, 0.001 * 2**attempt))
    raise ImageLoadError(
        f"zarr: {where} changed while being read, {retries} times in a row (other processes keep "
        "rewriting it); try again, or raise ZarrConfig.read_retries"
    )


# ---------------------------------------------------------------- lazy loads

_SHARED: dict[tuple[int, int], list[int]] = {}  # (device, inode) -> [fd, number of holders]
_SHARED_LOCK = threading.Lock()


def _hold_shared(path: str) -> tuple[int, int] | None:
    """Keep the folder at ``path`` open (one descriptor per folder, shared); its (device, inode)."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError:
        return None
    st = os.fstat(fd)
    key = (st.st_dev, st.st_ino)
    with _SHARED_LOCK:
        entry = _SHARED.get(key)
        if entry is None:
            _SHARED[key] = [fd, 1]
            return key
        entry[1] += 1
    os.close(fd)
    return key


def _release_shared(keys: Sequence[tuple[int, int]]) -> None:
    with _SHARED_LOCK:
        for key in keys:
            entry = _SHARED.get(key)
            if entry is None:
                continue
            entry[1] -= 1
            if entry[1] <= 0:
                del _SHARED[key]
                with contextlib.suppress(OSError):
                    os.close(entry[0])


class OpenedVersion:
    """The folders a lazy array reads from, as they were when it was opened (local stores).

    Node folders are held open (one shared descriptor per folder, released
    when the last lazy array using it is garbage-collected), so a folder at
    the same path with the same inode is the same folder; member units of a
    batch are pinned by inode and change time. Object stores cannot pin:
    there :meth:`check` does nothing (see ``docs/zarr-layout.md``).
    """

    def __init__(
        self,
        fs: _FS,
        folders: Sequence[str],
        units: Mapping[int, str],
        where: str,
        watched: Sequence[tuple[str, Mapping[str, Any]]] = (),
    ) -> None:
        self.where = where
        self.active = fs.supports_pins
        self._fs = fs
        #: Object stores: the metadata of the node opened (``_Pins.watch``), read again after a
        #: block found chunks absent: a node saved anew since makes reading on raise.
        self.watched = list(watched)
        self._folders: list[tuple[str, tuple[int, int] | None]] = []
        self._units: dict[int, tuple[str, tuple[int, int, int] | None]] = {}
        if not self.active:
            return
        self._folders = [(p, _hold_shared(p)) for p in dict.fromkeys(folders)]
        self._units = {i: (p, _identity(p)) for i, p in units.items()}
        weakref.finalize(self, _release_shared, [k for _, k in self._folders if k is not None])

    def check(self, lead: range | None = None, suspect: bool = False) -> None:
        """Raise :class:`ImageLoadError` if a pinned folder (or a unit in ``lead``) is now another one.

        On object stores only a ``suspect`` block (one that found chunks
        absent) is checked, against the watched metadata.
        """
        if not self.active:
            if suspect and self.watched and _rewritten(self._fs, self.watched):
                self._raise()
            return
        for path, key in self._folders:
            now = _identity(path)
            if (None if now is None else now[:2]) != key:
                self._raise()
        for i in lead if lead is not None else self._units:
            got = self._units.get(i)
            if got is not None and _identity(got[0]) != got[1]:
                self._raise()

    def _raise(self) -> None:
        raise ImageLoadError(
            f"zarr: {self.where} was replaced after it was opened with load(lazy=True); reading on would "
            "mix two versions. Load it again (a lazy array reads the version it opened, or nothing)"
        )


class PinnedArray:
    """An array-like (for ``dask.array.from_array``) that reads ``source`` only while its version holds."""

    def __init__(self, source: Any, version: OpenedVersion) -> None:
        self.source = source
        self.version = version
        self.shape: tuple[int, ...] = tuple(source.shape)
        self.dtype = source.dtype
        self.ndim = len(self.shape)

    def __getitem__(self, item: Any) -> Any:
        missing = getattr(self.source, "missing", 0)
        out = self.source[item]
        lead = None
        first = item[0] if isinstance(item, tuple) and item else item
        if self.ndim and isinstance(first, slice):
            lead = range(*first.indices(self.shape[0]))
        elif self.ndim and isinstance(first, (int, np.integer)):
            lead = range(int(first) % max(1, self.shape[0]), int(first) % max(1, self.shape[0]) + 1)
        # after the read: unchanged now means unchanged during it
        self.version.check(lead, suspect=getattr(self.source, "missing", 0) != missing)
        return out
