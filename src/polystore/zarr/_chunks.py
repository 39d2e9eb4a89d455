"""Chunk shapes: the ADAPTIVE rule and explicit chunk requests."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from polystore.config import ZarrChunkStrategy, ZarrConfig


def adaptive_chunks(
    shape: Sequence[int], dtype: np.dtype[Any] | str | type, target_bytes: int = 2 * 1024 * 1024
) -> tuple[int, ...]:
    """The ADAPTIVE chunk shape for an array of ``shape`` and ``dtype``.

    Rule (documented in ``docs/zarr-layout.md``): every leading axis (all but
    the last two) gets chunk size 1, so one plane, one channel or one time
    point is always a whole number of chunks; the last two axes (y, x) start
    whole and the larger of the two is halved until one chunk is at most
    ``target_bytes``. A 1-D array is cut into runs of ``target_bytes``.
    For a 64x2048x2048 uint16 stack and the 2 MiB default this gives
    (1, 1024, 1024).
    """
    itemsize = np.dtype(dtype).itemsize
    shape = tuple(int(s) for s in shape)
    if not shape:
        return ()
    if len(shape) == 1:
        return (max(1, min(shape[0], target_bytes // itemsize)),)
    lead = (1,) * (len(shape) - 2)
    y, x = max(1, shape[-2]), max(1, shape[-1])
    while y * x * itemsize > target_bytes and (y > 1 or x > 1):
        if y >= x:
            y = (y + 1) // 2
        else:
            x = (x + 1) // 2
    return lead + (y, x)


def resolve_chunks(
    shape: Sequence[int],
    dtype: np.dtype[Any],
    chunks: Sequence[int] | int | None,
    config: ZarrConfig,
) -> tuple[int, ...]:
    """Chunk shape for a save: explicit ``chunks`` or the config's strategy, clipped.

    An explicit ``chunks`` shorter than the array applies to the trailing axes
    (leading axes get 1); an int applies to every axis; -1 or None entries mean
    the whole axis. Chunks larger than the array are clipped to its shape.
    """
    shape = tuple(int(s) for s in shape)
    if chunks is None:
        strategy = config.chunk_strategy
        if strategy == ZarrChunkStrategy.SINGLE:
            chunks = shape
        elif strategy == ZarrChunkStrategy.FIXED and config.chunks is not None:
            chunks = config.chunks
        else:
            chunks = adaptive_chunks(shape, dtype, config.target_chunk_bytes)
    if isinstance(chunks, int):
        chunks = (chunks,) * len(shape)
    given = [(-1 if c is None else int(c)) for c in chunks]
    if len(given) > len(shape):
        raise ValueError(f"chunks {tuple(chunks)} has more axes than the array shape {shape}")
    given = [1] * (len(shape) - len(given)) + given
    out = []
    for size, c in zip(shape, given):
        if c == -1 or c > size:
            c = size
        if c < 1:
            if size == 0:
                c = 1
            else:
                raise ValueError(f"chunk sizes must be positive, got {tuple(chunks)}")
        out.append(max(1, c))
    return tuple(out)
