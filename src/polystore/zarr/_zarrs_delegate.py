"""Whole-array reads and new-array writes through zarrs' Rust codec pipeline (optional).

Issue 9's delegation rule keeps polystore's own chunk codec only where it is at
least 1.3x the fastest library; for whole-array reads and for writing new
arrays, zarr-python's ``zarrs`` codec pipeline was faster (docs/performance.md,
"Issue 9, fourth pass"). zarr-python chooses a codec pipeline only through the
process-wide ``zarr.config`` setting ``codec_pipeline.path``, which a load must
not change under the user's other code. So this module drives zarrs' pipeline
object itself: ``CodecPipelineImpl`` built from metadata polystore wrote or
validated (``ArrayMeta``), over a store rooted at the array's folder, given
the chunk keys polystore computed (``ArrayMeta.chunk_key``), never keys zarrs
derives. Those two names live in ``zarrs._internal`` (typed in its stub; the
public ``ZarrsCodecPipeline`` wraps them); the hook is used only with the
zarrs versions it was checked with (:data:`CHECKED_ZARRS`) and zarr-python 3,
and everywhere else (zarrs not installed, another version, a remote store, a
dtype zarrs refuses, ``ZarrConfig(use_zarrs=False)``) polystore's own codec
path runs instead.

Guarantees kept (tests in ``tests/test_zarr_zarrs_delegate.py`` and the zarr
suites): reads run inside the caller's pins (``_pins.read_stable``), so a
version swapped during a read is detected and read again, exactly as for the
own reader, which also opens chunk files by path; a chunk zarrs cannot decode
(truncated, padded, damaged) makes the read start over with polystore's own
reader, whose per-chunk checks raise :class:`ImageLoadError` naming the chunk
key; missing chunks read as the validated fill value (handed to zarrs as the
spec's hex bits); writes go only into the hidden staging tree that
``_FS.publish`` swaps in.
"""

from __future__ import annotations

import functools
import itertools
import json
import logging
import math
import os
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from polystore.zarr._codec import _Codec
from polystore.zarr._workers import _pool

if TYPE_CHECKING:
    from polystore.zarr._read import _ArrayReader

#: zarrs releases whose ``_internal.CodecPipelineImpl`` / ``ChunkItem`` signatures were checked.
CHECKED_ZARRS = ("0.2.",)

#: Arrays of more chunks than this keep the own path (zarrs is handed one Python object per chunk).
MAX_CHUNKS = 2**16

_log = logging.getLogger(__name__)


class _Use:
    """Whether zarrs ran in this process, and whether this process was forked after it did."""

    ran = False
    #: zarrs' worker threads do not exist in a forked child, and a call there waits for them
    #: forever: a child forked after zarrs ran uses the own codec path.
    forked_after = False


def _after_fork_in_child() -> None:
    if _Use.ran:
        _Use.forked_after = True
    _READERS._lock = threading.Lock()  # the parent's lock may have been held by another thread
    _READERS._entries.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


@functools.cache
def _hook() -> tuple[Any, Any, Any] | None:
    """(CodecPipelineImpl, ChunkItem, LocalStore) of a checked zarrs + zarr-python 3, else None."""
    try:
        import zarr
        import zarrs
        from zarr.storage import LocalStore
        from zarrs._internal import ChunkItem, CodecPipelineImpl
    except Exception:  # noqa: BLE001 - not installed, or a layout this module does not know
        return None
    version = str(getattr(zarrs, "__version__", ""))
    if not version.startswith(CHECKED_ZARRS) or not str(zarr.__version__).startswith("3."):
        _log.debug("zarrs %s / zarr %s: not a checked pair, own codec path used", version, zarr.__version__)
        return None
    if not all(hasattr(CodecPipelineImpl, m) for m in ("retrieve_chunks_and_apply_index", "store_chunks_with_indices")):
        return None
    return CodecPipelineImpl, ChunkItem, LocalStore


def available() -> bool:
    """True when reads and writes can be delegated here (a checked zarrs, not a forked child)."""
    return _hook() is not None and not _Use.forked_after


def _hex_bits(value: Any, dtype: np.dtype[Any]) -> str:
    """A float's IEEE 754 bits as the zarr v3 spec's big-endian hex string (keeps NaN payloads)."""
    return "0x" + np.asarray(value, dtype=dtype.newbyteorder("<")).tobytes()[::-1].hex()


