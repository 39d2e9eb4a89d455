"""Object-store PUTs that overlap the encoding of the next chunks (issue 14), through s3fs or tensorstore."""

from __future__ import annotations

import asyncio
import collections
import contextlib
import itertools
import os
import sys
import threading
from collections.abc import Iterable, Mapping
from concurrent.futures import Future, wait
from typing import Any

__all__ = ["write_items", "put_overlapped", "KvStorePuts"]


def write_items(fs: Any, items: Iterable[tuple[str, bytes]]) -> None:
    """``_FsspecFS.write_many``: tensorstore's kvstore where it serves the bucket, else s3fs's loop, else ``pipe``."""
    items = iter(items)
    first = next(items, None)
    if first is None:
        return
    items = itertools.chain([first], items)
    kv: KvStorePuts | None = fs.kv_puts
    if kv is not None and kv.available(first[0].partition("/")[0]):
        kv.put(items, fs.request_batch_bytes)
    elif getattr(fs.fs, "async_impl", False):
        put_overlapped(fs.fs, items, fs.request_batch_bytes)
    else:
        batch: dict[str, bytes] = {}
        size = 0
        for path, data in items:
            batch[path] = data
            size += len(data)
            if size >= fs.request_batch_bytes:
                fs.fs.pipe(batch)
                batch, size = {}, 0
        if batch:
            fs.fs.pipe(batch)


def put_overlapped(afs: Any, items: Iterable[tuple[str, bytes]], bound: int) -> None:
    """PUT every ``(path, data)`` on async fsspec filesystem ``afs``'s loop as soon as ``items`` yields it.

    The caller's thread goes on producing (encoding) the next items while
    earlier ones upload. At most ``bound`` bytes (and at least one item) are
    in flight; beyond that the oldest PUT is waited for. Returns when every
    PUT finished; the first failure (of a PUT or of ``items``) is raised
    after every PUT started here has stopped.
    """
    pending: collections.deque[tuple[Future[Any], int]] = collections.deque()
    inflight = 0
    try:
        for path, data in items:
            # finished PUTs leave (a failed one raises now), and the oldest are waited for over the bound
            while pending and (pending[0][0].done() or inflight + len(data) > bound):
                put, size = pending.popleft()
                inflight -= size
                put.result()
            put = asyncio.run_coroutine_threadsafe(afs._pipe_file(path, data), afs.loop)
            pending.append((put, len(data)))
            inflight += len(data)
        while pending:
            pending.popleft()[0].result()
    finally:
        wait([put for put, _ in pending])  # no PUT of this call runs on after it returned or raised


#: False in a process forked from one that had imported tensorstore: its threads do not exist in
#: the child, and using it there aborts the process (measured); such a child sends through s3fs.
_TENSORSTORE_USABLE = [True]


def _after_fork_in_child() -> None:
    if "tensorstore" in sys.modules:
        _TENSORSTORE_USABLE[0] = False


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


class KvStorePuts:
    """Chunk PUTs through tensorstore's S3 kvstore (issue 9: its transport costs a fraction of s3fs's CPU).

    Built from plain settings (what :class:`~polystore.zarr._fs._FsspecFS` is
    pickled as), so a dask worker builds its own; the kvstores (one per
    bucket) are made on first use in each process and never pickled; a
    process forked from one that had imported tensorstore uses s3fs.
    """

    def __init__(self, protocol: str, options: Mapping[str, Any]) -> None:
        self.protocol = protocol
        self.options = dict(options)
        self._stores: dict[str, tuple[Any, dict[str, Any], Any] | None] = {}
        self._pid = os.getpid()
        self._lock = threading.Lock()

    def available(self, bucket: str) -> bool:
        """True when tensorstore is installed and the storage options translate (else: s3fs)."""
        return self._opened(bucket) is not None

    def spec_and_context(self, bucket: str) -> tuple[dict[str, Any], Any] | None:
        """The kvstore spec of ``bucket`` (no credentials) and the tensorstore Context holding them, or None."""
        got = self._opened(bucket)
        return None if got is None else (got[1], got[2])

    def _store(self, bucket: str) -> Any:
        got = self._opened(bucket)
        return None if got is None else got[0]

    def _opened(self, bucket: str) -> tuple[Any, dict[str, Any], Any] | None:
        with self._lock:
            if self._pid != os.getpid():
                self._stores, self._pid = {}, os.getpid()
            if bucket not in self._stores:
                self._stores[bucket] = self._open(bucket)
            return self._stores[bucket]

    def _open(self, bucket: str) -> tuple[Any, dict[str, Any], Any] | None:
        from polystore.zarr._ts_kvstore import kvstore_spec, shared_context

        if not _TENSORSTORE_USABLE[0]:
            return None
        try:
            import tensorstore as ts
        except ImportError:
            return None
        spec = kvstore_spec(self.protocol, self.options, bucket, "")
        if spec is None:
            return None
        plain, context = shared_context(spec)
        try:
            return ts.KvStore.open(plain, context=context).result(), plain, context
        except Exception:  # noqa: BLE001 - a tensorstore too old for the spec: s3fs, which takes the options
            return None

    def put(self, items: Iterable[tuple[str, bytes]], bound: int) -> None:
        """PUT every ``("bucket/key", data)``; the same overlap, bound and failure rules as :func:`put_overlapped`.

        A failed PUT is raised as :class:`OSError` naming its key.
        """
        pending: collections.deque[tuple[Any, int, str]] = collections.deque()
        inflight = 0

        def finish(write: Any, path: str) -> None:
            try:
                write.result()
            except Exception as exc:  # tensorstore reports HTTP failures as ValueError
                raise OSError(f"PUT {self.protocol}://{path} failed: {exc}") from exc

        try:
            for path, data in items:
                while pending and (pending[0][0].done() or inflight + len(data) > bound):
                    write, size, done_path = pending.popleft()
                    inflight -= size
                    finish(write, done_path)
                bucket, _, key = path.partition("/")
                store = self._store(bucket)
                if store is None:  # not reached: translation does not depend on the bucket
                    raise OSError(f"cannot PUT {self.protocol}://{path} through tensorstore")
                pending.append((store.write(key, data), len(data), path))
                inflight += len(data)
            while pending:
                write, _, done_path = pending.popleft()
                finish(write, done_path)
        finally:
            for write, _, _ in pending:  # no PUT of this call runs on after it returned or raised
                with contextlib.suppress(Exception):
                    write.result()
