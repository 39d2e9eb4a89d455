"""The worker pools, and the chunk loop that encodes/decodes on the calling thread and a pool together."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")

_POOLS: dict[str, ThreadPoolExecutor] = {}
_POOL_LOCK = threading.Lock()


def _forget_pools_after_fork() -> None:
    """A forked child inherits the pools but not their threads: start fresh ones there."""
    global _POOL_LOCK
    _POOLS.clear()
    _POOL_LOCK = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pools_after_fork)


def _pool(kind: str = "write") -> ThreadPoolExecutor:
    """Worker threads that encode/decode chunks and do their I/O (both release the GIL).

    Writes use one thread per core (more only adds contention on the page
    cache); reads use two per core, which measured faster on a busy machine
    (see docs/performance.md). ``POLYSTORE_ZARR_THREADS`` overrides both.
    """
    pool = _POOLS.get(kind)
    if pool is None:
        with _POOL_LOCK:
            pool = _POOLS.get(kind)
            if pool is None:
                cpus = os.cpu_count() or 2
                env = os.environ.get("POLYSTORE_ZARR_THREADS", "")
                if env.isdigit() and int(env) > 0:
                    workers = int(env)
                elif kind == "read":
                    workers = max(2, min(8, 2 * cpus))
                else:
                    workers = max(2, min(8, cpus))
                pool = ThreadPoolExecutor(workers, thread_name_prefix=f"polystore-zarr-{kind}")
                _POOLS[kind] = pool
    return pool


def resize_pool(kind: str, threads: int) -> None:
    """Give the ``kind`` pool exactly ``threads`` threads from now on (a dask worker's task threads)."""
    with _POOL_LOCK:
        old = _POOLS.get(kind)
        if old is None or old._max_workers != threads:
            _POOLS[kind] = ThreadPoolExecutor(threads, thread_name_prefix=f"polystore-zarr-{kind}")
            if old is not None:
                old.shutdown(wait=False)



def run_each(kind: str, items: Sequence[T], fn: Callable[[T], None]) -> None:
    """Call ``fn(item)`` for every item, on the calling thread and the ``kind`` pool's threads.

    The caller works through the items too, beside at most ``workers - 1``
    pool threads that take the next item as they free up (one task per
    thread, not one per item). When the caller runs out of items, helpers
    that never started are cancelled: on a busy machine a pool thread that
    is slow to be scheduled costs nothing, and a call from inside a pool
    thread cannot deadlock. The first exception is raised after all running
    helpers have stopped; the remaining items are then skipped.
    """
    if len(items) <= 1:
        for item in items:
            fn(item)
        return
    pool = _pool(kind)
    it = iter(items)
    take = threading.Lock()
    failed: list[BaseException] = []

    def drain() -> None:
        while not failed:
            with take:
                item = next(it, _END)
            if item is _END:
                return
            try:
                fn(item)  # type: ignore[arg-type]
            except BaseException as exc:  # noqa: BLE001 - re-raised by the caller
                failed.append(exc)
                return

    helpers = [pool.submit(drain) for _ in range(min(pool._max_workers, len(items)) - 1)]
    drain()
    for helper in helpers:
        if not helper.cancel():
            helper.result()
    if failed:
        raise failed[0]


_END = object()
