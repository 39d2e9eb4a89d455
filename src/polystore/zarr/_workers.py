"""The chunk loop: encode/decode chunks on the calling thread and the worker pool together."""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from typing import TypeVar

from polystore.zarr._fs import _pool

T = TypeVar("T")


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
