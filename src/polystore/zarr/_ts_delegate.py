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
levels) and lazy (dask) blocks alike.

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


def _after_fork_in_child() -> None:
    if _Use.ran:
        _Use.forked_after = True
    _HANDLES._lock = threading.Lock()  # the parent's lock may have been held by another thread
    _HANDLES._entries.clear()


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

