"""Array reads on S3 through tensorstore's zarr driver (optional), where the storage options translate.

Issue 9's delegation rule keeps polystore's own path only where it is at
least 1.3x the fastest library; on object stores the own path (its codec
over s3fs) was below tensorstore on every read row, most of the gap being
s3fs/aiobotocore's cost per request (docs/performance.md, "Issue 9,
object-store transport"). So on ``s3://`` stores, when tensorstore is
installed and the user's ``storage_options`` translate exactly into its
``s3`` kvstore (``_ts_kvstore.kvstore_spec``; anything else keeps s3fs), the
chunks of a region are fetched and decoded by tensorstore's ``zarr3``
driver. It is opened from the metadata polystore read and validated
(:class:`ArrayMeta`: shape, chunk grid, dtype, fill value, codec, chunk key
encoding and separator), with ``assume_metadata``, so it reads no metadata
and uses polystore's chunk keys; zarr v2 arrays are read as the same chunks
under the ``v2`` key encoding. Only arrays polystore's own reader can decode
(``bytes`` + optional ``blosc``) come here: the reader is
:class:`_ArrayReader`, whose object-store branch asks :func:`read` first, for
eager loads (whole arrays, batch members, ``load_batch``, generation-layout
levels) and lazy (dask) blocks alike. The keys polystore fetches itself
(metadata documents, the pins' checks, chunks the driver does not read) go
through tensorstore's S3 client too (:func:`fetch_many`, called by
``_FsspecFS.read_many``); listings, writes and deletes stay with s3fs.

Guarantees kept (tests in ``tests/test_zarr_ts_delegate.py``): a chunk
tensorstore cannot decode (truncated, padded, damaged) or any other failure
makes the region be read again by the own reader, whose checks raise
:class:`ImageLoadError` naming the chunk key; an absent chunk is first
reported by tensorstore (``fill_missing_data_reads`` off), then the region is
read with fill values and counted in ``reader.missing``, so the load checks
that the version it read still stands, exactly as after the own reader
(``_pins``); dtypes or layouts tensorstore refuses to open keep the own path;
``ZarrConfig(use_tensorstore=False)`` turns this off. A lazy block sent to a
dask worker carries the reader (plain settings, ``_FsspecFS.__reduce__``),
never a tensorstore handle: each process opens its own; a child forked after
tensorstore ran in its parent uses the own path (tensorstore's threads do
not exist there).
"""

from __future__ import annotations

import functools
import json
import logging
import os
import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from polystore.zarr._model import ArrayMeta
from polystore.zarr._ts_kvstore import context_key, kvstore_spec, shared_context
from polystore.zarr._zarrs_delegate import _fill_json

if TYPE_CHECKING:
    from polystore.zarr._read import _ArrayReader

_log = logging.getLogger(__name__)


class _Use:
    """Whether tensorstore ran in this process, and whether this process was forked after it did."""

    ran = False
    forked_after = False


@functools.cache
def _tensorstore() -> Any | None:
    """The tensorstore module, or None when it is not installed (the own path then, silently)."""
    try:
        import tensorstore
    except Exception:  # noqa: BLE001 - not installed, or broken: the own path reads
        return None
    return tensorstore


def available() -> bool:
    """True when reads can be delegated here (tensorstore installed, not a child forked after it ran)."""
    return _tensorstore() is not None and not _Use.forked_after


def metadata(meta: ArrayMeta) -> dict[str, Any] | None:
    """zarr v3 metadata that makes tensorstore read ``meta``'s chunks exactly as the own reader does.

    None for what the own reader does not decode itself. The chunk key
    encoding keeps polystore's keys: ``default`` (``c/1/2``) or ``v2``
    (``1.2``, zarr v2 arrays) with the array's separator.
    """
    if meta.codec is None or meta.dtype is None or meta.fill is None or meta.ndim == 0:
        return None
    encoding = "v2" if meta.v2_keys else "default"
    return {
        "zarr_format": 3,
        "node_type": "array",
        "shape": list(meta.shape),
        "data_type": "bool" if meta.dtype.kind == "b" else meta.dtype.name,
        "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": list(meta.chunks)}},
        "chunk_key_encoding": {"name": encoding, "configuration": {"separator": meta.separator}},
        "fill_value": _fill_json(meta.fill),
        "codecs": meta.codec.metadata(meta.dtype.itemsize),
    }


class _Handles:
    """Opened tensorstore arrays (strict, and filling absent chunks), one pair per array and metadata.

    Opening costs ~0.4 ms; a handle reads no metadata and caches no chunks
    (the context's cache pool is empty), so a folder rewritten with the same
    metadata is read afresh, and new metadata opens a new pair. At most
    :attr:`LIMIT` are kept (least recently used dropped); a forked child
    starts empty.
    """

    LIMIT = 64

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: OrderedDict[str, tuple[Any, Any]] = OrderedDict()

    def get(self, spec: dict[str, Any], doc: dict[str, Any]) -> tuple[Any, Any] | None:
        """(strict, filling) arrays for kvstore ``spec`` and metadata ``doc``, or None (cannot open)."""
        key = context_key(spec) + "\n" + spec["path"] + "\n" + json.dumps(doc, sort_keys=True)
        with self._lock:
            got = self._entries.get(key)
            if got is not None:
                self._entries.move_to_end(key)
                return got
        ts = _tensorstore()
        assert ts is not None
        plain, context = shared_context(spec)
        _Use.ran = True
        try:
            pair = tuple(
                ts.open({"driver": "zarr3", "kvstore": plain, "metadata": doc, "assume_metadata": True,
                         "fill_missing_data_reads": fill}, context=context, read=True).result()
                for fill in (False, True)
            )
        except Exception as exc:  # noqa: BLE001 - a dtype, fill value or codec it refuses
            _log.debug("tensorstore cannot open %s (%s): own reader used", spec["path"], exc)
            return None
        with self._lock:
            self._entries[key] = pair  # type: ignore[assignment]
            self._entries.move_to_end(key)
            while len(self._entries) > self.LIMIT:
                self._entries.popitem(last=False)
        return pair  # type: ignore[return-value]

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        return len(self._entries)


