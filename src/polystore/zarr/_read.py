"""Reading chunks straight from a store (polystore's fast path for arrays it can decode)."""

from __future__ import annotations

import itertools
import mmap
import os
import stat
from collections.abc import Sequence
from typing import Any

import numpy as np

from polystore.exceptions import ImageLoadError
from polystore.zarr._codec import blosc_frame_problem
from polystore.zarr._model import ArrayMeta
from polystore.config import ZarrConfig
from polystore.zarr._fs import _FS, _MMAP_FLAGS, _SCRATCH
from polystore.zarr._workers import run_each
from polystore.zarr import _ts_delegate


class _ArrayReader:
    """Reads regions of one v3 array by fetching and decoding only the chunks touched.

    Supports arrays whose codecs are ``bytes`` (+ optional ``blosc``) and the
    default chunk key encoding; others are read through zarr-python.
    """

    def __init__(
        self,
        fs: _FS,
        path: str,
        meta: ArrayMeta,
        where: str,
        keep_bytes: int = ZarrConfig.keep_buffer_bytes,
        use_tensorstore: bool = ZarrConfig.use_tensorstore,
    ) -> None:
        assert meta.dtype is not None and meta.codec is not None and meta.fill is not None
        self.fs = fs
        #: Buffers of chunks up to this size are kept per thread (``ZarrConfig.keep_buffer_bytes``).
        self.keep_bytes = keep_bytes
        #: Object stores: regions are read through tensorstore where it can (``_ts_delegate``).
        self.use_tensorstore = use_tensorstore
        self.path = path
        self.meta = meta
        self.where = where
        self.shape = meta.shape
        self.dtype: np.dtype[Any] = meta.dtype
        self.ndim = meta.ndim
        self.chunks = meta.chunks
        self.sep = meta.separator
        self.v2_keys = meta.v2_keys
        self.codec = meta.codec
        self.numcodec = meta.codec.numcodec()
        #: Missing chunks read as this (zarr spec); only a chunk that does not decode is damage.
        self.fill = meta.fill
        self.chunk_nbytes = meta.chunk_nbytes
        #: Chunks read as the fill value because they were absent (counted; on object stores a
        #: load then checks that the version it read still stands, see ``_pins``).
        self.missing = 0

    def chunk_key(self, idx: Sequence[int]) -> str:
        return self.meta.chunk_key(idx)

    def _decode(self, raw: bytes | memoryview, key: str, dest: np.ndarray | None) -> np.ndarray:
        try:
            if self.numcodec is None:
                arr = np.frombuffer(raw, dtype=self.dtype)
                if arr.size * self.dtype.itemsize != self.chunk_nbytes:
                    raise ValueError(f"{len(raw)} bytes, expected {self.chunk_nbytes}")
                arr = arr.reshape(self.chunks)
                if dest is not None:
                    dest[...] = arr
                    return dest
                return arr
            problem = blosc_frame_problem(raw, self.chunk_nbytes)
            if problem is not None:
                raise ValueError(problem)
            if dest is not None:
                self.numcodec.decode(raw, out=dest)
                return dest
            out = self._scratch()
            self.numcodec.decode(raw, out=out)
            return out
        except Exception as exc:
            raise ImageLoadError(
                f"zarr: corrupted chunk {key!r} of array {self.where}: {exc}"
            ) from exc

    def read(self, starts: Sequence[int], stops: Sequence[int], out: np.ndarray | None = None) -> np.ndarray:
        """Return ``array[starts:stops]`` (per axis), reading only overlapping chunks."""
        shape_out = tuple(b - a for a, b in zip(starts, stops))
        delegated = _ts_delegate.read(self, starts, stops) if self.fs.prefers_batches else None
        if delegated is not None:  # object stores: tensorstore fetched and decoded the region
            if out is None:
                return delegated
            out[...] = delegated
            return out
        if out is None:
            out = np.empty(shape_out, dtype=self.dtype)
        if out.size == 0:
            return out
        ranges = [
            range(a // c, (b - 1) // c + 1) for a, b, c in zip(starts, stops, self.chunks)
        ]
        jobs = list(itertools.product(*ranges))

        def one(idx: tuple[int, ...], key: str, raw: bytes | memoryview | None) -> None:
            c0 = [i * c for i, c in zip(idx, self.chunks)]
            o0 = [max(a, s) for a, s in zip(c0, starts)]
            o1 = [min(a + c, e) for a, c, e in zip(c0, self.chunks, stops)]
            # (..., ) keeps a 0-d destination a view (out[()] would be a copied scalar)
            dest = out[tuple(slice(a - s, b - s) for a, b, s in zip(o0, o1, starts)) + (Ellipsis,)]
            if raw is None:
                self.missing += 1
                dest[...] = self.fill
                return
            full = all(b - a == c for a, b, c in zip(o0, o1, self.chunks))
            if full and dest.flags.c_contiguous:
                self._decode(raw, key, dest)
                return
            chunk = self._decode(raw, key, None)
            dest[...] = chunk[tuple(slice(a - c, b - c) for a, b, c in zip(o0, o1, c0)) + (Ellipsis,)]

        base = self.path
        if not self.fs.prefers_batches:
            fs = self.fs
            native = fs.supports_native_files
            raw_codec = self.numcodec is None and native

            def local(idx: tuple[int, ...]) -> None:
                if raw_codec and self._read_raw_into(idx, starts, stops, out):
                    return
                key = self.chunk_key(idx)
                path = base + "/" + key
                one(idx, key, self._read_local(path) if native else fs.read(path))

            run_each("read", jobs, local)
            return out
        # object store: fetch a window of chunks concurrently, decode in the pool
        window = max(8, self.fs.request_batch_bytes // max(1, self.chunk_nbytes))
        for i in range(0, len(jobs), window):
            part = jobs[i : i + window]
            keys = [self.chunk_key(idx) for idx in part]
            raws = self.fs.read_many([base + "/" + key for key in keys])
            run_each("read", list(zip(part, keys, raws)), lambda job: one(*job))
        return out

    def _read_local(self, path: str) -> bytes | memoryview | None:
        """The bytes of local chunk file ``path`` (None: no such file).

        Read into this thread's reusable buffer (valid until its next use), so
        a load does not allocate and page in a fresh buffer per chunk. A file
        larger than any valid chunk is read whole, for the decoder's checks
        to name.
        """
        try:
            fd = os.open(path, os.O_RDONLY)
        except (FileNotFoundError, NotADirectoryError):
            return None
        try:
            st = os.fstat(fd)
            if stat.S_ISDIR(st.st_mode):
                return None
            size = st.st_size
            if size > self.chunk_nbytes + 16:  # no Blosc frame of a chunk is larger
                return _read_rest(fd)
            buf: bytearray | None = getattr(_SCRATCH, "raw", None)
            if buf is None or len(buf) <= size:
                buf = bytearray(self.chunk_nbytes + 17)  # room for any chunk of this array
                if size < self.keep_bytes:
                    _SCRATCH.raw = buf
            view = memoryview(buf)[: size + 1]
            got = os.readv(fd, [view])  # one byte more than fstat said: a short read is the end
            while 0 < got < size:  # fewer bytes than fstat said: read on (or it shrank)
                n = os.readv(fd, [view[got:]])
                if not n:
                    break
                got += n
            if got > size:  # it grew since fstat: the decoder's checks judge the whole file
                return bytes(view[:got]) + _read_rest(fd)
            return view[:got]
        finally:
            os.close(fd)

    def _scratch(self) -> np.ndarray:
        """This thread's reusable chunk-sized buffer (valid until its next use)."""
        scratch: np.ndarray | None = getattr(_SCRATCH, "buf", None)
        if scratch is None or scratch.nbytes < self.chunk_nbytes:
            scratch = np.empty(max(self.chunk_nbytes, 1), np.uint8)
            if self.chunk_nbytes <= self.keep_bytes:  # huge chunks get a buffer of their own
                _SCRATCH.buf = scratch
        return scratch[: self.chunk_nbytes].view(self.dtype).reshape(self.chunks)

    def _read_raw_into(
        self, idx: tuple[int, ...], starts: Sequence[int], stops: Sequence[int], out: np.ndarray
    ) -> bool:
        """Uncompressed chunk wholly inside ``out``: copy it there once, no scratch copy.

        A contiguous destination is filled by ``readinto``; a strided one is
        copied from a memory map of the chunk file (one copy instead of two).
        """
        c0 = [i * c for i, c in zip(idx, self.chunks)]
        if any(a < s or a + c > e for a, c, s, e in zip(c0, self.chunks, starts, stops)):
            return False
        dest = out[tuple(slice(a - s, a - s + c) for a, c, s in zip(c0, self.chunks, starts)) + (Ellipsis,)]
        path = self.path + "/" + self.chunk_key(idx)
        try:
            if dest.flags.c_contiguous:
                with open(path, "rb", buffering=0) as f:
                    buf: Any = dest.reshape(-1).view(np.uint8)
                    got = f.readinto(buf)
                    extra = f.read(1)
                if got == self.chunk_nbytes and not extra:
                    return True
            else:
                fd = os.open(path, os.O_RDONLY)
                try:
                    size = os.fstat(fd).st_size
                    if size == self.chunk_nbytes and size > 0:
                        with mmap.mmap(fd, 0, prot=mmap.PROT_READ, flags=_MMAP_FLAGS) as mapped:
                            dest[...] = np.frombuffer(mapped, dtype=self.dtype).reshape(self.chunks)
                        return True
                finally:
                    os.close(fd)
        except (FileNotFoundError, NotADirectoryError):
            return False  # the general path reports it (or fills it)
        raise ImageLoadError(
            f"zarr: corrupted chunk {self.chunk_key(idx)!r} of array {self.where}: "
            f"expected {self.chunk_nbytes} bytes"
        )

    def __getitem__(self, item: Any) -> np.ndarray:
        """NumPy indexing (ints, slices, integer or boolean arrays), as dask passes it for lazy loads.

        Only the chunks of the smallest region holding the selection are read;
        the selection is then applied to that region with NumPy, so it means
        exactly what it means on the whole array.
        """
        if not isinstance(item, tuple):
            item = (item,)
        if any(i is Ellipsis for i in item):
            pos = next(k for k, i in enumerate(item) if i is Ellipsis)
            item = item[:pos] + (slice(None),) * (self.ndim - len(item) + 1) + item[pos + 1 :]
        if len(item) > self.ndim:
            raise IndexError(f"too many indices ({len(item)}) for an array of {self.ndim} axes")
        item = item + (slice(None),) * (self.ndim - len(item))
        starts, stops, local = [], [], []
        for axis, (sel, size) in enumerate(zip(item, self.shape)):
            lo, hi, part = _region(sel, size, axis)
            starts.append(lo)
            stops.append(hi)
            local.append(part)
        out = self.read(starts, stops)
        if all(isinstance(p, slice) and p == _ALL or isinstance(p, int) for p in local):
            squeeze = [k for k, p in enumerate(local) if isinstance(p, int)]  # a view, no copy
            return out.reshape([s for k, s in enumerate(out.shape) if k not in squeeze]) if squeeze else out
        picked: np.ndarray = out[tuple(local)]
        return picked


_ALL = slice(None)


def _region(sel: Any, size: int, axis: int) -> tuple[int, int, Any]:
    """(start, stop) along one axis holding ``sel``, and ``sel`` relative to that start."""
    if isinstance(sel, (int, np.integer)) and not isinstance(sel, (bool, np.bool_)):
        i = int(sel) + size if sel < 0 else int(sel)
        if not 0 <= i < size:
            raise IndexError(f"index {sel} out of range for axis {axis} of size {size}")
        return i, i + 1, 0
    if isinstance(sel, slice):
        a, b, step = sel.indices(size)
        if step == 1:
            return a, max(a, b), _ALL
        picked = range(a, b, step)
        if not picked:
            return 0, 0, _ALL
        lo, hi = min(picked[0], picked[-1]), max(picked[0], picked[-1]) + 1
        stop = picked[-1] - lo + (1 if step > 0 else -1)
        return lo, hi, slice(picked[0] - lo, stop if stop >= 0 else None, step)
    if sel is None:
        raise TypeError(f"unsupported index {sel!r}")
    arr = np.asarray(sel)
    if arr.dtype == bool:
        if arr.ndim != 1 or arr.shape[0] != size:
            raise IndexError(f"boolean index of shape {arr.shape} does not match axis {axis} of size {size}")
        arr = np.flatnonzero(arr)
    if arr.dtype.kind not in "iu":
        raise TypeError(f"unsupported index {sel!r:.80}")
    arr = np.where(arr < 0, arr + size, arr).astype(np.intp)
    if arr.size and (arr.min() < 0 or arr.max() >= size):
        raise IndexError(f"index {sel!r:.80} out of range for axis {axis} of size {size}")
    if not arr.size:
        return 0, 0, arr
    lo = int(arr.min())
    return lo, int(arr.max()) + 1, arr - lo


def _read_rest(fd: int) -> bytes:
    """Everything from ``fd``'s position to its end."""
    parts: list[bytes] = []
    while True:
        part = os.read(fd, 1 << 20)
        if not part:
            return b"".join(parts)
        parts.append(part)
