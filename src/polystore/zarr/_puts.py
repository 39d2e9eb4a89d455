"""Object-store PUTs that overlap the encoding of the next chunks (issue 14)."""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Iterable
from concurrent.futures import Future, wait
from typing import Any

__all__ = ["put_overlapped"]


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
