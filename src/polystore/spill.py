"""Memory -> zarr spill: keep arrays in RAM up to a limit, move the least recently used to zarr.

A :class:`~polystore.memory.MemoryBackend` created with
``VFSConfig(memory_limit_gb=...)`` keeps its objects in a :class:`SpillStore`,
a mapping around its dict driven by a :class:`SpillManager` (set up by
:func:`attach_spill`). The rule, also in ``docs/zarr-layout.md``:

* Only NumPy arrays count against the limit and can spill; other objects
  (dicts, strings, tensors of other frameworks) stay in RAM and are not counted.
* After each save, while the arrays held in RAM exceed the limit, the least
  recently used one (saves and loads both count as use) is written to a zarr
  store and its entry in the memory dict is replaced by a small
  :class:`SpilledArray` placeholder. An array larger than the whole limit
  spills right after it is saved.
* The namespace stays one: ``list_files``, ``list_dir``, ``exists`` and
  ``is_file`` see the same keys as before; ``load`` of a spilled key reads it
  back from zarr (a new array; it stays spilled); ``delete`` removes the zarr
  copy too.
* The spill store is ``VFSConfig.spill_path`` (a local path or URL of a zarr
  store) or a temporary directory removed when the backend is garbage
  collected or the process exits. Placeholders hold the full location, so
  with a ``shared_dict`` other processes read spilled arrays too (give them a
  ``spill_path`` they can all reach).

zarr is imported only when the first array spills.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
import uuid
import weakref
from collections import OrderedDict
from collections.abc import Iterator, MutableMapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from polystore.config import MaterializationBackend, VFSConfig

if TYPE_CHECKING:
    from polystore.memory import MemoryBackend
    from polystore.zarr import ZarrBackend

__all__ = ["SpilledArray", "SpillManager", "SpillStore", "attach_spill"]


@dataclass(frozen=True)
class SpilledArray:
    """Placeholder left in the memory dict for an array that now lives in zarr."""

    #: Where the array lives: a path or URL of a zarr array in the spill store.
    path: str
    shape: tuple[int, ...]
    dtype: str
    nbytes: int


class SpillManager:
    """Tracks the bytes of arrays held in a memory dict and spills the LRU ones to zarr.

    Args:
        store: the memory backend's dict (key -> object).
        config: the VFS configuration; ``memory_limit_gb`` must be set.
    """

    def __init__(self, store: MutableMapping[str, Any], config: VFSConfig) -> None:
        if config.memory_limit_gb is None:
            raise ValueError("SpillManager needs VFSConfig.memory_limit_gb")
        if config.materialization_backend != MaterializationBackend.ZARR:
            raise ValueError(
                "memory spill writes to zarr; set VFSConfig(materialization_backend=ZARR)"
            )
        self.store = store
        self.config = config
        self.limit_bytes = int(config.memory_limit_gb * 1024**3)
        self._resident: OrderedDict[str, int] = OrderedDict()  # key -> nbytes, LRU first
        self._bytes = 0
        self._lock = threading.RLock()
        self._zarr: ZarrBackend | None = None
        self._tmpdir: str | None = None
        self._finalizer: Any = None
        self._root: str | None = None
        #: Number of arrays written to zarr so far.
        self.spilled_count = 0

    @property
    def resident_bytes(self) -> int:
        """Bytes of the NumPy arrays currently held in RAM (tracked ones)."""
        return self._bytes

    @property
    def spill_root(self) -> str:
        """Where spilled arrays go (created on first spill)."""
        self._backend()
        assert self._root is not None
        return self._root

    def _backend(self) -> ZarrBackend:
        if self._zarr is None:
            from polystore.zarr import ZarrBackend

            root = self.config.spill_path
            if root is None:
                self._tmpdir = tempfile.mkdtemp(prefix="polystore-spill-")
                root = os.path.join(self._tmpdir, "spill.zarr")
                self._finalizer = weakref.finalize(self, shutil.rmtree, self._tmpdir, True)
            self._root = root
            self._zarr = ZarrBackend()
        return self._zarr

    def _spill_path(self, name: str) -> str:
        root = self.spill_root
        return root.rstrip("/") + "/" + name

    # ------------------------------------------------------------------ hooks

    def after_save(self, key: str, data: Any) -> None:
        """Account for ``data`` saved at ``key`` and spill until under the limit."""
        with self._lock:
            old = self._resident.pop(key, None)
            if old is not None:
                self._bytes -= old
            if isinstance(data, np.ndarray) and data.dtype.kind in "biufc":
                self._resident[key] = data.nbytes
                self._bytes += data.nbytes
            self._enforce()

    def touch(self, key: str) -> None:
        """Mark ``key`` as most recently used."""
        with self._lock:
            if key in self._resident:
                self._resident.move_to_end(key)

    def resolve(self, data: Any) -> Any:
        """Return the array for a placeholder (read from zarr), anything else unchanged."""
        if isinstance(data, SpilledArray):
            return self._backend().load(data.path)
        return data

    def forget(self, key: str, data: Any) -> None:
        """``key`` (holding ``data``) was deleted: stop tracking it, drop its zarr copy."""
        with self._lock:
            old = self._resident.pop(key, None)
            if old is not None:
                self._bytes -= old
        if isinstance(data, SpilledArray) and not any(v is data for v in self.store.values()):
            try:
                self._backend().delete(data.path, recursive=True)
            except FileNotFoundError:
                pass

    def clear(self) -> None:
        """Forget everything and remove the spill store's content."""
        with self._lock:
            self._resident.clear()
            self._bytes = 0
            if self._zarr is not None and self._root is not None:
                try:
                    self._zarr.delete(self._root, recursive=True)
                except FileNotFoundError:
                    pass

    def _enforce(self) -> None:
        while self._bytes > self.limit_bytes and self._resident:
            key, nbytes = self._resident.popitem(last=False)
            self._bytes -= nbytes
            data = self.store.get(key)
            if not isinstance(data, np.ndarray):
                continue  # replaced or removed behind our back: nothing to spill
            path = self._spill_path(uuid.uuid4().hex)
            self._backend().save(data, path)
            self.store[key] = SpilledArray(path, tuple(data.shape), data.dtype.str, int(data.nbytes))
            self.spilled_count += 1

    def close(self) -> None:
        """Remove a temporary spill directory now (the explicit ``spill_path`` is kept)."""
        if self._finalizer is not None:
            self._finalizer()