_HANDLES = _Handles()
#: Opened S3 kvstores (bucket roots), one per bucket and connection settings (a few per process).
_KVSTORES: dict[str, Any] = {}


def _after_fork_in_child() -> None:
    if _Use.ran:
        _Use.forked_after = True
    _HANDLES._lock = threading.Lock()  # the parent's lock may have been held by another thread
    _HANDLES._entries.clear()
    _KVSTORES.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


def store_spec(reader: _ArrayReader) -> dict[str, Any] | None:
    """tensorstore's kvstore spec for the array folder of ``reader``, or None (not S3, options do not translate)."""
    fs = reader.fs
    protocol = getattr(fs, "protocol", None)
    options = getattr(fs, "storage_options", None)
    if not isinstance(protocol, str) or options is None:
        return None
    bucket, _, path = reader.path.strip("/").partition("/")
    if not bucket:
        return None
    return kvstore_spec(protocol, options, bucket, path + "/" if path else "")


def read(reader: _ArrayReader, starts: Sequence[int], stops: Sequence[int]) -> np.ndarray | None:
    """``array[starts:stops]`` (per axis) fetched and decoded by tensorstore, or None (use the own reader).

    Called inside the load's pins (or a lazy block's version check). Absent
    chunks read as the fill value and are counted in ``reader.missing``;
    any failure returns None, and the own reader reads the region again
    (naming a damaged chunk, or filling what is absent now).
    """
    if not reader.use_tensorstore or not reader.fs.prefers_batches or not available():
        return None
    doc = metadata(reader.meta)
    spec = store_spec(reader) if doc is not None else None
    if spec is None or doc is None:
        return None
    region = [b - a for a, b in zip(starts, stops)]
    if 0 in region:
        return None
    probe = np.empty(region, reader.dtype)  # MemoryError (the own path's message) before tensorstore allocates
    del probe
    pair = _HANDLES.get(spec, doc)
    if pair is None:
        return None
    index = tuple(slice(int(a), int(b)) for a, b in zip(starts, stops))
    try:
        got = pair[0][index].read().result()
    except Exception as exc:  # noqa: BLE001 - only "absent" is tensorstore's to settle
        if not str(exc).startswith("NOT_FOUND"):
            _log.debug("tensorstore read of %s failed (%s); own reader used", reader.where, exc)
            return None
        try:
            got = pair[1][index].read().result()
        except Exception as again:  # noqa: BLE001
            _log.debug("tensorstore read of %s failed (%s); own reader used", reader.where, again)
            return None
        reader.missing += 1  # the load checks that its version still stands (_pins)
    out = np.asarray(got)
    if out.dtype != reader.dtype or out.shape != tuple(region):
        return None
    return out



def fetch_many(fs: Any, paths: Sequence[str]) -> list[bytes | None] | None:
    """The objects at ``paths`` (``bucket/key``; None: no such key) fetched by tensorstore's S3 client.

    None when it cannot: not S3, options that do not translate, tensorstore
    missing, a path without a key, or any failure (the caller fetches them
    with s3fs then, which reports errors as before). Used by
    ``_FsspecFS.read_many`` for every key polystore reads on S3 (metadata,
    chunks of arrays tensorstore's driver does not read, the pins' checks):
    s3fs/aiobotocore's cost per request was most of a member load's CPU
    (docs/performance.md).
    """
    protocol = getattr(fs, "protocol", None)
    options = getattr(fs, "storage_options", None)
    if not paths or not isinstance(protocol, str) or options is None or not available():
        return None
    split = [p.strip("/").partition("/") for p in paths]
    if any(not b or not k or k.endswith("/") for b, _, k in split):
        return None
    stores: dict[str, Any] = {}
    try:
        for bucket in {b for b, _, _ in split}:
            spec = kvstore_spec(protocol, options, bucket, "")
            if spec is None:
                return None
            key = context_key(spec)
            store = _KVSTORES.get(key)
            if store is None:
                ts = _tensorstore()
                plain, context = shared_context(spec)
                _Use.ran = True
                store = _KVSTORES[key] = ts.KvStore.open(plain, context=context).result()  # type: ignore[union-attr]
            stores[bucket] = store
        futures = [stores[b].read(k) for b, _, k in split]
        results = [f.result() for f in futures]
    except Exception as exc:  # noqa: BLE001 - s3fs fetches them and reports what is wrong
        _log.debug("tensorstore could not fetch %d keys (%s); s3fs used", len(paths), exc)
        return None
    out: list[bytes | None] = []
    for result in results:
        if result.state == "missing":
            out.append(None)
        elif result.state == "value":
            out.append(result.value)
        else:
            return None
    return out
