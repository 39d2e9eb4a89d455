"""The zarr backend's chunk loop (``run_each``): every item once, errors surface, nesting cannot deadlock."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

pytest.importorskip("zarr")

from polystore.zarr._workers import _pool  # noqa: E402
from polystore.zarr._workers import run_each  # noqa: E402


def test_every_item_runs_once_on_the_caller_and_pool_threads() -> None:
    seen: list[int] = []
    lock = threading.Lock()

    def work(i: int) -> None:
        with lock:
            seen.append(i)

    run_each("read", list(range(200)), work)
    assert sorted(seen) == list(range(200))


def test_the_first_error_is_raised_and_the_rest_is_skipped() -> None:
    done: list[int] = []

    def work(i: int) -> None:
        if i == 3:
            raise ValueError("chunk 3 is bad")
        done.append(i)

    with pytest.raises(ValueError, match="chunk 3 is bad"):
        run_each("read", list(range(1000)), work)
    assert len(done) < 999


def test_a_call_from_every_pool_thread_at_once_does_not_deadlock() -> None:
    """Every pool thread runs a chunk loop at the same time, so no thread is free for helpers.

    Waiting on per-item futures deadlocks here (each thread waits for work
    queued behind it); the caller-runs loop does the items itself and
    cancels the helpers that never started.
    """
    pool = _pool("read")
    workers = pool._max_workers
    total: list[int] = []
    lock = threading.Lock()
    barrier = threading.Barrier(workers, timeout=20)

    def inner(i: int) -> None:
        with lock:
            total.append(i)

    def outer() -> None:
        barrier.wait()  # every pool thread is busy here at once
        run_each("read", list(range(10)), inner)

    futures = [pool.submit(outer) for _ in range(workers)]
    for fut in futures:
        fut.result(timeout=30)
    assert len(total) == 10 * workers


def test_chunk_files_too_long_or_replaced_by_a_folder(tmp_path: Path) -> None:
    """The per-thread chunk buffer holds any valid chunk; a longer file is still judged whole.

    A chunk file longer than any Blosc frame of its chunk (junk appended)
    raises ImageLoadError naming it; a folder where a chunk file belongs
    reads as a missing chunk (the fill value), as before the buffer.
    """
    import numpy as np

    from polystore.exceptions import ImageLoadError
    from polystore.zarr import ZarrBackend

    backend = ZarrBackend(root=tmp_path)
    data = (np.arange(4 * 64 * 64) % 1000).astype(np.uint16).reshape(4, 64, 64)
    backend.save(data, "s.zarr", chunks=(1, 32, 32))
    np.testing.assert_array_equal(backend.load("s.zarr"), data)  # fills the per-thread buffers
    chunk = tmp_path / "s.zarr" / "c" / "2" / "1" / "0"
    good = chunk.read_bytes()
    chunk.write_bytes(good + b"\0" * (32 * 32 * 2 + 64))
    with pytest.raises(ImageLoadError, match=r"corrupted chunk 'c/2/1/0'.*truncated or padded"):
        backend.load("s.zarr")
    chunk.write_bytes(good + b"\0")
    with pytest.raises(ImageLoadError, match=r"corrupted chunk 'c/2/1/0'"):
        backend.load("s.zarr")
    chunk.unlink()
    chunk.mkdir()
    expected = data.copy()
    expected[2, 32:, :32] = 0
    np.testing.assert_array_equal(backend.load("s.zarr"), expected)
