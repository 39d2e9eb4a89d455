"""Loading: resolve what a path holds, read it (eager, pinned to one version) or wrap it lazily."""

from __future__ import annotations

import uuid
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import zarr

from polystore.base import PathLike
from polystore.exceptions import ImageLoadError, PathIsADirectoryError, PathNotFoundError, StorageResolutionError
from polystore.zarr._batch import member_units, pin_members
from polystore.zarr._checked import CheckedChunks
from polystore.zarr._codec import ends_with_blosc, truncated_blosc_chunk
from polystore.zarr._locate import _Resolver
from polystore.zarr._model import ArrayMeta
from polystore.zarr._nodes import _Loc, _Node
from polystore.zarr._pins import OpenedVersion, PinnedArray, _Pins, read_stable
from polystore.zarr._read import _ArrayReader
from polystore.zarr._zarrs_delegate import read_region, read_whole


class _Loader(_Resolver):
    """The loading half of :class:`~polystore.zarr.backend.ZarrBackend` (a mixin)."""

    def _load(self, file_path: PathLike, kwargs: dict[str, Any]) -> Any:
        """``load``: one version of what is at ``file_path`` (see :mod:`polystore.zarr._pins`)."""
        lazy = bool(kwargs.pop("lazy", False))
        level = int(kwargs.pop("level", 0))
        framework = kwargs.pop("framework", None)
        if kwargs:
            raise TypeError(f"zarr backend: unexpected load keyword(s): {', '.join(sorted(kwargs))}")
        loc = self._locate(file_path)

        def read(pins: _Pins) -> Any:
            self._pin_node(loc, pins)
            node = self._resolve_for_load(loc)
            pins.watch(node.path, node.meta)  # object stores: checked again if a chunk is absent
            index = None
            if node.kind == "member":
                index = node.index
                assert node.member_of is not None
                node = node.member_of
            if node.kind == "group":
                if node.ome is None:
                    raise PathIsADirectoryError(
                        f"zarr: cannot load {self._where(loc)}: it is a group, not an array or "
                        "OME-Zarr image; use list_files to see what it holds",
                        loc.display,
                        "zarr",
                    )
                node = self._image_array(node, level, loc)
                pins.hold(node.path)
            return self._read_node(loc, node, index, lazy, pins)

        data = read_stable(loc.fs, self.config.read_retries, self._where(loc), read)
        if framework and not lazy:
            from polystore.frameworks import from_numpy

            return from_numpy(data, framework)
        return data

    def _resolve_for_load(self, loc: _Loc) -> _Node:
        node = self._node(loc)
        if node is not None:
            return node
        fs = loc.fs
        if not fs.isdir(loc.store) and not self._has_zarr_meta(fs, loc.store):
            raise PathNotFoundError(loc.display, "zarr")
        if not self._has_zarr_meta(fs, loc.store):
            raise StorageResolutionError(
                f"zarr: {fs.url(loc.store)!r} is not a zarr store (no zarr.json/.zgroup/.zarray); "
                f"cannot load {loc.key or '/'!r}"
            )
        if fs.isdir(loc.full):
            raise ImageLoadError(
                f"zarr: {self._where(loc)} exists but has no zarr metadata "
                "(not a zarr node, or a write was interrupted before its metadata was written)"
            )
        raise PathNotFoundError(f"{loc.key or '/'} (in store {fs.url(loc.store)})", "zarr")

    def _reader(self, loc: _Loc, node: _Node) -> _ArrayReader | None:
        """polystore's own reader for the array, or None when zarr-python must decode it."""
        meta = node.array
        if meta is None or meta.codec is None:
            return None
        rel = node.path[len(loc.store) :].strip("/")
        where = self._where(loc, rel)
        return _ArrayReader(loc.fs, node.path, meta, where, self.config.keep_buffer_bytes, self.config.use_tensorstore)

    def _zarr_array(self, loc: _Loc, node: _Node) -> Any:
        rel = node.path[len(loc.store) :].strip("/")
        try:
            store = loc.fs.zarr_store(loc.store)
            return zarr.open_array(
                store=store, path=rel, mode="r", zarr_format=3 if node.zarr_format == 3 else 2
            )
        except Exception as exc:
            raise ImageLoadError(f"zarr: cannot open array {self._where(loc, rel)}: {exc}") from exc

    @staticmethod
    def _pin_node(loc: _Loc, pins: _Pins) -> None:
        """Pin the folder at ``loc`` (or, for a batch member, its batch) before reading metadata."""
        pins.hold(loc.full)
        if loc.key:
            pins.hold(loc.fs.join(loc.store, loc.key.rpartition("/")[0]))

    def _read_node(
        self, loc: _Loc, node: _Node, index: int | None, lazy: bool, pins: _Pins | None = None
    ) -> Any:
        reader = self._reader(loc, node)
        rel = node.path[len(loc.store) :].strip("/")
        if lazy:
            return self._lazy(loc, node, reader, index, pins.watched if pins is not None else ())
        if pins is not None and reader is not None:
            pin_members(pins, node, reader, index)
        if reader is not None:
            try:
                if index is None:
                    whole = read_whole(reader) if self.config.use_zarrs else None
                    got = whole if whole is not None else reader.read([0] * reader.ndim, list(reader.shape))
                else:
                    part = None
                    if self.config.use_zarrs and reader.ndim and 0 <= index < reader.shape[0]:
                        starts, stops = [index] + [0] * (reader.ndim - 1), [index + 1, *reader.shape[1:]]
                        part = read_region(reader, starts, stops)  # local stores only: pins hold there
                    got = part[0] if part is not None else reader[index]
            except MemoryError as exc:  # NumPy refuses the buffer before allocating it
                raise ImageLoadError(
                    f"zarr: array {self._where(loc, rel)} of shape {reader.shape} and dtype {reader.dtype} "
                    f"does not fit in memory ({exc}); load it with lazy=True and read parts of it"
                ) from exc
            if pins is not None and reader.missing:
                pins.suspect = True  # absent chunks: was the node saved anew meanwhile?
            return got
        if loc.fs.supports_native_files and ends_with_blosc(node.meta):
            sep = node.parsed.separator if isinstance(node.parsed, ArrayMeta) else "/"
            prefix = "" if index is None else (f"{index}{sep}" if node.zarr_format == 2 else f"c{sep}{index}{sep}")
            bad = truncated_blosc_chunk(node.path, prefix)
            if bad is not None:
                raise ImageLoadError(f"zarr: corrupted chunk {bad[0]!r} of array {self._where(loc, rel)}: {bad[1]}")
        arr = self._zarr_array(loc, node)
        if pins is not None:
            pins.suspect = True  # zarr-python fills absent chunks silently: check the node afterwards
        try:
            return np.asarray(arr[()] if index is None else arr[index])
        except Exception as exc:
            raise ImageLoadError(
                f"zarr: cannot read array {self._where(loc, rel)} (a chunk is corrupted or unreadable): {exc}"
            ) from exc

    def _lazy(
        self,
        loc: _Loc,
        node: _Node,
        reader: _ArrayReader | None,
        index: int | None,
        watched: Sequence[tuple[str, Mapping[str, Any]]] = (),
    ) -> Any:
        """A dask array over ``node`` that reads the version opened now, or raises (``_pins``)."""
        try:
            import dask.array as _dask_array
        except ImportError:  # pragma: no cover - dask is in the zarr extra
            arr = self._zarr_array(loc, node)
            return arr if index is None else arr[index]
        da: Any = _dask_array
        meta = node.array
        assert meta is not None
        source: Any = reader if reader is not None else self._zarr_array(loc, node)
        if reader is None and loc.fs.supports_native_files and ends_with_blosc(node.meta):
            if isinstance(node.parsed, ArrayMeta):
                source = CheckedChunks(source, node.path, node.parsed, self._where(loc))
        folders = [loc.full, node.path]
        if loc.key:
            folders.append(loc.fs.join(loc.store, loc.key.rpartition("/")[0]))
        units = member_units(node, reader, index) if reader is not None else {}
        version = OpenedVersion(loc.fs, folders, units, self._where(loc), watched)
        # The own reader takes any index dask fuses into a block's read (``fancy``), so blocks can
        # span several chunks (decoded in parallel) while a slice still reads only what it touches.
        own = reader is not None
        out = da.from_array(
            PinnedArray(source, version),
            chunks=meta.lazy_blocks(self.config.lazy_block_bytes) if own else meta.lazy_chunks,
            asarray=False,
            fancy=own,
            lock=False,
            meta=np.empty((0,) * meta.ndim, dtype=source.dtype),
            name=f"polystore-zarr-{uuid.uuid4().hex}",
        )
        return out if index is None else out[index]

    def _load_batch(self, file_paths: Sequence[PathLike], kwargs: dict[str, Any]) -> list[Any]:
        """``load_batch`` (eager): members of one batch array are read in one pass, one version."""
        locs = [self._locate(path) for path in file_paths]

        def read(pins: _Pins) -> list[Any]:
            out: list[Any] = [None] * len(file_paths)
            pending: dict[str, tuple[_Loc, _Node, list[tuple[int, int]]]] = {}
            for pos, loc in enumerate(locs):
                self._pin_node(loc, pins)
                node = self._node(loc)
                if node is not None and node.kind == "member" and node.member_of is not None:
                    pins.watch(node.path, node.meta)
                    parent = node.member_of
                    if parent.kind == "group":
                        if parent.ome is None:
                            raise ImageLoadError(f"zarr: {self._where(loc)} is not readable")
                        parent = self._image_array(parent, 0, loc)
                        pins.hold(parent.path)
                    entry = pending.setdefault(parent.path, (loc, parent, []))
                    entry[2].append((pos, node.index))
                else:
                    out[pos] = self._load(file_paths[pos], dict(kwargs))
            for loc, node, items in pending.values():
                reader = self._reader(loc, node)
                indices = [i for _, i in items]
                lo, hi = min(indices), max(indices) + 1
                if reader is not None and hi - lo <= 2 * len(indices):
                    pin_members(pins, node, reader, range(lo, hi))
                    starts, stops = [lo] + [0] * (reader.ndim - 1), [hi, *reader.shape[1:]]
                    block = read_region(reader, starts, stops) if self.config.use_zarrs else None
                    if block is None:
                        block = reader.read(starts, stops)
                    if reader.missing:
                        pins.suspect = True
                    for pos, i in items:
                        out[pos] = block[i - lo]
                else:
                    for pos, i in items:
                        out[pos] = self._read_node(loc, node, i, False, pins)
            return out

        return read_stable(locs[0].fs, self.config.read_retries, self._where(locs[0]), read)