class SpillStore(MutableMapping[str, Any]):
    """The memory backend's dict with spill-over: a mapping the backend uses like any store.

    Writes are counted against the limit (and may spill the least recently
    used arrays); reads of a spilled key return the array read back from
    zarr; deletes drop the zarr copy. Every memory operation (save, load,
    copy, move, delete, clear) goes through these, so the accounting cannot
    be bypassed. :meth:`peek` returns the stored value itself (a
    :class:`SpilledArray` placeholder for a spilled array) without reading it.
    """

    def __init__(self, inner: MutableMapping[str, Any], manager: SpillManager) -> None:
        self.inner = inner
        self.manager = manager

    def __getitem__(self, key: str) -> Any:
        value = self.inner[key]
        if isinstance(value, SpilledArray):
            return self.manager.resolve(value)
        self.manager.touch(key)
        return value

    def get(self, key: str, default: Any = None) -> Any:
        """Like ``self[key]``, ``default`` when missing."""
        try:
            return self[key]
        except KeyError:
            return default

    def peek(self, key: str, default: Any = None) -> Any:
        """The stored value (a placeholder when spilled), without reading from zarr or counting a use."""
        return self.inner.get(key, default)

    def __setitem__(self, key: str, value: Any) -> None:
        self.inner[key] = value
        self.manager.after_save(key, value)

    def __delitem__(self, key: str) -> None:
        value = self.inner.pop(key)
        self.manager.forget(key, value)

    def pop(self, key: str, *default: Any) -> Any:
        """Remove ``key`` (forgetting its spilled copy); return the stored value, not read back."""
        try:
            value = self.inner.pop(key)
        except KeyError:
            if default:
                return default[0]
            raise
        self.manager.forget(key, value)
        return value

    def __contains__(self, key: object) -> bool:
        return key in self.inner

    def __iter__(self) -> Iterator[str]:
        return iter(self.inner)

    def __len__(self) -> int:
        return len(self.inner)

    def keys(self) -> Any:
        """The keys of the underlying store."""
        return self.inner.keys()

    def clear(self) -> None:
        """Remove everything, the spilled arrays included."""
        self.inner.clear()
        self.manager.clear()


def attach_spill(backend: MemoryBackend, config: VFSConfig) -> SpillManager:
    """Give ``backend`` a spill-over to zarr, per ``config``; returns the manager.

    The backend's store becomes a :class:`SpillStore` around the store it had;
    ``backend.spill`` is the :class:`SpillManager`.
    """
    inner = backend._store
    if isinstance(inner, SpillStore):
        inner = inner.inner
    manager = SpillManager(inner, config)
    backend._store = SpillStore(inner, manager)
    backend.spill = manager  # type: ignore[attr-defined]
    return manager


def _key(path: Any) -> str:
    from polystore.memory import normalize_memory_path

    return normalize_memory_path(path)