def _fill_json(fill: np.ndarray) -> Any:
    """The validated fill value (a 0-d array) as zarr v3 JSON, exactly (floats as hex bits)."""
    dtype = fill.dtype
    if dtype.kind == "b":
        return bool(fill)
    if dtype.kind in "iu":
        return int(fill)
    if dtype.kind == "f":
        return _hex_bits(fill, dtype)
    part = np.dtype(f"f{dtype.itemsize // 2}")
    return [_hex_bits(fill.real, part), _hex_bits(fill.imag, part)]


def _threads(kind: str) -> int | None:
    """zarrs' thread count: ``POLYSTORE_ZARR_THREADS`` when set (as for the own path), else zarrs' default.

    zarrs' default (its thread pool spans the cores) is what the bench measured
    as "zarr-python + zarrs"; the own path's pool size applies only when the
    user chose it.
    """
    env = os.environ.get("POLYSTORE_ZARR_THREADS", "")
    return _pool(kind)._max_workers if env.isdigit() and int(env) > 0 else None


def _pipeline(
    folder: str,
    shape: Sequence[int],
    dtype: np.dtype[Any],
    chunks: Sequence[int],
    codec: _Codec,
    fill: np.ndarray,
    kind: str,
) -> Any | None:
    """zarrs' pipeline for chunks of this layout under ``folder``, or None (zarrs cannot do it).

    Read pipelines come from :data:`_READERS` (built once per array folder
    and metadata); write pipelines are built for their staging folder.
    """
    hook = _hook()
    if hook is None or _Use.forked_after:
        return None
    meta = {
        "zarr_format": 3,
        "node_type": "array",
        "shape": [int(s) for s in shape],
        "data_type": "bool" if dtype.kind == "b" else dtype.name,
        "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": [int(c) for c in chunks]}},
        "chunk_key_encoding": {"name": "default", "configuration": {"separator": "/"}},
        "fill_value": _fill_json(fill),
        "codecs": codec.metadata(dtype.itemsize),
    }
    doc, threads = json.dumps(meta), _threads(kind)
    if kind == "read":
        return _READERS.get(folder, (doc, threads, hook), lambda: _build(hook, folder, doc, threads, True))
    return _build(hook, folder, doc, threads, False)


def _build(hook: tuple[Any, Any, Any], folder: str, doc: str, threads: int | None, read_only: bool) -> Any | None:
    impl_type, _, store_type = hook
    _Use.ran = True
    try:
        return impl_type(doc, store_config=store_type(folder, read_only=read_only), num_threads=threads)
    except Exception as exc:  # noqa: BLE001 - e.g. a codec zarrs was built without
        _log.debug("zarrs cannot handle %s (%s): own codec path used", folder, exc)
        return None


class _ReadPipelines:
    """zarrs read pipelines, one per array folder, reused while the array's validated metadata is the same.

    A load of one image of a batch is short, so building the pipeline on every
    load was a large part of it (and widened the window in which a rewrite
    makes the load start over). The pipeline is rooted at the folder's path
    and reads chunk files by the keys polystore hands it at each call, so a
    folder swapped for another of the same metadata is read correctly (the
    load's pins decide whether that was one version); when the metadata
    read by a load differs from the cached one (another shape, dtype, codec
    or fill value, or another zarrs hook), the entry is built anew. At most
    :attr:`LIMIT` folders are kept (least recently used dropped); a forked
    child starts empty.
    """

    LIMIT = 64

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: OrderedDict[str, tuple[tuple[str, int | None, Any], Any]] = OrderedDict()

    def get(self, folder: str, key: tuple[str, int | None, Any], build: Callable[[], Any]) -> Any:
        """The pipeline cached for ``folder`` under ``key`` (metadata, threads, hook), else ``build()``'s."""
        with self._lock:
            entry = self._entries.get(folder)
            if entry is not None and entry[0] == key:
                self._entries.move_to_end(folder)
                return entry[1]
        impl = build()  # outside the lock: another thread may build the same; the last one is kept
        with self._lock:
            self._entries[folder] = (key, impl)
            self._entries.move_to_end(folder)
            while len(self._entries) > self.LIMIT:
                self._entries.popitem(last=False)
        return impl

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


_READERS = _ReadPipelines()


def read_whole(reader: _ArrayReader) -> np.ndarray | None:
    """The whole array of ``reader`` decoded by zarrs, or None (use the own reader); see :func:`read_region`."""
    return read_region(reader, [0] * reader.ndim, list(reader.meta.shape))


