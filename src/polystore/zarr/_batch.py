"""The batch layout: N same-shape images kept as one N-D array (the only module that knows it).

A batch is an array (or an OME image whose level 0 is that array) with chunk
size 1 on axis 0; image ``i`` is the slab ``[i]`` and its name is entry ``i``
of ``attributes.polystore.names`` (``None``: deleted). All chunks of image
``i`` therefore live under one *member unit*: the folder ``c/<i>`` (zarr v2:
``<i>``), or the single chunk file of that name when images are 0-d.

How it changes, so that a killed or failing writer and concurrent readers
never see a mixed image (the rules are in ``docs/zarr-layout.md``):

- every change takes the batch's lock, a hidden file beside it
  (``.<name>.polystore.lock``, through :func:`polystore.atomic.file_lock`),
  and re-reads the metadata under it;
- **replace**: the new image's chunks go to a hidden staging unit
  ``c/.<i>.polystore-tmp-*``, which is then swapped with ``c/<i>`` in one
  ``renameat2(RENAME_EXCHANGE)``; the old unit, now under the staging name,
  is deleted afterwards by a worker thread;
- **append**: chunks at the indices past the end first, then the metadata
  with the longer shape and name list (one atomic file replace);
- **delete**: the name becomes ``None`` (the pixels stay until the batch is
  saved again).

Object stores have no rename and no lock: there, replaced chunks are
overwritten object by object and concurrent writers to one batch are not
supported.
"""

from __future__ import annotations

import contextlib
import os
import threading
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from polystore.atomic import file_lock
from polystore.exceptions import ImageSaveError, StorageError
from polystore.zarr._dtypes import _dtype_from_meta
from polystore.zarr._fs import _FS, _TMP_MARK, put_in_place
from polystore.zarr._workers import _pool
from polystore.zarr._meta import _META, _dumps
from polystore.base import PathLike
from polystore.zarr._locate import _Resolver
from polystore.zarr._nodes import _Image, _Loc, _Node
from polystore.zarr._pins import _Pins
from polystore.zarr._write import _ChunkWriter, _remove

if TYPE_CHECKING:
    from polystore.zarr._read import _ArrayReader

#: Save keywords that may accompany images added to an existing batch.
_MERGE_KWARGS = frozenset({"overwrite", "compressor", "compression_level", "chunks", "axes"})

_HELD = threading.local()


def with_names(attrs: Mapping[str, Any], names: Sequence[str | None]) -> dict[str, Any]:
    """``attrs`` with the batch's member names recorded in ``polystore.names``."""
    out = dict(attrs)
    out["polystore"] = {**dict(out.get("polystore") or {}), "names": list(names)}
    return out


def lock_file(path: str) -> str:
    """The lock file guarding the batch at ``path`` (a hidden file beside it)."""
    parent, name = os.path.split(path.rstrip("/"))
    return os.path.join(parent, f".{name}.polystore.lock")


@contextlib.contextmanager
def batch_lock(fs: _FS, path: str, timeout: float) -> Iterator[None]:
    """Hold the inter-process lock of the batch at ``path`` (local stores; re-entrant per thread).

    Raises :class:`ImageSaveError` naming the lock file when another writer
    holds it for longer than ``timeout`` seconds.
    """
    if not fs.supports_locks:
        yield
        return
    held: dict[str, int] = _HELD.__dict__.setdefault("paths", {})
    target = lock_file(path)
    if held.get(target):
        held[target] += 1
        try:
            yield
        finally:
            held[target] -= 1
        return
    os.makedirs(os.path.dirname(target) or ".", exist_ok=True)
    guard = file_lock(target[: -len(".lock")], timeout)
    try:
        guard.__enter__()
    except TimeoutError as exc:
        raise ImageSaveError(
            f"zarr: another process holds the lock of the batch {path!r} ({target!r}) for more than "
            f"{timeout} s; try again later or raise ZarrConfig.lock_timeout"
        ) from exc
    held[target] = 1
    try:
        yield
    finally:
        held[target] = 0
        guard.__exit__(None, None, None)


def member_unit(array_path: str, index: int, zarr_format: int, separator: str) -> str | None:
    """The folder (or single chunk file) holding every chunk of image ``index``; None if keys are not nested."""
    if separator != "/":
        return None
    return f"{array_path}/c/{index}" if zarr_format == 3 else f"{array_path}/{index}"


