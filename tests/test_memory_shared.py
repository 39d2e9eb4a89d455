"""Memory backend over a real ``multiprocessing`` manager process that dies or stalls."""

from __future__ import annotations

import multiprocessing
import os
import signal
import threading
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest

from polystore import MemoryBackend, StorageError


@pytest.fixture
def manager() -> Iterator[Any]:
    mgr = multiprocessing.get_context("spawn").Manager()
    yield mgr
    pid = mgr._process.pid
    if mgr._process.is_alive():
        os.kill(pid, signal.SIGCONT)
        mgr.shutdown()


def _in_thread(call: Callable[[], Any]) -> BaseException | None:
    """Run ``call`` in a thread (so a regression that blocks cannot hang the suite); return its error."""
    outcome: list[BaseException | None] = []

    def run() -> None:
        try:
            call()
            outcome.append(None)
        except BaseException as exc:  # noqa: BLE001 - returned to the test
            outcome.append(exc)

    worker = threading.Thread(target=run, daemon=True)
    worker.start()
    worker.join(120)
    assert outcome, "the call blocked on the stopped manager"
    return outcome[0]


def test_dead_manager_raises_storage_error_naming_it(manager: Any) -> None:
    backend = MemoryBackend(shared_dict=manager.dict())
    backend.save(np.arange(3), "/plate/a.npy")
    manager._process.kill()
    manager._process.join()
    for call in (lambda: backend.save(np.arange(2), "/plate/b.npy"), lambda: backend.load("/plate/a.npy"),
                 lambda: backend.exists("/plate/a.npy"), lambda: backend.list_files("/plate")):
        with pytest.raises(StorageError, match="manager process .* is gone"):
            call()


def test_stalled_manager_times_out_and_recovers(manager: Any) -> None:
    backend = MemoryBackend(shared_dict=manager.dict(), manager_timeout=3.0)  # generous: CI machines are loaded
    backend.save(np.arange(3), "/plate/a.npy")
    os.kill(manager._process.pid, signal.SIGSTOP)
    try:
        error = _in_thread(lambda: backend.save(np.arange(2), "/plate/b.npy"))
        assert isinstance(error, StorageError) and "did not answer" in str(error), error
        assert "manager_timeout" in str(error)
        error = _in_thread(lambda: backend.load("/plate/a.npy"))  # a new thread connects first
        assert isinstance(error, StorageError) and "did not answer" in str(error), error
    finally:
        os.kill(manager._process.pid, signal.SIGCONT)
    np.testing.assert_array_equal(backend.load("/plate/a.npy"), np.arange(3))
    backend.save(np.arange(4), "/plate/c.npy")
    assert backend.list_files("/plate") == ["/plate/a.npy", "/plate/c.npy"] or backend.list_files(
        "/plate") == ["/plate/a.npy", "/plate/b.npy", "/plate/c.npy"]  # b may have landed late
    with pytest.raises(FileNotFoundError):
        backend.load("/plate/missing.npy")
