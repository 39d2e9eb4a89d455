"""Frames in acquisition order: ``save(frame, path, index={"t": 3, "c": 1, "z": 7})`` into one OME-Zarr image.

:meth:`_FrameSaver._declare_image` writes an empty OME-NGFF 0.5 image (one
level, no chunks: every pixel reads as the fill value) whose shape is fixed,
or whose ``t`` axis is unlimited (length 0 until frames arrive). A frame
saved with ``index=`` then goes to the chunks it covers. The rules (written
down in ``docs/zarr-layout.md``, section "Frames in acquisition order"):

- a frame's own axes are the image's trailing ``frame.ndim`` axes; ``index``
  names positions along the others (missing keys mean 0), as for the napari
  and Fiji backends (``docs/frame-index.md``);
- frames whose positions share a chunk row (the chunks with the same
  coordinates along the index axes) are buffered and the row is written when
  all its positions have arrived, at :meth:`_FrameSaver.flush`, at exit, or
  when the buffers would exceed ``ZarrConfig.frame_buffer_bytes`` (oldest row
  first; a row written early is read back when a later frame falls in it);
- every chunk file is written beside its key and renamed over it (one atomic
  replace), so a reader sees a chunk before or after, never half of one;
- an unlimited ``t`` grows after the chunks are written: the array metadata
  is re-read and rewritten with ``max(its t, the new t)`` under the image's
  lock (the batch lock), so writers of different chunks in several processes
  all land.
"""

from __future__ import annotations

import atexit
import math
import weakref
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from polystore.base import PathLike
from polystore.exceptions import ImageSaveError, StorageError
from polystore.zarr._batch import batch_lock
from polystore.zarr._chunks import resolve_chunks
from polystore.zarr._codec import _codec_for
from polystore.zarr._dtypes import _check_dtype, _fill_value
from polystore.zarr._meta import _META, _dumps, _write_group
from polystore.zarr._model import ArrayMeta, GroupMeta
from polystore.zarr._nodes import _Loc
from polystore.zarr._ome import _axis_entry, _check_channels, _max_pyramid_levels, _omero, _validate_axes
from polystore.zarr._pyramid import _PyramidBuilder
from polystore.zarr._read import _ArrayReader
from polystore.zarr._save import _acquisition
from polystore.zarr._tree import _TreeEditor
from polystore.zarr._write import write_chunk_row

#: Group attribute recording the declaration (which axis, if any, is unlimited).
FRAMES_ATTR = "polystore_frames"
#: Largest index along an unlimited axis (as in the streaming protocol).
MAX_INDEX = 2**31

_LIVE: weakref.WeakSet[_FrameSaver] = weakref.WeakSet()


def _flush_all_at_exit() -> None:
    for saver in list(_LIVE):
        try:
            saver.flush()
        except Exception:  # noqa: BLE001 - best effort at interpreter exit
            pass


atexit.register(_flush_all_at_exit)


@dataclass
class _Row:
    """The buffered frames of one chunk row (chunk coordinates ``key`` along the index axes)."""

    key: tuple[int, ...]
    data: np.ndarray
    expected: int
    filled: set[tuple[int, ...]] = field(default_factory=set)


@dataclass
class _OpenImage:
    """A frame-written image this backend has buffered frames for."""

    loc: _Loc
    array_path: str
    lead: int  # number of index axes (image ndim - frame ndim)
    meta: ArrayMeta  # level-0 array as last read (t may lag behind other writers)
    axes: str
    unlimited: str | None
    rows: dict[tuple[int, ...], _Row] = field(default_factory=dict)

    @property
    def nbytes(self) -> int:
        return sum(r.data.nbytes for r in self.rows.values())


def _dtype(meta: ArrayMeta) -> np.dtype[Any]:
    assert meta.dtype is not None  # polystore-readable arrays always have one
    return meta.dtype


