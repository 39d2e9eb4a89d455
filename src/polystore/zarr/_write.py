"""Writing arrays: encoding chunks (slab by slab for dask), array metadata, OME-NGFF pyramids."""

from __future__ import annotations

import contextlib
import itertools
import math
import os
import shutil
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np

from polystore.config import ZarrConfig
from polystore.zarr._codec import _Codec
from polystore.zarr._dtypes import _fill_value
from polystore.zarr._fs import _FS
from polystore.zarr._workers import _pool
from polystore.zarr._workers import run_each
from polystore.zarr._zarrs_delegate import write_chunks
from polystore.zarr._model import ArrayMeta
from polystore.zarr._meta import _META, _array_metadata, _array_metadata_v2, _dumps, _write_group
from polystore.zarr._nodes import _Image
from polystore.zarr._ome import (
    _ChannelRange,
    _axis_entry,
    _downsample_yx,
    _downsampled_shape,
    _is_dask,
    _omero,
)


def write_chunk_row(fs: _FS, array_path: str, meta: ArrayMeta, key: tuple[int, ...], data: np.ndarray) -> None:
    """Encode and write (each file atomically) the chunks of one chunk row of the array ``meta``.

    ``data`` covers chunk row ``key`` (chunk coordinates along the leading
    ``len(key)`` axes): one chunk's extent along those axes (or less at the
    array's end) and the whole array along the others, which are cut into
    chunks here; edge chunks are padded with the fill value.
    """
    lead = len(key)
    chunks = meta.chunks
    dt = data.dtype
    fill = _fill_value(dt)
    numcodec = meta.codec.numcodec() if meta.codec is not None else None
    grid = list(itertools.product(*(range(math.ceil(n / c)) for n, c in zip(meta.shape[lead:], chunks[lead:]))))

    def work(idx: tuple[int, ...]) -> None:
        sel: tuple[Any, ...] = (Ellipsis, *(slice(i * c, (i + 1) * c) for i, c in zip(idx, chunks[lead:])))
        block = data[sel]
        if block.shape != chunks:
            padded = np.full(chunks, fill if not isinstance(fill, list) else 0, dt)
            padded[tuple(slice(0, s) for s in block.shape)] = block
            block = padded
        block = np.ascontiguousarray(block)
        blob = bytes(numcodec.encode(block)) if numcodec is not None else block.tobytes()
        fs.write_atomic(array_path + "/" + meta.chunk_key(key + idx), blob)

    run_each("write", grid, work)


def _remove(path: str) -> None:
    if os.path.isdir(path) and not os.path.islink(path):
        shutil.rmtree(path, ignore_errors=True)
    elif os.path.lexists(path):
        with contextlib.suppress(OSError):
            os.remove(path)


def level_layout(
    shape: Sequence[int], chunks: Sequence[int], levels: int
) -> tuple[list[tuple[int, ...]], list[tuple[int, ...]]]:
    """Shape and chunk shape of each of ``levels`` pyramid levels (level 0 first)."""
    shapes = [tuple(int(s) for s in shape)]
    for _ in range(1, levels):
        shapes.append(_downsampled_shape(shapes[-1]))
    level_chunks = [tuple(min(c, max(1, s)) for c, s in zip(chunks, shp)) for shp in shapes]
    return shapes, level_chunks


