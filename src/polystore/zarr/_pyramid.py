"""Pyramid levels for an image written frame by frame, built chunk row by chunk row.

:meth:`_PyramidBuilder._build_pyramid` reads level 0 one *chunk row* at a
time (the chunks sharing their coordinates along the axes before y and x:
with the default chunks, one frame), halves it ``levels`` times with the 2x2
mean of whole saves (:func:`~polystore.zarr._ome._downsample_yx`, summed in
float64) and writes each level's chunks of that row. Memory is therefore
one chunk row of level 0 plus its float64 sum, whatever the image's size.
The levels' arrays are written before the image's multiscales lists them
(one atomic metadata replace, under the image's lock), so a reader sees the
one-level image or the whole pyramid. The rules are in
``docs/zarr-layout.md`` ("Frames in acquisition order").
"""

from __future__ import annotations

import itertools
import math
import posixpath
from collections.abc import Iterator
from typing import Any

import numpy as np

from polystore.exceptions import ImageSaveError
from polystore.zarr._batch import batch_lock
from polystore.zarr._locate import _Resolver
from polystore.zarr._meta import _write_group
from polystore.zarr._model import ArrayMeta, GroupMeta
from polystore.zarr._nodes import _Loc
from polystore.zarr._ome import _downsample_yx, _downsampled_shape, _max_pyramid_levels
from polystore.zarr._read import _ArrayReader
from polystore.zarr._write import _ChunkWriter, write_chunk_row


def chunk_rows(shape: tuple[int, ...], chunks: tuple[int, ...], lead: int) -> Iterator[tuple[tuple[int, ...], list[int], list[int]]]:
    """``(chunk key, starts, stops)`` of every chunk row of an array along its first ``lead`` axes.

    A row spans one chunk (or less at the end) along those axes and the whole
    array along the others: the most the pyramid builder reads at once.
    """
    grids = [range(math.ceil(n / c)) for n, c in zip(shape[:lead], chunks[:lead])]
    for key in itertools.product(*grids):
        starts = [k * c for k, c in zip(key, chunks)] + [0] * (len(shape) - lead)
        stops = [min(k * c + c, n) for k, c, n in zip(key, chunks, shape)] + list(shape[lead:])
        yield key, starts, stops


class _PyramidBuilder(_ChunkWriter, _Resolver):
    """Pyramids of frame-written images (a mixin of the backend)."""

    def _build_pyramid(self, loc: _Loc, levels: int) -> None:
        """Replace the image's levels 1.. by ``levels`` halvings of its level 0 (read chunk row by row)."""
        where = self._where(loc)
        got = self._read_meta(loc.fs, loc.full)
        ms = got.multiscale if isinstance(got, GroupMeta) else None
        if not isinstance(got, GroupMeta) or ms is None or got.zarr_format != 3:
            raise ImageSaveError(f"zarr: no zarr v3 OME image at {where} to build a pyramid of")
        fs = loc.fs
        path0 = fs.inside(loc.full, ms.datasets[0].path)
        meta0 = self._read_meta(fs, path0)
        if not isinstance(meta0, ArrayMeta) or meta0.codec is None or meta0.dtype is None:
            raise ImageSaveError(f"zarr: the image {where} has no level-0 array polystore can read by chunk")
        axes = "".join(ms.axes)
        if not axes.endswith("yx") or not 1 <= levels <= _max_pyramid_levels(meta0.shape):
            raise ValueError(
                f"build_pyramid: {levels} levels for {where} of shape {meta0.shape} (axes {axes!r}); "
                f"y and x can be halved 1..{_max_pyramid_levels(meta0.shape)} times"
            )
        lead = meta0.ndim - 2
        shapes = [meta0.shape]
        for _ in range(levels):
            shapes.append(_downsampled_shape(shapes[-1]))
        # levels go beside level 0: inside its generation when it has one (zarr layout 2)
        base = posixpath.dirname(ms.datasets[0].path)
        names = [posixpath.join(base, str(level)) for level in range(levels + 1)]
        level_metas: list[ArrayMeta] = []
        for level in range(1, levels + 1):
            path = fs.inside(loc.full, names[level])
            chunks = meta0.chunks[:lead] + tuple(min(c, max(1, s)) for c, s in zip(meta0.chunks[lead:], shapes[level][lead:]))
            if self._read_meta(fs, path) is None:
                fs.makedirs(path)
            self._write_array_meta(fs, path, shapes[level], meta0.dtype, chunks, meta0.codec, {}, list(axes), None, 3)
            written = self._read_meta(fs, path)
            assert isinstance(written, ArrayMeta)
            level_metas.append(written)
        reader = _ArrayReader(fs, path0, meta0, where, self.config.keep_buffer_bytes, self.config.use_tensorstore)
        for key, starts, stops in chunk_rows(meta0.shape, meta0.chunks, lead):
            row = reader.read(starts, stops)
            for level, meta in enumerate(level_metas, 1):
                row = _downsample_yx(row, axes)
                write_chunk_row(fs, fs.inside(loc.full, names[level]), meta, key, row)
        with batch_lock(fs, loc.full, self.config.lock_timeout):
            current = self._read_meta(fs, loc.full)
            if not isinstance(current, GroupMeta) or current.multiscale is None:
                raise ImageSaveError(f"zarr: the image {where} was replaced while its pyramid was built")
            _write_group(fs, loc.full, _with_levels(current.attributes, levels, base), 3)


def _with_levels(attrs: dict[str, Any], levels: int, folder: str = "") -> dict[str, Any]:
    """The image's attributes with ``multiscales[0].datasets`` listing level 0 and ``levels`` halvings in ``folder``."""
    out = dict(attrs)
    ome = dict(out["ome"])
    multiscales = [dict(m) for m in ome["multiscales"]]
    first = multiscales[0]
    axes = [a["name"] if isinstance(a, dict) else str(a) for a in first["axes"]]
    base = first["datasets"][0]
    scale = next(
        (t["scale"] for t in base.get("coordinateTransformations") or [] if t.get("type") == "scale"),
        [1.0] * len(axes),
    )
    datasets = [base]
    for level in range(1, levels + 1):
        factor = [2.0**level if a in ("y", "x") else 1.0 for a in axes]
        datasets.append(
            {"path": posixpath.join(folder, str(level)), "coordinateTransformations": [{"type": "scale", "scale": [s * f for s, f in zip(scale, factor)]}]}
        )
    first["datasets"] = datasets
    ome["multiscales"] = multiscales
    out["ome"] = ome
    return out
