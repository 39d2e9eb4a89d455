"""ZarrBackend: the zarr / OME-Zarr storage backend (saving, loading, listing, moving)."""

from __future__ import annotations

import contextlib
import json
import os
import posixpath
import threading
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
import zarr

from polystore._listing import matches, normalize_extensions
from polystore.base import PathLike, StorageBackend
from polystore.config import ZarrConfig
from polystore.exceptions import (
    DirectoryNotEmptyError,
    ImageLoadError,
    ImageSaveError,
    PathExistsError,
    PathIsADirectoryError,
    PathNotADirectoryError,
    PathNotFoundError,
    StorageError,
    StorageResolutionError,
    UnsupportedFormatError,
)
from polystore.zarr._chunks import resolve_chunks
from polystore.zarr._codec import _codec_for, ends_with_blosc, truncated_blosc_chunk
from polystore.zarr._dtypes import _check_dtype
from polystore.zarr._fs import _FS, _FsspecFS, _LocalFS, _contained
from polystore.zarr._meta import _META, _V2_META, _write_group
from polystore.zarr._model import ArrayMeta, GroupMeta, parse_node
from polystore.zarr._nodes import _Image, _Loc, _Node, _is_hidden
from polystore.zarr._ome import (
    _check_channels,
    _drop_lead_axis,
    _is_dask,
    _jsonable,
    _max_pyramid_levels,
    _ome_display,
    _validate_axes,
)
from polystore.zarr._read import _ArrayReader
from polystore.zarr._batch import _BatchWriter, pin_members
from polystore.zarr._pins import _Pins, read_stable


