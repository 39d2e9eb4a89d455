"""Saving one array or OME image: input preparation, keyword checks, parent groups, atomic publish."""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from polystore.base import PathLike
from polystore.exceptions import ImageSaveError, StorageError, UnsupportedFormatError
from polystore.zarr._batch import _BatchWriter
from polystore.zarr._chunks import resolve_chunks
from polystore.zarr._codec import _codec_for
from polystore.zarr._dtypes import _check_dtype
from polystore.zarr._fs import _FS
from polystore.zarr._listing import _Lister
from polystore.zarr._meta import _write_group
from polystore.zarr._model import ArrayMeta
from polystore.zarr._nodes import _Image, _Loc, _Node
from polystore.zarr._plate import _PlateWriter
from polystore.zarr._ome import _check_channels, _is_dask, _jsonable, _max_pyramid_levels, _validate_axes

#: The keywords ``ZarrBackend.save`` accepts.
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
        "acquisition",
        "client",
    }
)


class _Saver(_BatchWriter, _Lister, _PlateWriter):
    """The saving half of :class:`~polystore.zarr.backend.ZarrBackend` (a mixin)."""

    def _save(self, data: Any, file_path: PathLike, kwargs: dict[str, Any]) -> None:
        """``save``: prepare ``data``, check the keywords, write it (see the facade's docstring)."""
        loc = self._locate(file_path)
        arr = self._prepare(data, loc.display, allow_lazy=True)
        image = self._image_from_kwargs(arr, kwargs)
        self._save_image(loc, image, kwargs)

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
        acquisition = _acquisition(kwargs.get("acquisition"))
        field = self._plate_of(loc) if image.axes is not None else None
        image.zarr_format = self._format_for(loc, kwargs.get("zarr_format"))
        fmt = image.zarr_format
        try:
            with self._plate_lock(loc, field):
                self._ensure_groups(loc.fs, loc.store, loc.key, parents_only=True, zarr_format=fmt)

            client = None
            if _is_dask(image.data):
                from polystore.zarr._distributed import active_client

                client = active_client(kwargs.get("client"))

            def build(dest: str) -> None:
                if image.axes is None:
                    self._write_array(
                        fs, dest, image.data, image.chunks, codec, image.attrs, None, image.names, fmt
                    )
                else:
                    self._write_ome(fs, dest, image, codec, name)

            # a batch being replaced whole: no append or replace may run during the swap
            batch = existing is not None and existing.names is not None
            guard = self._batch_lock(loc) if batch else contextlib.nullcontext()
            if client is not None:  # workers write the chunks; old content kept until published
                from polystore.zarr._distributed import publish_on_cluster

                publish_on_cluster(self, client, fs, target, image, codec, name, guard, in_store=bool(loc.key))
            else:
                fs.publish(target, build, guard)
        except (StorageError, TypeError, ValueError):
            raise
        except Exception as exc:
            raise ImageSaveError(f"zarr: could not write {self._where(loc)}: {exc}") from exc
        self._register_field(loc, field, acquisition)

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


def _acquisition(value: Any) -> int | None:
    """The ``acquisition=`` save keyword (a plate acquisition id >= 0), checked before anything is written."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 0:
        raise ValueError(f"acquisition= must be an integer id >= 0 (an OME-NGFF plate acquisition), not {value!r}")
    return int(value)
