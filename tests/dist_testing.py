"""A dask.distributed LocalCluster of worker processes shared by a test module, and block functions
that let a test act while a task runs on a worker (kill it, or kill the client).

Functions here are sent to the workers by value (``cloudpickle.register_pickle_by_value``): the
worker processes cannot import the tests folder.
"""

from __future__ import annotations

import os
import pathlib
import sys
import time
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

distributed = pytest.importorskip("distributed")
cloudpickle = pytest.importorskip("cloudpickle")
cloudpickle.register_pickle_by_value(sys.modules[__name__])

__all__ = ["cluster", "client", "gate_blocks", "wait_for_file", "write_pool_threads"]


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    """Two worker processes, one thread each, no dashboard; one per test module (startup is slow)."""
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0", scheduler_port=0
    ) as local:
        yield local


@pytest.fixture
def client(cluster: Any) -> Iterator[Any]:
    """A client of the module's cluster, current for the test (closed afterwards)."""
    with distributed.Client(cluster) as c:
        yield c


def wait_for_file(path: pathlib.Path, what: str, deadline_s: float = 120.0) -> None:
    """Poll until ``path`` exists (a task on a worker creates it)."""
    end = time.monotonic() + deadline_s
    while not path.exists():
        if time.monotonic() > end:
            raise AssertionError(f"{what}: {path} never appeared")
        time.sleep(0.05)


def _gated(block: np.ndarray, block_info: Any = None, *, folder: str, gated: int) -> np.ndarray:
    """Block function: the blocks at (``gated``, ``gated``) on y/x record the worker pid, then wait until ``go`` exists."""
    loc = block_info[0]["chunk-location"] if block_info else ()
    if loc and tuple(loc[-2:]) == (gated, gated):
        marker = os.path.join(folder, f"started-{os.getpid()}")
        with open(marker + ".tmp", "w") as f:
            f.write(str(os.getpid()))
        os.replace(marker + ".tmp", marker)
        while not os.path.exists(os.path.join(folder, "go")):
            time.sleep(0.05)
    return block


def gate_blocks(data: Any, folder: pathlib.Path, gated: int = 1) -> Any:
    """``data`` (dask, one block along the axes before y/x) whose block (``gated``, ``gated``) on y/x
    holds its task until ``folder/go`` exists.

    While held, ``folder/started-<pid>`` names the worker process running it;
    the other worker computes and writes the other blocks meanwhile.
    """
    return data.map_blocks(_gated, folder=str(folder), gated=gated, dtype=data.dtype)


def started_pid(folder: pathlib.Path) -> int:
    """The pid of the worker holding a gated block (after :func:`wait_for_file`-ing a marker)."""
    end = time.monotonic() + 120
    while True:
        found = sorted(folder.glob("started-*"))
        found = [p for p in found if not p.name.endswith(".tmp")]
        if found:
            return int(found[0].read_text())
        if time.monotonic() > end:
            raise AssertionError(f"no gated task started under {folder}")
        time.sleep(0.05)


def write_pool_threads() -> int:
    """Run in a worker (``client.run``): the threads of polystore's chunk-write pool there (0: none yet)."""
    from polystore.zarr import _workers

    pool = _workers._POOLS.get("write")
    return pool._max_workers if pool is not None else 0