class ZarrBackend(StorageBackend, _BatchWriter):
    """Chunked, compressed array storage in zarr v3 / OME-Zarr, local or on object storage.

    Args:
        root: optional base for every path: a local directory or a URL such as
            ``"s3://bucket/prefix"``. Without it, paths are local filesystem
            paths (or URLs).
        storage_options: options for fsspec (e.g. s3fs ``key``, ``secret``,
            ``client_kwargs={"endpoint_url": ...}``) used for URL paths.
        config: :class:`~polystore.config.ZarrConfig` (compressor, level,
            chunk strategy). Defaults: Blosc LZ4 level 1 with shuffle, ADAPTIVE.

    Save keywords: ``chunks``, ``axes`` ("tczyx", "zyx", "yx", ...),
    ``pyramid_levels``, ``channel_names``, ``channel_colors``, ``scale``,
    ``compressor``, ``compression_level``, ``attrs``, ``metadata``,
    ``overwrite``. NumPy arrays, framework tensors and dask arrays (written
    slab by slab) are accepted.
    Load keywords: ``lazy`` (dask array, reads nothing yet), ``level``
    (pyramid level of an OME-Zarr image), ``framework`` ("torch", "jax", ...).
    """

    _backend_type = "zarr"
    #: save_batch lays a batch out as one N-D array: never split it into pieces.
    splits_batches: ClassVar[bool] = False

    def __init__(
        self,
        root: PathLike | None = None,
        storage_options: Mapping[str, Any] | None = None,
        config: ZarrConfig | None = None,
    ) -> None:
        self.config = config or ZarrConfig()
        self.storage_options = dict(storage_options or {})
        if root is None:
            self.root: str | None = None
        else:
            text = os.fspath(root)
            # a local root is fixed now, so a later chdir does not move it
            self.root = (text if "://" in text else os.path.abspath(text)).rstrip("/")
        self._local = _LocalFS()
        self._remote: dict[str, _FsspecFS] = {}
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:
        """Picklable (for process pools): settings only; connections are re-made."""
        return {"root": self.root, "storage_options": self.storage_options, "config": self.config}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["root"], state["storage_options"], state["config"])  # type: ignore[misc]

    def __repr__(self) -> str:
        return f"ZarrBackend(root={self.root!r}, config={self.config!r})"

    # ------------------------------------------------------------------ paths

    def _fs_for(self, url: str) -> tuple[_FS, str]:
        if "://" in url:
            protocol, _, rest = url.partition("://")
            if protocol == "file":
                return self._local, os.path.abspath(rest)
            with self._lock:
                fs = self._remote.get(protocol)
                if fs is None:
                    fs = _FsspecFS(protocol, self.storage_options)
                    self._remote[protocol] = fs
            rest = posixpath.normpath(rest) if rest else rest
            if rest == ".." or rest.startswith("../"):
                raise StorageResolutionError(f"zarr: {url!r} climbs above its bucket")
            return fs, rest.rstrip("/")
        return self._local, os.path.abspath(url)

    def _absolute(self, path: PathLike) -> str:
        """``path`` under ``root`` (when set); a path resolving outside ``root`` is refused."""
        p = os.fspath(path)
        if self.root is None or "://" in p and not p.startswith(self.root + "/"):
            return p  # no root, or an explicit URL elsewhere
        rel = p[len(self.root) :] if p == self.root or p.startswith(self.root + "/") else p
        got = _contained(self.root, rel.replace("\\", "/").strip("/"))
        if got is None:
            raise StorageResolutionError(
                f"zarr: {p!r} resolves outside the backend root {self.root!r}; refusing to use it"
            )
        return got

    def _locate(self, path: PathLike) -> _Loc:
        display = os.fspath(path)
        fs, full = self._fs_for(self._absolute(display))
        parts = [p for p in full.split("/") if p not in ("", ".")]
        lead = "/" if full.startswith("/") else ""
        # 1. the first component named *.zarr ends the store
        for i, part in enumerate(parts):
            if part.lower().endswith(".zarr"):
                return _Loc(fs, lead + "/".join(parts[: i + 1]), "/".join(parts[i + 1 :]), display)
        # 2. the topmost existing ancestor holding zarr metadata is the store
        for i in range(1, len(parts) + 1):
            candidate = lead + "/".join(parts[:i])
            if self._has_zarr_meta(fs, candidate):
                return _Loc(fs, candidate, "/".join(parts[i:]), display)
        # 3. otherwise the whole path is a (new) store
        return _Loc(fs, lead + "/".join(parts), "", display)

    @staticmethod
    def _has_zarr_meta(fs: _FS, path: str) -> bool:
        return fs.any_file([fs.join(path, m) for m in (_META, *_V2_META)])

    def _where(self, loc: _Loc, key: str | None = None) -> str:
        key = loc.key if key is None else key
        return f"{key or '/'!r} in store {loc.fs.url(loc.store)!r}"

    # ------------------------------------------------------------------ metadata

    def _read_meta(self, fs: _FS, path: str) -> ArrayMeta | GroupMeta | None:
        """The validated metadata of the node at ``path`` (None: no zarr node there)."""
        raw3, rawa, rawg = fs.read_many([fs.join(path, _META), fs.join(path, ".zarray"), fs.join(path, ".zgroup")])
        zattrs = fs.read(fs.join(path, ".zattrs")) if raw3 is None and (rawa or rawg) else None
        return parse_node(raw3, rawa, rawg, zattrs, fs.url(path))

    def _node(self, loc: _Loc) -> _Node | None:
        """What lives at ``loc`` (array, group, or a member of a batch), or None."""
        got = self._read_meta(loc.fs, loc.full)
        if got is not None:
            return _Node.of(loc.full, got)
        if loc.key:
            parent_key, _, name = loc.key.rpartition("/")
            parent_path = loc.fs.join(loc.store, parent_key) if parent_key else loc.store
            pgot = self._read_meta(loc.fs, parent_path)
            if pgot is not None:
                parent = _Node.of(parent_path, pgot)
                names = parent.names
                if names is not None and name in names:
                    return _Node(
                        "member", parent_path, parent.meta, parent.zarr_format, names.index(name), parent,
                        parent.parsed,
                    )
        return None

    def _image_array(self, node: _Node, level: int, loc: _Loc) -> _Node:
        """The array of pyramid ``level`` of an OME image group (always inside its store)."""
        ms = node.multiscale
        assert ms is not None
        if not 0 <= level < len(ms.datasets):
            raise StorageResolutionError(
                f"zarr: image {self._where(loc)} has {len(ms.datasets)} levels; level {level} does not exist"
            )
        rel = ms.datasets[level].path
        apath = loc.fs.inside(node.path, rel)
        got = self._read_meta(loc.fs, apath)
        if not isinstance(got, ArrayMeta):
            raise ImageLoadError(
                f"zarr: image {self._where(loc)} lists level {rel!r} but that array is missing"
            )
        return _Node.of(apath, got)

    # ------------------------------------------------------------------ save

    def _prepare(self, data: Any, where: str, allow_lazy: bool = False) -> Any:
        """``data`` as a little-endian NumPy array (or, if ``allow_lazy``, a dask array)."""
        to_numpy: Callable[[Any], Any]
        try:
            from polystore.frameworks import to_numpy  # the core's converter, when present
        except ImportError:  # pragma: no cover - core not built yet
            to_numpy = np.asarray
        if _is_dask(data):
            if allow_lazy and data.ndim >= 1 and data.size:
                dtype = np.dtype(data.dtype)
                _check_dtype(dtype, where)
                return data.astype(dtype.newbyteorder("<")) if dtype.byteorder == ">" else data
            data = data.compute()
        elif hasattr(data, "compute") and not isinstance(data, np.ndarray):
            data = data.compute()
        try:
            arr = to_numpy(data)
        except Exception as exc:
            raise UnsupportedFormatError(
                f"zarr backend: cannot store {type(data).__name__} at {where!r}: {exc}"
            ) from exc
        arr = np.asarray(arr)
        _check_dtype(arr.dtype, where)
        if arr.dtype.byteorder == ">":
            arr = arr.astype(arr.dtype.newbyteorder("<"))
        return arr

    def save(self, data: Any, file_path: PathLike, **kwargs: Any) -> None:
        """Write ``data`` as a chunked array (or OME-Zarr image when ``axes=`` is given).

        Keywords: ``chunks`` (tuple/int; clipped to the array), ``axes``
        ("tczyx" subset in that order; writes OME-NGFF 0.5 multiscales),
        ``pyramid_levels`` (extra 2x-downsampled levels, y/x only),
        ``channel_names`` / ``channel_colors`` (hex "RRGGBB"), ``scale``
        (physical size per axis), ``compressor`` / ``compression_level``
        (override the config), ``attrs`` (user attributes), ``overwrite``
        (default True; False raises if the path exists), ``metadata`` (a
        JSON-able dict, read back by :meth:`load_metadata`).
        """
        loc = self._locate(file_path)
        arr = self._prepare(data, loc.display, allow_lazy=True)
        image = self._image_from_kwargs(arr, kwargs)
        self._save_image(loc, image, kwargs)

    def _image_from_kwargs(self, arr: np.ndarray, kwargs: dict[str, Any], lead_axis: bool = False) -> _Image:
        axes = kwargs.get("axes")
        if axes is not None:
            axes = "".join(axes) if not isinstance(axes, str) else axes
            _validate_axes(axes, arr.ndim)
        chunks = resolve_chunks(arr.shape, arr.dtype, kwargs.get("chunks"), self.config)
        if lead_axis and kwargs.get("chunks") is None:
            chunks = (1,) + chunks[1:]
        levels = int(kwargs.get("pyramid_levels") or 0)
        if levels and axes is None:
            raise ValueError("pyramid_levels needs axes= (OME-Zarr multiscales)")
        if levels and levels > _max_pyramid_levels(arr.shape):
            raise ValueError(
                f"pyramid_levels={levels} is deeper than an image of shape {tuple(arr.shape)} allows "
                f"(y and x can be halved {_max_pyramid_levels(arr.shape)} times)"
            )
        if axes is not None:
            _check_channels(arr.shape, axes, kwargs.get("channel_names"), kwargs.get("channel_colors"))
        attrs = dict(kwargs.get("attrs") or {})
        metadata = kwargs.get("metadata")
        if metadata is not None:
            if not isinstance(metadata, Mapping):
                raise TypeError(f"metadata= must be a dict, not {type(metadata).__name__}")
            attrs["polystore_metadata"] = _jsonable(dict(metadata))
        return _Image(
            arr,
            chunks,
            axes,
            levels,
            kwargs.get("channel_names"),
            kwargs.get("channel_colors"),
            kwargs.get("scale"),
            attrs=attrs,
        )

    def _save_image(self, loc: _Loc, image: _Image, kwargs: Mapping[str, Any]) -> None:
        unknown = set(kwargs) - _SAVE_KWARGS
        if unknown:
            raise TypeError(f"zarr backend: unexpected save keyword(s): {', '.join(sorted(unknown))}")
        codec = _codec_for(kwargs.get("compressor"), kwargs.get("compression_level"), self.config)
        overwrite = bool(kwargs.get("overwrite", True))
        fs = loc.fs
        target = loc.full
        name = (loc.key or loc.store).rstrip("/").rpartition("/")[2]
        if name.lower().endswith(".zarr"):
            name = name[:-5]
        existing = self._node(loc)
        if existing is not None and not overwrite:
            raise ImageSaveError(f"zarr: {self._where(loc)} already exists (overwrite=False)")
        if image.names is None and loc.key:
            # a path inside a batch: replace that member, or add a new one
            parent_key, _, member_name = loc.key.rpartition("/")
            ploc = _Loc(loc.fs, loc.store, parent_key, loc.display.rstrip("/").rpartition("/")[0])
            in_batch = existing is not None and existing.kind == "member"
            if existing is None and not in_batch:
                parent_node = self._node(ploc)
                in_batch = parent_node is not None and parent_node.names is not None
            if in_batch:
                if image.axes is not None:
                    raise ImageSaveError(f"zarr: {self._where(loc)} is in a batch; axes= cannot apply")
                if self._merge_into_batch(ploc, [member_name], [image.data], kwargs):
                    return
        refusal = self._replace_refusal(loc, existing)
        if refusal:
            raise ImageSaveError(refusal)
        image.zarr_format = self._format_for(loc, kwargs.get("zarr_format"))
        fmt = image.zarr_format
        try:
            self._ensure_groups(loc.fs, loc.store, loc.key, parents_only=True, zarr_format=fmt)

            def build(dest: str) -> None:
                if image.axes is None:
                    self._write_array(
                        fs, dest, image.data, image.chunks, codec, image.attrs, None, image.names, fmt
                    )
                else:
                    self._write_ome(fs, dest, image, codec, name)

            # a batch being replaced whole: no append or replace may run during the swap
            batch = existing is not None and existing.names is not None
            fs.publish(target, build, self._batch_lock(loc) if batch else contextlib.nullcontext())
        except (StorageError, TypeError, ValueError):
            raise
        except Exception as exc:
            raise ImageSaveError(f"zarr: could not write {self._where(loc)}: {exc}") from exc

    def _format_for(self, loc: _Loc, requested: Any) -> int:
        """The zarr format of a new node: the store's own, else ``requested``, else the config's."""
        fmt = int(requested) if requested is not None else None
        if fmt not in (None, 2, 3):
            raise ValueError(f"zarr_format must be 2 or 3, got {requested!r}")
        if loc.key:
            got = self._read_meta(loc.fs, loc.store)
            if got is not None:
                if fmt is not None and fmt != got.zarr_format:
                    raise ImageSaveError(
                        f"zarr: store {loc.fs.url(loc.store)!r} is zarr v{got.zarr_format}; "
                        f"cannot add a v{fmt} node"
                    )
                return got.zarr_format
        return fmt or self.config.zarr_format

    def _replace_refusal(self, loc: _Loc, existing: _Node | None) -> str | None:
        """Why saving at ``loc`` must not replace what is there (None: it may).

        Arrays, images, batches, empty groups and leftovers of interrupted
        writes are replaced; a group holding other nodes, or a non-empty folder
        that is not zarr, is never deleted by a save.
        """
        if existing is not None:
            if existing.kind == "group" and not existing.is_image and existing.names is None:
                if any(f or d for _, f, d in self._children(loc, existing)):
                    return (
                        f"zarr: {self._where(loc)} is a group with content; saving there would delete it "
                        "(delete it first with delete(path, recursive=True))"
                    )
            return None
        if loc.fs.isfile(loc.full):
            return (
                f"zarr: {loc.fs.url(loc.full)!r} is a file, not a zarr array or group; refusing to "
                "replace it (delete it first or save under another name)"
            )
        entries = loc.fs.listdir(loc.full)
        if not entries:
            return None
        if loc.key and self._has_zarr_meta(loc.fs, loc.store):
            return None  # chunks of an interrupted write: replace them
        return (
            f"zarr: {loc.fs.url(loc.full)!r} is a folder that is not a zarr array or group; "
            "refusing to replace it"
        )

    def _ensure_groups(
        self, fs: _FS, store: str, key: str, parents_only: bool, zarr_format: int | None = None
    ) -> None:
        """Make the store root and every group on the way to ``key`` exist."""
        parts = [p for p in key.split("/") if p]
        if parents_only:
            parts = parts[:-1]
        paths = [store] + [fs.join(store, "/".join(parts[: i + 1])) for i in range(len(parts))]
        if not parts and not key and parents_only:
            # saving at the store root: only the store's parent directory must exist
            fs.makedirs(os.path.dirname(store))
            return
        fmt = zarr_format or self.config.zarr_format
        for p in paths:
            got = self._read_meta(fs, p)
            if got is None:
                fs.makedirs(p)
                _write_group(fs, p, {}, fmt)
            elif p == store:
                fmt = got.zarr_format  # new groups follow the store's format
                if isinstance(got, ArrayMeta):
                    raise ImageSaveError(
                        f"zarr: cannot create {key!r} in store {fs.url(store)!r}: "
                        f"{fs.url(p)!r} is an array, not a group"
                    )
            elif isinstance(got, ArrayMeta):
                raise ImageSaveError(
                    f"zarr: cannot create {key!r} in store {fs.url(store)!r}: "
                    f"{fs.url(p)!r} is an array, not a group"
                )

    # ------------------------------------------------------------------ load

    def load(self, file_path: PathLike, **kwargs: Any) -> Any:
        """Read the array (or member of a batch, or level 0 of an OME image) at ``file_path``.

        ``lazy=True`` returns a dask array that reads nothing until computed
        (and then only the chunks its slices touch). ``level=k`` picks a
        pyramid level of an OME-Zarr image.
        """
        lazy = bool(kwargs.pop("lazy", False))
        level = int(kwargs.pop("level", 0))
        framework = kwargs.pop("framework", None)
        if kwargs:
            raise TypeError(f"zarr backend: unexpected load keyword(s): {', '.join(sorted(kwargs))}")
        loc = self._locate(file_path)

        def read(pins: _Pins) -> Any:
            self._pin_node(loc, pins)
            node = self._resolve_for_load(loc)
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
        return _ArrayReader(loc.fs, node.path, meta, self._where(loc, rel))

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
            return self._lazy(loc, node, reader, index)
        if pins is not None and reader is not None:
            pin_members(pins, node, reader, index)
        if reader is not None:
            try:
                if index is None:
                    return reader.read([0] * reader.ndim, list(reader.shape))
                return reader[index]
            except MemoryError as exc:  # NumPy refuses the buffer before allocating it
                raise ImageLoadError(
                    f"zarr: array {self._where(loc, rel)} of shape {reader.shape} and dtype {reader.dtype} "
                    f"does not fit in memory ({exc}); load it with lazy=True and read parts of it"
                ) from exc
        if loc.fs.supports_native_files and ends_with_blosc(node.meta):
            sep = node.parsed.separator if isinstance(node.parsed, ArrayMeta) else "/"
            prefix = "" if index is None else (f"{index}{sep}" if node.zarr_format == 2 else f"c{sep}{index}{sep}")
            bad = truncated_blosc_chunk(node.path, prefix)
            if bad is not None:
                raise ImageLoadError(f"zarr: corrupted chunk {bad[0]!r} of array {self._where(loc, rel)}: {bad[1]}")
        arr = self._zarr_array(loc, node)
        try:
            return np.asarray(arr[()] if index is None else arr[index])
        except Exception as exc:
            raise ImageLoadError(
                f"zarr: cannot read array {self._where(loc, rel)} (a chunk is corrupted or unreadable): {exc}"
            ) from exc

    def _lazy(self, loc: _Loc, node: _Node, reader: _ArrayReader | None, index: int | None) -> Any:
        try:
            import dask.array as _dask_array
        except ImportError:  # pragma: no cover - dask is in the zarr extra
            arr = self._zarr_array(loc, node)
            return arr if index is None else arr[index]
        da: Any = _dask_array
        meta = node.array
        assert meta is not None
        chunks = meta.lazy_chunks
        if reader is not None:
            out = da.from_array(
                reader,
                chunks=chunks,
                asarray=False,
                fancy=False,
                lock=False,
                meta=np.empty((0,) * reader.ndim, dtype=reader.dtype),
                name=f"polystore-zarr-{uuid.uuid4().hex}",
            )
        else:
            out = da.from_zarr(self._zarr_array(loc, node), chunks=chunks)
        return out if index is None else out[index]

    # ------------------------------------------------------------------ batches

    def save_batch(
        self, data_list: Sequence[Any], identifiers: Sequence[PathLike], **kwargs: Any
    ) -> None:
        """Save N images; same-shape images with one parent become ONE N-D array.

        ``"s.zarr/f0"``, ``"s.zarr/f1"``, ... (same parent, same shape and
        dtype) are written as one array at the parent (``"s.zarr"``) with axis 0
        of length N and chunk size 1 along it, and the names in its attributes;
        ``load("s.zarr/f1")`` reads only that image's chunks and
        ``load("s.zarr")`` returns the whole stack. With ``axes=`` (one letter
        more than an image has, e.g. "zyx" for a batch of yx planes) the
        parent is written as an OME-Zarr image instead. A lone image, and
        images whose parent or shape differ, are saved one by one. Into an
        existing batch, images are replaced or appended (see
        ``docs/zarr-layout.md``).
        """
        self._save_batch(data_list, identifiers, kwargs)

    def load_batch(self, file_paths: Sequence[PathLike], **kwargs: Any) -> list[Any]:
        """Read every path in order; members of one batch array are read in one pass."""
        if kwargs.get("lazy") or not file_paths:
            return [self.load(path, **kwargs) for path in file_paths]
        locs = [self._locate(path) for path in file_paths]

        def read(pins: _Pins) -> list[Any]:
            out: list[Any] = [None] * len(file_paths)
            pending: dict[str, tuple[_Loc, _Node, list[tuple[int, int]]]] = {}
            for pos, loc in enumerate(locs):
                self._pin_node(loc, pins)
                node = self._node(loc)
                if node is not None and node.kind == "member" and node.member_of is not None:
                    parent = node.member_of
                    if parent.kind == "group":
                        if parent.ome is None:
                            raise ImageLoadError(f"zarr: {self._where(loc)} is not readable")
                        parent = self._image_array(parent, 0, loc)
                        pins.hold(parent.path)
                    entry = pending.setdefault(parent.path, (loc, parent, []))
                    entry[2].append((pos, node.index))
                else:
                    out[pos] = self.load(file_paths[pos], **kwargs)
            for loc, node, items in pending.values():
                reader = self._reader(loc, node)
                indices = [i for _, i in items]
                lo, hi = min(indices), max(indices) + 1
                if reader is not None and hi - lo <= 2 * len(indices):
                    pin_members(pins, node, reader, range(lo, hi))
                    block = reader.read([lo] + [0] * (reader.ndim - 1), [hi] + list(reader.shape[1:]))
                    for pos, i in items:
                        out[pos] = block[i - lo]
                else:
                    for pos, i in items:
                        out[pos] = self._read_node(loc, node, i, False, pins)
            return out

        return read_stable(locs[0].fs, self.config.read_retries, self._where(locs[0]), read)

    # ------------------------------------------------------------------ listing

    def _children(self, loc: _Loc, node: _Node | None) -> list[tuple[str, bool, bool]]:
        """(name, is_file, is_dir) of entries directly inside ``loc``."""
        fs = loc.fs
        if node is not None:
            if node.kind == "member":
                return []
            names = node.names
            if names is not None:
                return [(n, True, False) for n in names if n is not None]
            if node.kind == "array" or node.is_image:
                return []
        entries = fs.listdir(loc.full)
        if entries is None:
            return []
        entries = sorted(e for e in entries if not _is_hidden(e) and e not in _V2_META and e != ".zattrs")
        inside_store = node is not None or self._has_zarr_meta(fs, loc.store)
        paths = [fs.join(loc.full, e) for e in entries]
        out: list[tuple[str, bool, bool]] = []
        metas = fs.read_many([fs.join(p, _META) for p in paths])
        for name, p, raw in zip(entries, paths, metas):
            try:
                got = parse_node(raw, None, None, None, fs.url(p)) if raw is not None else self._read_meta(fs, p)
            except ImageLoadError:
                out.append((name, True, False))  # listed; loading it reports what is wrong
                continue
            out.append(self._classify(name, got, fs, p, inside_store))
        return out

    @staticmethod
    def _classify(
        name: str, got: ArrayMeta | GroupMeta | None, fs: _FS, path: str, inside_store: bool
    ) -> tuple[str, bool, bool]:
        if got is None:
            if inside_store:
                return (name, False, False)  # chunk dirs, interrupted writes: not nodes
            # outside stores only folders count (they may hold stores); other files are not zarr
            return (name, False, fs.isdir(path))
        n = _Node.of(path, got)
        if n.names is not None:
            return (name, False, True)
        return (name, n.is_file, not n.is_file)

    def _not_a_group(self, loc: _Loc) -> PathNotADirectoryError:
        return PathNotADirectoryError(
            f"zarr: cannot list {self._where(loc)}: it is an array, not a group", loc.display, "zarr"
        )

    def list_dir(self, path: PathLike) -> list[str]:
        """Names of the groups, arrays, images and batch members directly inside ``path``."""
        loc = self._locate(path)
        node = self._node(loc)
        if node is None and not loc.fs.isdir(loc.full):
            raise PathNotFoundError(loc.display, "zarr")
        if node is not None and node.is_file:
            raise self._not_a_group(loc)
        return [name for name, f, d in self._children(loc, node) if f or d]

    def list_files(
        self,
        directory: PathLike,
        pattern: str | None = None,
        extensions: Iterable[str] | None = None,
        recursive: bool = False,
    ) -> list[str]:
        """Arrays, OME images and batch members under ``directory`` (paths, sorted)."""
        exts = normalize_extensions(extensions)
        base = os.fspath(directory).rstrip("/") or "/"
        loc = self._locate(base)
        node = self._node(loc)
        if node is None and not loc.fs.isdir(loc.full):
            raise PathNotFoundError(base, "zarr")
        if node is not None and node.is_file:
            raise self._not_a_group(loc)
        found: list[str] = []

        def walk(display: str, wloc: _Loc, wnode: _Node | None) -> None:
            for name, is_file, is_dir in self._children(wloc, wnode):
                child_display = display.rstrip("/") + "/" + name
                if is_file:
                    if matches(name, pattern, exts):
                        found.append(child_display)
                elif is_dir and recursive:
                    cloc = self._locate(child_display)
                    walk(child_display, cloc, self._node(cloc))

        walk(base, loc, node)
        return sorted(found)

    def exists(self, path: PathLike) -> bool:
        """True for an array, image, batch member, group or directory at ``path``."""
        loc = self._locate(path)
        try:
            if self._node(loc) is not None:
                return True
        except ImageLoadError:
            return True  # a node is there, with metadata load() will report as invalid
        return loc.fs.isdir(loc.full) and not self._is_junk(loc)

    def _is_junk(self, loc: _Loc) -> bool:
        """A directory inside a store without metadata (chunk dirs, interrupted writes)."""
        return bool(loc.key) and self._has_zarr_meta(loc.fs, loc.store)

    def is_file(self, path: PathLike) -> bool:
        """True for an array, an OME image or a member of a batch."""
        node = self._node(self._locate(path))
        return node is not None and node.is_file

    def is_dir(self, path: PathLike) -> bool:
        """True for a group, a batch array (it lists its members) or a plain directory."""
        loc = self._locate(path)
        node = self._node(loc)
        if node is not None:
            return not node.is_file
        return loc.fs.isdir(loc.full) and not self._is_junk(loc)

    def ensure_directory(self, directory: PathLike) -> str:
        """Create the store and the groups on the way to ``directory``."""
        loc = self._locate(directory)
        loc.fs.makedirs(os.path.dirname(loc.store))
        self._ensure_groups(loc.fs, loc.store, loc.key, parents_only=False)
        return os.fspath(directory)

    def delete(self, path: PathLike, recursive: bool = False) -> None:
        """Remove an array, image or group (non-empty groups need ``recursive=True``).

        Deleting a member of a batch removes its name from the batch index;
        its pixels stay in the batch array until the batch is rewritten.
        """
        loc = self._locate(path)
        node = self._node(loc)
        fs = loc.fs
        if node is None:
            if fs.isdir(loc.full):
                if fs.listdir(loc.full) and not recursive:
                    raise self._not_empty(loc, f"directory {loc.display!r}")
                fs.rmtree(loc.full)
                return
            raise PathNotFoundError(loc.display, "zarr")
        if node.kind == "member":
            parent_key, _, name = loc.key.rpartition("/")
            ploc = _Loc(fs, loc.store, parent_key, loc.display.rstrip("/").rpartition("/")[0])
            if not self._delete_member(ploc, name):
                raise PathNotFoundError(loc.display, "zarr")
            return
        if node.kind == "group" and not node.is_image and not recursive:
            if any(f or d for _, f, d in self._children(loc, node)):
                raise self._not_empty(loc, self._where(loc))
        fs.rmtree(loc.full)

    def _not_empty(self, loc: _Loc, where: str) -> DirectoryNotEmptyError:
        return DirectoryNotEmptyError(
            f"zarr: {where} is not empty; pass recursive=True (or call delete_all) to delete it",
            loc.display,
            "zarr",
        )

    def _refuse_existing(self, operation: str, dst: _Loc) -> None:
        """Raise :class:`PathExistsError` when anything (node, directory, file) is at ``dst``."""
        if self._node(dst) is not None or dst.fs.isdir(dst.full) or dst.fs.isfile(dst.full):
            raise PathExistsError(
                f"zarr: {operation} destination {self._where(dst)} already exists; delete it first to "
                "replace it (copy and move never overwrite)",
                dst.display,
                "zarr",
            )

    def copy(self, source: PathLike, destination: PathLike) -> None:
        """Copy an array, image, group or batch member to ``destination``."""
        src = self._locate(source)
        node = self._node(src)
        if node is None:
            raise PathNotFoundError(src.display, "zarr")
        dst = self._locate(destination)
        self._refuse_existing("copy", dst)
        if node.kind == "member" or src.fs is not dst.fs:
            self.save(self.load(source), destination, overwrite=False)
            return
        if dst.key:
            self._ensure_groups(dst.fs, dst.store, dst.key, parents_only=True)
        else:
            dst.fs.makedirs(os.path.dirname(dst.store))
        dst.fs.copytree(src.full, dst.full)

    def move(self, source: PathLike, destination: PathLike) -> None:
        """Move an array, image or group to ``destination`` (a rename on local disk)."""
        src = self._locate(source)
        node = self._node(src)
        if node is None:
            raise PathNotFoundError(src.display, "zarr")
        dst = self._locate(destination)
        self._refuse_existing("move", dst)
        if node.kind != "member" and src.fs.supports_rename and dst.fs is src.fs:
            if dst.key:
                self._ensure_groups(dst.fs, dst.store, dst.key, parents_only=True)
            else:
                dst.fs.makedirs(os.path.dirname(dst.store))
            dst.fs.rename(src.full, dst.full)
            return
        self.copy(source, destination)
        self.delete(source, recursive=True)

    # ------------------------------------------------------------------ extras

    def cleanup(self, directory: PathLike) -> list[str]:
        """Remove what killed writers left under ``directory`` (local stores); return it.

        An interrupted save leaves a hidden ``.<name>.polystore-tmp-*`` (or,
        if killed between the two renames of an overwrite, ``-old-*``)
        folder next to its target, an interrupted batch replace a staged
        member unit ``c/.<i>.polystore-tmp-*``, an interrupted metadata write
        a ``zarr.json.polystore-tmp-*`` file. Reads and listings ignore them;
        this deletes them. Do not run it while another process is saving there.
        """
        loc = self._locate(directory)
        return loc.fs.cleanup(loc.full)

    def load_metadata(self, file_path: PathLike) -> dict[str, Any] | None:
        """The ``metadata=`` dict saved with the array/image (or its batch), or None."""
        loc = self._locate(file_path)
        node = self._node(loc)
        if node is None:
            raise PathNotFoundError(loc.display, "zarr")
        holder = node.member_of if node.kind == "member" and node.member_of else node
        value = holder.attrs.get("polystore_metadata")
        return dict(value) if isinstance(value, dict) else None

    def info(self, path: PathLike) -> dict[str, Any]:
        """Shape, dtype, chunks, axes and kind of what is stored at ``path``.

        Always: ``kind`` ("array", "group", "image" or "member") and
        ``zarr_format``; for arrays, images and members also ``shape``,
        ``dtype`` and ``chunks``. An OME-Zarr image (and a member of a batch
        saved as one, whose axes and scale lose the batch axis) also reports
        what a viewer needs to show it:

        - ``axes`` (axis names joined, e.g. "czyx"), ``axis_names`` (list) and
          ``levels`` (pyramid levels; ``load(path, level=k)`` reads level k);
        - ``scale``: physical size per axis of level 0, when the image has one;
        - ``channel_axis``: position of the channel axis, when there is one;
        - ``channel_names`` (OMERO labels, None where missing),
          ``channel_colors`` (hex "RRGGBB") and ``contrast_limits`` (OMERO
          ``window`` start/end per channel), each only when every channel has
          a valid entry.
        """
        loc = self._locate(path)
        node = self._node(loc)
        if node is None:
            raise PathNotFoundError(loc.display, "zarr")
        out: dict[str, Any] = {"kind": "image" if node.is_image else node.kind, "zarr_format": node.zarr_format}
        arr_node = node.member_of if node.kind == "member" and node.member_of else node
        ms = arr_node.multiscale
        if arr_node.kind == "group" and ms is not None:
            out["axes"] = "".join(ms.axes)
            out["levels"] = len(ms.datasets)
            display = _ome_display(ms.ome)
            if node.kind == "member":
                display = _drop_lead_axis(display)
                out["axes"] = "".join(display["axis_names"])
            out.update(display)
            arr_node = self._image_array(arr_node, 0, loc)
        meta = arr_node.array
        if meta is not None:
            out["shape"] = meta.shape[1:] if node.kind == "member" else meta.shape
            out["dtype"] = str(meta.dtype) if meta.dtype is not None else str(
                meta.raw.get("data_type", meta.raw.get("dtype"))
            )
            out["chunks"] = meta.chunks
        return out


#: Alias used by the application polystore was extracted from (seed 004).
ZarrStorageBackend = ZarrBackend

_SAVE_KWARGS = frozenset(
    {
        "chunks",
        "axes",
        "pyramid_levels",
        "channel_names",
        "channel_colors",
        "scale",
        "compressor",
        "compression_level",
        "attrs",
        "overwrite",
        "metadata",
        "zarr_format",
    }
)