class _FrameSaver(_TreeEditor, _PyramidBuilder):
    """Declaring an image and saving frames into it by ``index`` (a mixin of the backend)."""

    _open_images: dict[str, _OpenImage]

    # ------------------------------------------------------------------ declaring

    def _declare_image(
        self,
        file_path: PathLike,
        shape: Sequence[int | None],
        dtype: Any,
        axes: str,
        chunks: Any,
        channel_names: Sequence[str] | None,
        channel_colors: Sequence[str] | None,
        scale: Sequence[float] | None,
        compressor: Any,
        compression_level: int | None,
        overwrite: bool,
        acquisition: int | None = None,
        pyramid_levels: int = 0,
    ) -> None:
        loc = self._locate(file_path)
        acquisition = _acquisition(acquisition)
        axes = "".join(axes)
        dt = np.dtype(dtype)
        _check_dtype(dt, loc.display)
        if len(shape) != len(axes) or len(axes) < 3:
            raise ValueError(
                f"declare_image: shape {tuple(shape)} must have one entry per axis of {axes!r} "
                "(at least one index axis before the frame's axes)"
            )
        unlimited = [a for a, s in zip(axes, shape) if s is None]
        if unlimited not in ([], ["t"]):
            raise ValueError(f"declare_image: only 't' may be unlimited (None), not {unlimited}")
        full = tuple(1 if s is None else int(s) for s in shape)
        if min(full) < 1:
            raise ValueError(f"declare_image: every axis length must be >= 1 (or None for 't'), got {tuple(shape)}")
        _validate_axes(axes, len(full))
        _check_channels(full, axes, channel_names, channel_colors)
        chunk_shape = resolve_chunks(full, dt, chunks, self.config)
        if unlimited and chunks is not None:
            given = tuple(chunks) if isinstance(chunks, (tuple, list)) else ()
            if len(given) == len(axes) and int(given[0]) > 0:
                chunk_shape = (int(given[0]),) + chunk_shape[1:]  # not clipped to the initial t=1
        now = (0,) + full[1:] if unlimited else full
        codec = _codec_for(compressor, compression_level, self.config)
        steps = [float(s) for s in scale] if scale is not None else [1.0] * len(axes)
        if len(steps) != len(axes):
            raise ValueError(f"scale has {len(steps)} entries for {len(axes)} axes")
        existing = self._node(loc)
        if existing is not None and not overwrite:
            raise ImageSaveError(f"zarr: {self._where(loc)} already exists (overwrite=False)")
        refusal = self._replace_refusal(loc, existing)
        if refusal:
            raise ImageSaveError(refusal)
        if self._format_for(loc, None) != 3:
            raise ImageSaveError(f"zarr: {self._where(loc)}: frames are written into zarr v3 stores only")
        field = self._plate_of(loc)
        name = (loc.key or loc.store).rstrip("/").rpartition("/")[2].removesuffix(".zarr") or "image"
        ome: dict[str, Any] = {
            "version": "0.5",
            "multiscales": [
                {
                    "name": name,
                    "axes": [_axis_entry(a) for a in axes],
                    "datasets": [{"path": "0", "coordinateTransformations": [{"type": "scale", "scale": steps}]}],
                }
            ],
        }
        if "c" in axes:
            ome["omero"] = _omero(full, dt, axes, channel_names, channel_colors)
        if pyramid_levels and not 1 <= int(pyramid_levels) <= _max_pyramid_levels(full):
            raise ValueError(
                f"declare_image: pyramid_levels={pyramid_levels} for y, x of {full[-2:]} (at most "
                f"{_max_pyramid_levels(full)})"
            )
        frames_attr = {"unlimited": unlimited[0] if unlimited else None, "pyramid_levels": int(pyramid_levels or 0)}
        attrs = {"ome": ome, FRAMES_ATTR: frames_attr}
        fs = loc.fs

        def build(dest: str) -> None:
            fs.makedirs(fs.join(dest, "0"))
            self._write_array_meta(fs, fs.join(dest, "0"), now, dt, chunk_shape, codec, {}, list(axes), None, 3)
            _write_group(fs, dest, attrs, 3)

        self._frames_state().pop(loc.full, None)  # frames buffered for what is replaced are dropped
        try:
            with self._plate_lock(loc, field):
                self._ensure_groups(fs, loc.store, loc.key, parents_only=True, zarr_format=3)
            fs.publish(loc.full, build)
        except (StorageError, TypeError, ValueError):
            raise
        except Exception as exc:
            raise ImageSaveError(f"zarr: could not declare {self._where(loc)}: {exc}") from exc
        self._register_field(loc, field, acquisition)

    # ------------------------------------------------------------------ saving frames

    def _frames_state(self) -> dict[str, _OpenImage]:
        state = self.__dict__.get("_open_images")
        if state is None:
            state = self._open_images = {}
            _LIVE.add(self)
        return state

    def _save_frame(self, data: Any, file_path: PathLike, index: Any, kwargs: Mapping[str, Any]) -> None:
        """``save(frame, path, index=...)``: check everything, then buffer or write the frame."""
        loc = self._locate(file_path)
        where = self._where(loc)
        unknown = set(kwargs) - {"axes"}
        if unknown:
            raise TypeError(f"zarr backend: save with index= takes no keyword(s) {', '.join(sorted(unknown))}")
        frame = self._prepare(data, loc.display)
        state = self._frames_state()
        image = state.get(loc.full)
        level0 = ""
        if image is None:
            level0, meta, axes, unlimited = self._frame_target(loc, where)
        else:  # read once per image and backend: no metadata read per frame
            meta, axes, unlimited = image.meta, image.axes, image.unlimited
        if kwargs.get("axes") is not None and "".join(kwargs["axes"]) != axes:
            raise ImageSaveError(f"zarr: the image {where} has axes {axes!r}, not {''.join(kwargs['axes'])!r}")
        position = self._check_frame(frame, index, meta, axes, unlimited, where)
        lead = len(position)
        if image is not None and image.lead != lead:
            self._write_rows(image, list(image.rows))  # frames of another ndim: other chunk rows
            image.lead = lead
        if image is None:
            image = state[loc.full] = _OpenImage(loc, level0, lead, meta, axes, unlimited)
        chunks = meta.chunks
        key = tuple(p // c for p, c in zip(position, chunks))
        if all(c == 1 for c in chunks[:lead]):  # the frame is its whole chunk row: no buffer, no copy
            image.rows[key] = _Row(key, frame.reshape((1,) * lead + frame.shape), 1, {(0,) * lead})
            self._write_rows(image, [key])
            return
        row = image.rows.get(key)
        if row is None:
            row = self._new_row(image, meta, key, unlimited is not None)
        within = tuple(p - k * c for p, k, c in zip(position, key, chunks))
        row.data[within] = frame
        row.filled.add(within)
        if len(row.filled) >= row.expected:
            self._write_rows(image, [key])

    def _frame_target(self, loc: _Loc, where: str) -> tuple[str, ArrayMeta, str, str | None]:
        """(level-0 array path and metadata, axes, unlimited axis) of the image frames go to.

        The level-0 path is the image's first OME ``datasets`` path (``0``, or
        ``gen-<id>/0`` for a cluster save on an object store).
        """
        node = self._node(loc)
        ms = node.multiscale if node is not None else None
        if node is None or ms is None:
            raise ImageSaveError(
                f"zarr: no image at {where} to save a frame into; declare it first with "
                "ZarrBackend.declare_image(path, shape, dtype, axes=...)"
            )
        if len(ms.datasets) != 1 or node.zarr_format != 3:
            raise ImageSaveError(
                f"zarr: frames can only be saved into a one-level zarr v3 image; {where} is not (a pyramid is "
                "built once the frames are in: declare the image again to write it anew)"
            )
        level0 = self._image_array(node, 0, loc)
        arr = level0.array
        if arr is None or arr.codec is None:
            raise ImageSaveError(f"zarr: the image {where} uses codecs polystore does not write frames with")
        unlimited = dict(node.attrs.get(FRAMES_ATTR) or {}).get("unlimited")
        axes = "".join(ms.axes)
        return level0.path, arr, axes, unlimited if unlimited == "t" else None

    @staticmethod
    def _check_frame(
        frame: np.ndarray, index: Any, meta: ArrayMeta, axes: str, unlimited: str | None, where: str
    ) -> tuple[int, ...]:
        """The frame's position along the index axes, or ImageSaveError naming the image and index."""
        lead = len(axes) - frame.ndim
        frame_shape = tuple(meta.shape[lead:]) if lead >= 0 else ()
        if lead < 1 or tuple(frame.shape) != frame_shape or frame.dtype != meta.dtype:
            raise ImageSaveError(
                f"zarr: a frame of shape {tuple(frame.shape)} and dtype {frame.dtype} does not fit the image "
                f"{where} (axes {axes!r}, shape {tuple(meta.shape)}, dtype {meta.dtype}) at index {index!r}; "
                "a frame must have the image's trailing shape and its dtype"
            )
        index_axes = axes[:lead]
        if not isinstance(index, Mapping):
            raise ImageSaveError(f"zarr: index={index!r} for {where} must be a dict such as {{'t': 3, 'c': 1}}")
        position = []
        bad = [k for k in index if k not in index_axes]
        for a, n in zip(index_axes, meta.shape[:lead]):
            value = index.get(a, 0)
            limit = MAX_INDEX if a == unlimited else n
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 0 <= value < limit:
                bad.append(a)
            position.append(int(value) if isinstance(value, (int, np.integer)) else -1)
        if bad:
            ranges = ", ".join(
                f"{a}: 0..{'unlimited' if a == unlimited else n - 1}" for a, n in zip(index_axes, meta.shape[:lead])
            )
            raise ImageSaveError(
                f"zarr: index {dict(index)!r} is out of range for the image {where} at {sorted(set(bad))} "
                f"(index axes {ranges}); nothing was written"
            )
        return tuple(position)

    def _new_row(self, image: _OpenImage, meta: ArrayMeta, key: tuple[int, ...], grows: bool) -> _Row:
        """A buffer for chunk row ``key`` (read back from the store if it was written before)."""
        chunks = meta.chunks[: image.lead]
        dt = _dtype(meta)
        extents = [
            c if grows and i == 0 else min(c, n - k * c)
            for i, (k, c, n) in enumerate(zip(key, chunks, meta.shape))
        ]
        row_bytes = math.prod(chunks) * math.prod(meta.shape[image.lead :]) * dt.itemsize
        limit = self.config.frame_buffer_bytes
        while image.rows and image.nbytes + row_bytes > limit:
            self._write_rows(image, [next(iter(image.rows))])  # oldest first, with what it has
        fill = _fill_value(dt)
        data = np.full(tuple(chunks) + tuple(meta.shape[image.lead :]), fill if not isinstance(fill, list) else 0, dt)
        first = image.array_path + "/" + meta.chunk_key(key + (0,) * (meta.ndim - image.lead))
        if image.loc.fs.isfile(first):  # written before (flushed early, or by an earlier run)
            current = self._current_meta(image)
            stops = [min(k * c + c, n) for k, c, n in zip(key, chunks, current.shape)]
            starts = [k * c for k, c in zip(key, chunks)]
            if all(b > a for a, b in zip(starts, stops)):
                reader = _ArrayReader(image.loc.fs, image.array_path, current, self._where(image.loc))
                region = tuple(slice(0, b - a) for a, b in zip(starts, stops))
                data[region] = reader.read(starts + [0] * (meta.ndim - image.lead), list(stops) + list(current.shape[image.lead :]))
        row = image.rows[key] = _Row(key, data, math.prod(extents))
        return row

    def _current_meta(self, image: _OpenImage) -> ArrayMeta:
        got = self._read_meta(image.loc.fs, image.array_path)
        if not isinstance(got, ArrayMeta):
            raise ImageSaveError(f"zarr: the image {self._where(image.loc)} lost its array while frames were saved")
        return got

    def _write_rows(self, image: _OpenImage, keys: Sequence[tuple[int, ...]]) -> None:
        """Write the chunks of the rows ``keys`` (each file atomically), then grow ``t`` if needed."""
        meta = image.meta
        needed_t = 0
        for key in keys:
            row = image.rows[key]
            if row.filled:
                needed_t = max(needed_t, key[0] * meta.chunks[0] + max(p[0] for p in row.filled) + 1)
            try:
                write_chunk_row(image.loc.fs, image.array_path, meta, row.key, row.data)
            except Exception as exc:
                raise ImageSaveError(
                    f"zarr: could not write frames of {self._where(image.loc)} (chunk row {key}): {exc}; "
                    "the chunks already in the image are whole"
                ) from exc
            del image.rows[key]
        if needed_t > meta.shape[0] and image.unlimited:
            self._grow(image, needed_t)

    def _grow(self, image: _OpenImage, length: int) -> None:
        """Publish ``t`` = ``length`` (never shrinking) under the image's lock; chunks are written already."""
        fs = image.loc.fs
        with batch_lock(fs, image.loc.full, self.config.lock_timeout):
            current = self._current_meta(image)
            if current.shape[0] < length:
                doc = dict(current.raw)
                doc["shape"] = [length, *current.shape[1:]]
                fs.write_atomic(fs.join(image.array_path, _META), _dumps(doc))
                current = self._current_meta(image)
            image.meta = current

    def flush(self, file_path: PathLike | None = None) -> None:
        """Write every buffered frame (of the image at ``file_path``, or of all images).

        Chunk rows not yet complete are written with the fill value where no
        frame arrived; a later frame in such a row reads it back first.
        """
        state = self._frames_state()
        targets = list(state) if file_path is None else [self._locate(file_path).full]
        for full in targets:
            image = state.get(full)
            if image is not None and image.rows:
                self._write_rows(image, list(image.rows))

    def close(self) -> None:
        """Flush every buffered frame (see :meth:`flush`), then build the pyramids declared for them.

        An image declared with ``pyramid_levels=N`` that this backend saved
        frames into gets its levels 1..N here (:meth:`_build_pyramid`); the
        backend stays usable.
        """
        self.flush()
        state = self._frames_state()
        for full, image in list(state.items()):
            node = self._read_meta(image.loc.fs, full)
            wanted = dict(node.attributes.get(FRAMES_ATTR) or {}).get("pyramid_levels") if isinstance(node, GroupMeta) else 0
            if isinstance(wanted, int) and wanted > 0:
                self._build_pyramid(image.loc, wanted)
                del state[full]  # the image has levels now: further frames are refused
