"""Lazy reads through zarr-python with every chunk file a block touches checked first.

zarr-python's Blosc decoder trusts the frame header: a chunk cut short decodes
into whatever lies past the buffer, or crashes the process. Eager loads check
the whole folder before decoding (``truncated_blosc_chunk``); a lazy block
checks just the chunk files it is about to read.
"""

from __future__ import annotations

import itertools
import os
from typing import Any

from polystore.exceptions import ImageLoadError
from polystore.zarr._codec import blosc_file_problem
from polystore.zarr._model import ArrayMeta


class CheckedChunks:
    """An array-like over a zarr-python array of local Blosc chunks, for ``dask.array.from_array``."""

    def __init__(self, source: Any, folder: str, meta: ArrayMeta, where: str) -> None:
        self.source = source
        self.shape: tuple[int, ...] = tuple(source.shape)
        self.dtype = source.dtype
        self.ndim = len(self.shape)
        self._folder = folder
        self._meta = meta
        self._where = where

    def __getitem__(self, item: Any) -> Any:
        for key in self._keys(item if isinstance(item, tuple) else (item,)):
            problem = blosc_file_problem(os.path.join(self._folder, *key.split("/")))
            if problem is not None:
                raise ImageLoadError(f"zarr: corrupted chunk {key!r} of array {self._where}: {problem}")
        return self.source[item]

    def _keys(self, selection: tuple[Any, ...]) -> list[str]:
        """The chunk keys a selection of slices and integers reads."""
        ranges: list[range] = []
        for dim, (size, chunk) in enumerate(zip(self.shape, self._meta.chunks)):
            part = selection[dim] if dim < len(selection) else slice(None)
            if isinstance(part, slice):
                start, stop, _step = part.indices(size)
                if stop <= start:
                    return []
                ranges.append(range(start // chunk, (stop - 1) // chunk + 1))
            else:
                at = int(part) % max(1, size)
                ranges.append(range(at // chunk, at // chunk + 1))
        sep = self._meta.separator
        prefix = f"c{sep}" if self._meta.zarr_format == 3 else ""
        if not ranges:
            return ["c" if self._meta.zarr_format == 3 else "0"]
        return [prefix + sep.join(str(i) for i in idx) for idx in itertools.product(*ranges)]