class _ChunkWriter:
    """The writing half of :class:`~polystore.zarr.backend.ZarrBackend` (a mixin)."""

    config: ZarrConfig

    def _write_array(
        self,
        fs: _FS,
        dest: str,
        data: np.ndarray,
        chunks: tuple[int, ...],
        codec: _Codec,
        attrs: Mapping[str, Any],
        dimension_names: Sequence[str] | None,
        names: Sequence[str | None] | None = None,
        zarr_format: int = 3,
    ) -> None:
        """Write every chunk of ``data`` under ``dest``, then its metadata (last)."""
        skip_empty = not self.config.write_empty_chunks
        self._write_chunks(
            fs, dest, data, chunks, codec, zarr_format=zarr_format, skip_empty=skip_empty, new_array=True
        )
        self._write_array_meta(
            fs, dest, tuple(data.shape), np.dtype(data.dtype), chunks, codec, attrs, dimension_names,
            names, zarr_format,
        )

    def _write_array_meta(
        self,
        fs: _FS,
        dest: str,
        shape: tuple[int, ...],
        dtype: np.dtype[Any],
        chunks: tuple[int, ...],
        codec: _Codec,
        attrs: Mapping[str, Any],
        dimension_names: Sequence[str] | None,
        names: Sequence[str | None] | None,
        zarr_format: int,
    ) -> None:
        """Write the metadata of an array whose chunks are all written (this makes it exist)."""
        info: dict[str, Any] = {"dense": bool(self.config.write_empty_chunks)}
        if names is not None:
            info["names"] = list(names)
        all_attrs = {**attrs, "polystore": info}
        if zarr_format == 2:
            fs.write_atomic(fs.join(dest, ".zattrs"), _dumps(all_attrs))
            meta2 = _array_metadata_v2(shape, dtype, chunks, codec)
            fs.write_atomic(fs.join(dest, ".zarray"), _dumps(meta2))  # last: now it exists
            return
        meta = _array_metadata(shape, dtype, chunks, codec, all_attrs, dimension_names)
        fs.write_atomic(fs.join(dest, _META), _dumps(meta))

    def _write_chunks(
        self,
        fs: _FS,
        dest: str,
        data: np.ndarray,
        chunks: tuple[int, ...],
        codec: _Codec,
        lead_offset: int = 0,
        zarr_format: int = 3,
        separator: str = "/",
        skip_empty: bool = False,
        member_root: str | None = None,
        grid_offset: Sequence[int] | None = None,
        new_array: bool = False,
    ) -> None:
        """Encode and write every chunk of ``data`` (chunk index 0 shifted by ``lead_offset``).

        ``grid_offset`` (one entry per axis) shifts the chunk index on every
        axis: ``data`` is then one chunk-aligned block of a larger array (a
        task of :mod:`polystore.zarr._distributed` writes one such block).

        With ``skip_empty`` (``ZarrConfig(write_empty_chunks=False)``) chunks
        holding only the fill value are not written, as zarr does by default.
        With ``member_root`` (one image of a batch: ``data`` has length 1 on
        axis 0), chunk ``(0, j, k)`` goes to ``member_root/j/k`` (the batch
        module stages a replaced member there, see ``_batch``).

        A dask array is computed and written one slab of about ``ZarrConfig.slab_bytes``
        (whole chunks along axis 0) at a time, so it never has to fit in RAM.

        ``new_array`` (a new array in the staging tree of a local save, never a
        batch member or an append): the chunks are encoded and written by zarrs'
        codec pipeline when it is installed and ``ZarrConfig.use_zarrs`` is set
        (``_zarrs_delegate``); on an object store (a new v3 array, a cluster
        task's block of one) by tensorstore's zarr3 driver where it serves the
        store (``_ts_write``).
        """
        if not isinstance(data, np.ndarray):
            step = chunks[0]
            row_bytes = int(np.prod(data.shape[1:], dtype=np.int64)) * data.dtype.itemsize
            rows = max(step, (self.config.slab_bytes // max(1, row_bytes)) // step * step)
            for start in range(0, data.shape[0], rows):
                slab = np.ascontiguousarray(np.asarray(data[start : start + rows].compute()))
                self._write_chunks(
                    fs, dest, slab, chunks, codec, lead_offset + start // step, zarr_format, separator,
                    skip_empty, new_array=new_array,
                )
            return
        if new_array and zarr_format == 3 and member_root is None and separator == "/" and not fs.supports_native_files:
            from polystore.zarr._ts_write import write_new_chunks

            grid0 = grid_offset if grid_offset is not None else [0] * data.ndim
            origin = [(g + (lead_offset if i == 0 else 0)) * c for i, (g, c) in enumerate(zip(grid0, chunks))]
            if write_new_chunks(fs, dest, data, chunks, codec, origin, skip_empty):
                return
        numcodec = codec.numcodec()
        grid = [range(max(1, math.ceil(s / c))) if s else range(0) for s, c in zip(data.shape, chunks)]
        indices = list(itertools.product(*grid)) if data.ndim else [()]
        fill = _fill_value(data.dtype)

        def chunk(idx: tuple[int, ...]) -> np.ndarray | None:
            """Chunk ``idx`` (padded, C-contiguous), or None when it is left out (empty)."""
            sel = tuple(slice(i * c, (i + 1) * c) for i, c in zip(idx, chunks))
            block = data[sel]
            if skip_empty and not np.any(block):
                return None  # all fill value (0 / False): left out
            if block.shape != chunks:
                padded = np.full(chunks, fill if not isinstance(fill, list) else 0, dtype=data.dtype)
                padded[tuple(slice(0, s) for s in block.shape)] = block
                block = padded
            return np.ascontiguousarray(block)

        def encode(idx: tuple[int, ...]) -> bytes | np.ndarray | None:
            block = chunk(idx)
            if block is None:
                return None
            if numcodec is None:
                return block  # raw little-endian bytes: written straight from the buffer
            return bytes(numcodec.encode(block))

        def key(idx: tuple[int, ...]) -> str:
            if member_root is not None:
                return member_root + "".join("/" + str(i) for i in idx[1:])
            if lead_offset and idx:
                idx = (idx[0] + lead_offset,) + idx[1:]
            if grid_offset is not None:
                idx = tuple(i + o for i, o in zip(idx, grid_offset))
            if zarr_format == 2:
                return dest + "/" + (separator.join(str(i) for i in idx) if idx else "0")
            return dest + "/c" + "".join(separator + str(i) for i in idx)

        if fs.supports_native_files:
            delegate = new_array and self.config.use_zarrs and member_root is None and grid_offset is None
            if delegate:
                os.makedirs(dest, exist_ok=True)
                keys = [(idx, key(idx)[len(dest) + 1 :]) for idx in indices]
                if write_chunks(dest, data, chunks, codec, keys, not skip_empty):
                    return
            os.makedirs(dest if member_root is None or data.ndim < 2 else member_root, exist_ok=True)

            def work(idx: tuple[int, ...]) -> None:
                block = chunk(idx)
                if block is None:
                    path = key(idx)
                    if os.path.lexists(path):  # a member rewritten as empty
                        os.remove(path)
                    return
                # encoded into this thread's scratch buffer, written before it encodes again;
                # a missing chunk folder is made by the write, only when needed
                fs.write(key(idx), codec.encode_chunk(block, numcodec))

            run_each("write", indices, work)
            return

        def encoded() -> Iterator[tuple[str, bytes]]:
            step = 16
            for i in range(0, len(indices), step):
                part = indices[i : i + step]
                for idx, blob in zip(part, _pool().map(encode, part)):
                    if blob is not None:
                        yield key(idx), blob if isinstance(blob, bytes) else blob.tobytes()

        fs.write_many(encoded())

    def _write_ome(self, fs: _FS, dest: str, image: _Image, codec: _Codec, name: str) -> None:
        """Write an OME-NGFF 0.5 image group: levels "0".."N", then the group metadata."""
        assert image.axes is not None
        axes = image.axes
        data: Any = image.data  # NumPy or dask
        if image.scale is not None and len(image.scale) != data.ndim:
            raise ValueError(f"scale has {len(image.scale)} entries for {data.ndim} axes")
        levels = image.pyramid_levels + 1
        _, level_chunks = level_layout(data.shape, image.chunks, levels)
        paths = [fs.join(dest, str(level)) for level in range(levels)]
        skip_empty = not self.config.write_empty_chunks
        fmt = image.zarr_format
        seen = _ChannelRange(axes, int(data.shape[axes.index("c")])) if "c" in axes else None
        if data.ndim >= 3 and data.shape[0] > 0:
            # slab by slab along axis 0 (never y or x), every level of a slab at once:
            # neither the image nor its pyramid has to fit in RAM
            step = level_chunks[0][0]
            row_bytes = int(np.prod(data.shape[1:], dtype=np.int64)) * data.dtype.itemsize
            rows = max(step, (self.config.slab_bytes // max(1, row_bytes)) // step * step)
            for start in range(0, data.shape[0], rows):
                slab = data[start : start + rows]
                slab = np.ascontiguousarray(slab.compute() if _is_dask(slab) else slab)
                if seen is not None and slab.dtype.kind in "iuf":
                    seen.update(slab, start)
                for level in range(levels):
                    if level:
                        slab = _downsample_yx(slab, axes)
                    self._write_chunks(
                        fs, paths[level], slab, level_chunks[level], codec, start // step, fmt, "/",
                        skip_empty, new_array=True,
                    )
        else:
            level_data = data.compute() if _is_dask(data) else data
            for level in range(levels):
                if level:
                    level_data = _downsample_yx(level_data, axes)
                self._write_chunks(
                    fs, paths[level], level_data, level_chunks[level], codec, zarr_format=fmt,
                    skip_empty=skip_empty, new_array=True,
                )
        self._write_ome_meta(fs, dest, image, codec, name, level_chunks, seen)

    def _write_ome_meta(
        self,
        fs: _FS,
        dest: str,
        image: _Image,
        codec: _Codec,
        name: str,
        level_chunks: Sequence[tuple[int, ...]],
        seen: _ChannelRange | None,
        prefix: str = "",
    ) -> None:
        """Write the metadata of every level, then the image group's (last: now the image exists).

        Level ``k`` is the array ``<prefix><k>`` inside the image group
        (``prefix`` is ``""``, or a generation ``"gen-<id>/"`` of
        :mod:`polystore.zarr._generations`); the OME ``datasets`` paths name them.
        """
        assert image.axes is not None
        axes = image.axes
        data: Any = image.data
        base_scale = [float(s) for s in image.scale] if image.scale is not None else [1.0] * data.ndim
        datasets = []
        levels = len(level_chunks)
        shapes, _ = level_layout(data.shape, image.chunks, levels)
        paths = [fs.join(dest, f"{prefix}{level}") for level in range(levels)]
        fmt = image.zarr_format
        for level in range(levels):
            self._write_array_meta(
                fs, paths[level], shapes[level], np.dtype(data.dtype), level_chunks[level], codec, {},
                list(axes), image.names if level == 0 else None, fmt,
            )
            factor = [2.0**level if a in "yx" else 1.0 for a in axes]
            datasets.append(
                {
                    "path": f"{prefix}{level}",
                    "coordinateTransformations": [
                        {"type": "scale", "scale": [s * f for s, f in zip(base_scale, factor)]}
                    ],
                }
            )
        multiscale = {
            "name": name or "image",
            "axes": [_axis_entry(a) for a in axes],
            "datasets": datasets,
        }
        omero = None
        if "c" in axes:
            omero = _omero(
                data.shape, np.dtype(data.dtype), axes, image.channel_names, image.channel_colors, seen
            )
        group_attrs: dict[str, Any] = dict(image.attrs)
        if image.zarr_format == 2:  # OME-NGFF 0.4: metadata at the top level of .zattrs
            group_attrs["multiscales"] = [{"version": "0.4", **multiscale}]
            if omero is not None:
                group_attrs["omero"] = omero
        else:
            ome: dict[str, Any] = {"version": "0.5", "multiscales": [multiscale]}
            if omero is not None:
                ome["omero"] = omero
            group_attrs["ome"] = ome
        if image.names is not None:
            group_attrs["polystore"] = {"names": list(image.names)}
        _write_group(fs, dest, group_attrs, image.zarr_format)
