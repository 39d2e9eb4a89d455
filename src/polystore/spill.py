"""Memory -> zarr spill: keep arrays in RAM up to a limit, move the least recently used to zarr.

A :class:`~polystore.memory.MemoryBackend` created with
``VFSConfig(memory_limit_gb=...)`` gets a :class:`SpillManager` (through
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
from collections.abc import MutableMapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from polystore.config import MaterializationBackend, VFSConfig

if TYPE_CHECKING:
    from polystore.memory import MemoryBackend
    from polystore.zarr import ZarrBackend

__all__ = ["SpilledArray", "SpillManager", "attach_spill"]


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


def attach_spill(backend: MemoryBackend, config: VFSConfig) -> SpillManager:
    """Give ``backend`` a spill-over to zarr, per ``config``; returns the manager.

    Wraps the instance's ``save``, ``load``, ``save_batch``, ``load_batch``,
    ``delete`` and ``clear`` (the class methods, and so the backend's speed
    without a limit, are untouched).
    """
    manager = SpillManager(backend._store, config)
    cls = type(backend)
    store = backend._store

    def save(data: Any, file_path: Any, **kwargs: Any) -> None:
        cls.save(backend, data, file_path, **kwargs)
        manager.after_save(_key(file_path), data)

    def load(file_path: Any, framework: str | None = None, **kwargs: Any) -> Any:
        key = _key(file_path)
        data = cls.load(backend, file_path, **kwargs)
        if isinstance(data, SpilledArray):
            data = manager.resolve(data)
        else:
            manager.touch(key)
        if framework:
            from polystore.frameworks import from_numpy

            return from_numpy(data, framework)
        return data

    def delete(path: Any, recursive: bool = False) -> None:
        key = _key(path)
        prefix = key.rstrip("/") + "/"
        before = {k: v for k, v in store.items() if k == key or k.startswith(prefix)}
        cls.delete(backend, path, recursive=recursive)
        for k, v in before.items():
            if k not in store:
                manager.forget(k, v)

    def clear() -> None:
        cls.clear(backend)
        manager.clear()

    def save_batch(data_list: Any, identifiers: Any, **kwargs: Any) -> None:
        if len(data_list) != len(identifiers):
            raise ValueError(f"save_batch: {len(data_list)} data items but {len(identifiers)} paths")
        for data, path in zip(data_list, identifiers):
            save(data, path, **kwargs)

    def load_batch(file_paths: Any, **kwargs: Any) -> list[Any]:
        return [load(path, **kwargs) for path in file_paths]

    backend.save = save  # type: ignore[method-assign]
    backend.load = load  # type: ignore[method-assign]
    backend.delete = delete  # type: ignore[method-assign]
    backend.clear = clear  # type: ignore[method-assign]
    backend.save_batch = save_batch  # type: ignore[method-assign]
    backend.load_batch = load_batch  # type: ignore[method-assign]
    backend.spill = manager  # type: ignore[attr-defined]
    return manager


def _key(path: Any) -> str:
    from polystore.memory import normalize_memory_path

    return normalize_memory_path(path)