def read_region(reader: _ArrayReader, starts: Sequence[int], stops: Sequence[int]) -> np.ndarray | None:
    """``array[starts:stops]`` (per axis) decoded by zarrs, or None (use the own reader).

    Called inside the load's pins. If zarrs fails on a chunk (truncated,
    damaged, or changed underneath), the region is read again by the own
    reader: it raises :class:`ImageLoadError` naming the chunk key, or (the
    cause was a swap the pins will see) returns what is there now.
    """
    meta = reader.meta
    if not reader.fs.supports_native_files or reader.dtype.byteorder == ">":
        return None
    assert meta.codec is not None and meta.fill is not None
    shape = meta.shape
    region = [b - a for a, b in zip(starts, stops)]
    if 0 in region:
        return np.empty(region, reader.dtype)
    ranges = [range(a // c, (b - 1) // c + 1) for a, b, c in zip(starts, stops, meta.chunks)]
    if math.prod(len(r) for r in ranges) > MAX_CHUNKS:
        return None
    out = np.empty(region, reader.dtype)  # before anything else: MemoryError for what cannot fit
    impl = _pipeline(reader.path, shape, reader.dtype, meta.chunks, meta.codec, meta.fill, "read")
    if impl is None:
        return None
    chunk_item = _hook()[1]  # type: ignore[index]
    items = []
    for idx in itertools.product(*ranges):
        origin = [i * c for i, c in zip(idx, meta.chunks)]
        lo = [max(o, a) for o, a in zip(origin, starts)]
        hi = [min(o + c, b, s) for o, c, b, s in zip(origin, meta.chunks, stops, shape)]
        in_chunk = [slice(x - o, y - o) for x, y, o in zip(lo, hi, origin)]
        in_out = [slice(x - a, y - a) for x, y, a in zip(lo, hi, starts)]
        items.append(chunk_item(meta.chunk_key(idx), in_chunk, list(meta.chunks), in_out, region))
    try:
        impl.retrieve_chunks_and_apply_index(items, out)
    except Exception as exc:  # noqa: BLE001 - zarrs names no chunk: the own reader's checks do
        _log.debug("zarrs read of %s failed (%s); reading it with the own reader", reader.where, exc)
        return reader.read(list(starts), list(stops), out)
    return out


def write_chunks(
    folder: str,
    data: np.ndarray,
    chunks: tuple[int, ...],
    codec: _Codec,
    keys: Sequence[tuple[tuple[int, ...], str]],
    write_empty: bool,
) -> bool:
    """Encode and write the chunks of ``data`` with zarrs; False when zarrs cannot (own path then).

    ``keys`` pairs each chunk's index in ``data``'s own chunk grid with its
    key relative to ``folder`` (a new array in the staging tree). Edge
    chunks are padded with the fill value (zero, as polystore writes it);
    with ``write_empty`` False, chunks holding only the fill value are left
    out, as the own path does; with it True, they are written (zarrs itself
    never writes them, so they are added after it).
    """
    dtype = np.dtype(data.dtype)
    if dtype.byteorder == ">" or not keys or len(keys) > MAX_CHUNKS:
        return False
    impl = _pipeline(folder, data.shape, dtype, chunks, codec, np.zeros((), dtype), "write")
    if impl is None:
        return False
    chunk_item = _hook()[1]  # type: ignore[index]
    shape = list(data.shape)
    items = []
    for idx, key in keys:
        sub = [slice(i * c, min((i + 1) * c, s)) for i, c, s in zip(idx, chunks, shape)]
        items.append(chunk_item(key, [slice(0, x.stop - x.start) for x in sub], list(chunks), sub, shape))
    impl.store_chunks_with_indices(items, np.ascontiguousarray(data), write_empty)
    if write_empty:  # zarrs 0.2 leaves chunks holding only the fill value out, whatever it is told
        missing = [key for _, key in keys if not os.path.lexists(os.path.join(folder, key))]
        if missing:
            zeros = np.zeros(chunks, dtype)
            numcodec = codec.numcodec()
            blob = bytes(numcodec.encode(zeros)) if numcodec is not None else zeros.tobytes()
            for key in missing:
                path = os.path.join(folder, key)
                os.makedirs(os.path.dirname(path), exist_ok=True)
                with open(path, "wb") as f:
                    f.write(blob)
    return True