def member_units(node: _Node, reader: _ArrayReader, which: int | Iterable[int] | None) -> dict[int, str]:
    """The member units of batch ``node`` that images ``which`` live in (all for ``which=None``).

    Empty when ``node`` is no batch (or its chunks do not keep images apart).
    """
    if node.names is None or not reader.chunks or reader.chunks[0] != 1:
        return {}
    indices = range(reader.shape[0]) if which is None else [which] if isinstance(which, int) else which
    fmt = 2 if reader.v2_keys else 3
    units = ((i, member_unit(node.path, i, fmt, reader.sep)) for i in indices)
    return {i: unit for i, unit in units if unit is not None}


def pin_members(pins: _Pins, node: _Node, reader: _ArrayReader, which: int | Iterable[int] | None) -> None:
    """Pin the member units a read of batch ``node`` touches (all of them for ``which=None``).

    A replaced image is swapped in unit by unit, so a read that saw the same
    units before and after read one version of each image.
    """
    if pins.local:
        for unit in member_units(node, reader, which).values():
            pins.note(unit)


class _BatchWriter(_ChunkWriter, _Resolver):
    """Replacing, appending and deleting images of a batch (a mixin of the backend)."""

    if TYPE_CHECKING:  # defined by the loading and saving mixins

        def _reader(self, loc: _Loc, node: _Node) -> _ArrayReader | None: ...

        def _prepare(self, data: Any, where: str, allow_lazy: bool = False) -> Any: ...

        def save(self, data: Any, file_path: PathLike, **kwargs: Any) -> None: ...

        def _replace_refusal(self, loc: _Loc, existing: _Node | None) -> str | None: ...

        def _image_from_kwargs(
            self, arr: np.ndarray, kwargs: dict[str, Any], lead_axis: bool = False
        ) -> _Image: ...

        def _save_image(self, loc: _Loc, image: _Image, kwargs: Mapping[str, Any]) -> None: ...

    def _save_batch(self, data_list: Sequence[Any], identifiers: Sequence[PathLike], kwargs: dict[str, Any]) -> None:
        """``save_batch``: group images by parent; same-shape groups become (or join) one batch."""
        if len(data_list) != len(identifiers):
            raise ValueError(f"save_batch: {len(data_list)} data items but {len(identifiers)} paths")
        if not data_list:
            return
        groups: dict[tuple[str, str], list[int]] = {}
        locs = [self._locate(p) for p in identifiers]
        arrays = [self._prepare(d, loc.display) for d, loc in zip(data_list, locs)]
        for i, loc in enumerate(locs):
            parent_key, _, name = loc.key.rpartition("/")
            if not name:
                groups.setdefault(("", f"single{i}"), []).append(i)
                continue
            groups.setdefault((loc.fs.url(loc.store), parent_key), []).append(i)
        chunks = kwargs.get("chunks")
        for (store_url, parent_key), members in groups.items():
            shapes = {(arrays[i].shape, arrays[i].dtype.str) for i in members}
            names = [locs[i].key.rpartition("/")[2] for i in members]
            single_kwargs = {k: v for k, v in kwargs.items() if k != "axes"}
            if isinstance(chunks, (tuple, list)) and len(chunks) == arrays[members[0]].ndim + 1:
                single_kwargs["chunks"] = tuple(chunks[1:])  # the stack's chunks, for one image
            if store_url == "" or len(shapes) != 1 or len(set(names)) != len(names):
                for i in members:
                    self.save(arrays[i], identifiers[i], **single_kwargs)
                continue
            first = locs[members[0]]
            parent_display = first.display.rstrip("/").rpartition("/")[0]
            loc = _Loc(first.fs, first.store, parent_key, parent_display)
            with self._batch_lock(loc):  # no other writer creates or changes this batch meanwhile
                # an existing batch: replace/append like files in a folder, never drop its other images
                if self._merge_into_batch(loc, names, [arrays[i] for i in members], kwargs):
                    continue
                parent = self._node(loc)
                if len(members) == 1 or (parent is not None and parent.kind == "member") or self._replace_refusal(
                    loc, parent
                ):
                    # a lone image, or the parent holds other things: save the images one by one
                    for i in members:
                        self.save(arrays[i], identifiers[i], **single_kwargs)
                    continue
                stack = self._stack_for(kwargs, [arrays[i] for i in members])
                image = self._image_from_kwargs(stack, dict(kwargs), lead_axis=True)
                image.names = names
                self._save_image(loc, image, kwargs)

    @staticmethod
    def _stack_for(kwargs: Mapping[str, Any], images: Sequence[np.ndarray]) -> Any:
        """The images as one array: NumPy, or with a dask.distributed client one dask block per image.

        With a client, the save then writes each image as a task on the
        workers (``_distributed``); the metadata is still written last, here.
        """
        from polystore.zarr._distributed import active_client  # imports no dask or distributed

        if active_client(kwargs.get("client")) is not None:
            import dask.array as _dask_array

            da: Any = _dask_array
            return da.stack([da.from_array(a, chunks=a.shape) for a in images])
        return np.stack(images)

    def _batch_lock(self, loc: _Loc) -> contextlib.AbstractContextManager[None]:
        return batch_lock(loc.fs, loc.full, self.config.lock_timeout)

    def _merge_into_batch(
        self,
        ploc: _Loc,
        names: Sequence[str],
        arrays: Sequence[Any],
        kwargs: Mapping[str, Any],
    ) -> bool:
        """Save images into the batch at ``ploc`` like files into a folder; False if it is no batch.

        Holds the batch lock and re-reads the batch under it. A name the
        batch has is replaced (staged, then swapped in); new names are
        appended along axis 0 (chunks first, then the metadata). Images must
        match the batch's image shape and dtype. Any failure raises
        :class:`ImageSaveError` and leaves every image of the batch as it was.
        """
        with self._batch_lock(ploc):
            holder = self._node(ploc)
            if holder is None or holder.names is None or holder.kind == "member":
                return False
            try:
                self._merge_locked(ploc, holder, names, arrays, kwargs)
            except (StorageError, TypeError, ValueError):
                raise
            except Exception as exc:
                raise ImageSaveError(
                    f"zarr: could not save into the batch {self._where(ploc)}: {exc} "
                    "(its images are as they were before this call)"
                ) from exc
        return True

    def _merge_locked(
        self, ploc: _Loc, holder: _Node, names: Sequence[str], arrays: Sequence[Any], kwargs: Mapping[str, Any]
    ) -> None:
        target = holder
        where = self._where(ploc)
        if holder.kind == "group":
            ome = holder.ome
            if ome is None or len(ome["multiscales"][0].get("datasets") or []) != 1:
                raise ImageSaveError(
                    f"zarr: cannot add images to the batch {where}: it is a pyramid; save the whole batch again"
                )
            target = self._image_array(holder, 0, ploc)
        meta = target.meta
        reader = self._reader(ploc, target)
        bad = [k for k in kwargs if k not in _MERGE_KWARGS]
        axes = kwargs.get("axes")
        if axes is not None:
            have = holder.ome["multiscales"][0].get("axes") if holder.ome is not None else None
            have_axes = "".join(a["name"] if isinstance(a, dict) else str(a) for a in have) if have else None
            if "".join(axes) != have_axes:
                raise ImageSaveError(
                    f"zarr: the batch {where} has axes {have_axes!r}; cannot add images with axes {axes!r}"
                )
        shape = tuple(meta.get("shape", ()))[1:]
        dtype = _dtype_from_meta(meta) if target.zarr_format == 3 else np.dtype(meta.get("dtype", "u1"))
        for arr in arrays:
            if reader is None or reader.chunks[0] != 1 or tuple(arr.shape) != reader.shape[1:] or bad:
                raise ImageSaveError(
                    f"zarr: the batch {where} holds images of shape {shape} and dtype {dtype}; "
                    f"cannot store one of shape {tuple(arr.shape)} there with keywords {sorted(kwargs)} "
                    "(delete the batch or save under another folder)"
                )
            if np.dtype(arr.dtype) != reader.dtype:
                raise ImageSaveError(
                    f"zarr: the batch {where} holds {reader.dtype} images, not {np.dtype(arr.dtype)}"
                )
        assert reader is not None
        fmt = 2 if reader.v2_keys and target.zarr_format == 2 else 3
        existing = list(holder.names or [])
        fresh: list[tuple[str, Any]] = []
        for name, arr in zip(names, arrays):
            if name in existing and existing.index(name) < reader.shape[0]:
                self._replace_member(ploc.fs, target.path, existing.index(name), arr, reader, fmt)
            else:
                fresh.append((name, arr))
        if fresh:
            self._append_members(ploc, holder, target, existing, fresh, reader, fmt)

    def _replace_member(
        self, fs: _FS, array_path: str, index: int, arr: np.ndarray, reader: _ArrayReader, fmt: int
    ) -> None:
        """Write image ``index`` anew: stage its chunks, then swap them in as one unit."""
        skip_empty = not self.config.write_empty_chunks
        unit = member_unit(array_path, index, fmt, reader.sep) if fs.supports_rename else None
        if unit is None:  # object store or flat keys: chunk by chunk, each write atomic
            self._write_chunks(fs, array_path, arr[None], reader.chunks, reader.codec, index, fmt, reader.sep)
            return
        parent, name = os.path.split(unit)
        os.makedirs(parent, exist_ok=True)
        stage = os.path.join(parent, f".{name}{_TMP_MARK}{uuid.uuid4().hex[:8]}")
        try:
            self._write_chunks(
                fs, array_path, arr[None], reader.chunks, reader.codec, 0, fmt, reader.sep, skip_empty,
                member_root=stage,
            )
            old = put_in_place(stage, unit)
        except BaseException:
            _remove(stage)
            raise
        if old is not None:
            # unreachable by any reader now: deleted by a worker, off the saving thread
            # (a process that dies first leaves it to cleanup())
            _pool("write").submit(_remove, old)

    def _append_members(
        self,
        ploc: _Loc,
        holder: _Node,
        target: _Node,
        existing: list[str | None],
        fresh: list[tuple[str, Any]],
        reader: _ArrayReader,
        fmt: int,
    ) -> None:
        """Add images past the end: chunks first, then the metadata (which publishes them)."""
        fs = ploc.fs
        start = reader.shape[0]
        # rows a killed append published in the array but not in the names stay unnamed
        names = existing[:start] + [None] * (start - len(existing[:start]))
        units = [member_unit(target.path, start + k, fmt, reader.sep) for k in range(len(fresh))]
        if fs.supports_native_files:
            for unit in units:  # what a killed append left there
                if unit is not None and os.path.lexists(unit):
                    _remove(unit)
        stack = np.stack([np.asarray(a) for _, a in fresh])
        try:
            self._write_chunks(fs, target.path, stack, reader.chunks, reader.codec, start, fmt, reader.sep)
        except BaseException:
            if fs.supports_native_files:
                for unit in units:
                    if unit is not None:
                        _remove(unit)
            raise
        new_names = names + [n for n, _ in fresh]
        new_shape = [start + len(fresh), *reader.shape[1:]]
        # metadata last: until here the appended chunks lie beyond the array's shape
        if target.zarr_format == 2:
            zarray = {k: v for k, v in target.meta.items() if k not in ("attributes", "node_type")}
            zarray["shape"] = new_shape
            attrs = dict(target.attrs)
            if target is holder or "names" in dict(attrs.get("polystore") or {}):
                attrs = with_names(attrs, new_names)
            fs.write_atomic(fs.join(target.path, ".zarray"), _dumps(zarray))
            fs.write_atomic(fs.join(target.path, ".zattrs"), _dumps(attrs))
        else:
            meta3 = dict(target.meta)
            meta3["shape"] = new_shape
            attrs = dict(target.attrs)
            if "names" in dict(attrs.get("polystore") or {}):
                attrs = with_names(attrs, new_names)
            meta3["attributes"] = attrs
            fs.write_atomic(fs.join(target.path, _META), _dumps(meta3))
        if holder is not target:  # OME batch: the names live in the image group
            self._write_names(fs, holder, new_names)

    @staticmethod
    def _write_names(fs: _FS, holder: _Node, names: Sequence[str | None]) -> None:
        attrs = with_names(holder.attrs, names)
        if holder.zarr_format == 2:
            fs.write_atomic(fs.join(holder.path, ".zattrs"), _dumps(attrs))
        else:
            meta = dict(holder.meta)
            meta["attributes"] = attrs
            fs.write_atomic(fs.join(holder.path, _META), _dumps(meta))

    def _delete_member(self, loc: _Loc, name: str) -> bool:
        """Remove ``name`` from the batch at ``loc`` (under its lock); False if it is not there."""
        with self._batch_lock(loc):
            holder = self._node(loc)
            names = list(holder.names or []) if holder is not None else []
            if holder is None or name not in names:
                return False
            names[names.index(name)] = None
            self._write_names(loc.fs, holder, names)
        return True
