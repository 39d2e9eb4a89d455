"""Running a cluster save's write tasks: blocks grouped into fewer tasks, all handed out at once, one wait.

:mod:`polystore.zarr._distributed` plans the blocks and writes the
metadata; this module decides how the blocks' dask tasks reach the
scheduler (:func:`grouped`, :func:`_placed_at_once`) and waits for them
(:func:`run_tasks`). ``docs/distributed.md`` gives the measured reasons.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import uuid
from collections.abc import Sequence
from typing import Any

from polystore.cluster_copy import require_distributed
from polystore.exceptions import ImageSaveError

__all__ = [
    "GROUP_BYTES", "TASKS_PER_THREAD", "SHARED_INPUTS", "group_size", "grouped", "flat_results", "cluster_workers",
    "run_tasks",
]

#: Blocks are written in groups of about this many bytes per task, when there are enough of them (:func:`grouped`).
GROUP_BYTES = 64 * 1024 * 1024
#: ... but only while every worker thread still gets at least this many tasks (balance at the end, cheap retries).
TASKS_PER_THREAD = 8
#: Blocks are grouped only when all of them together read at most this many keys of other tasks (a source
#: array object, say); more means per-block input tasks, which the scheduler should place one by one.
SHARED_INPUTS = 4


def _list(*results: Any) -> list[Any]:
    """A group task's result: its blocks' results, in order."""
    return list(results)


def flat_results(done: Sequence[Any]) -> list[Any]:
    """The block results of :func:`run_tasks`: a group's task returns a list of them."""
    out: list[Any] = []
    for r in done:
        out.extend(r if isinstance(r, list) else [r])
    return out


def group_size(blocks: int, block_bytes: int, threads: int) -> int:
    """How many neighbouring blocks :func:`grouped` writes per task (1: one task per block)."""
    return max(1, min(GROUP_BYTES // max(1, block_bytes), blocks // max(1, TASKS_PER_THREAD * threads)))


def grouped(tasks: list[Any], block_bytes: int, threads: int) -> list[Any]:
    """``tasks`` (one dask Delayed per block) merged into tasks of several neighbouring blocks each.

    Every task costs the scheduler and the client CPU of their own: on a
    LocalCluster (scheduler, client and nannies in one process) about 6 ms
    per task, measured while saving 4 GiB in 512 blocks of 8 MiB, which took
    0.18-0.28 of a core from the two cores the workers ran on; in groups of
    8 (64 tasks) 0.09-0.15. Blocks are merged into groups of about
    :data:`GROUP_BYTES` (run one after the other inside one task) as long as
    every worker thread keeps :data:`TASKS_PER_THREAD` tasks. Only blocks
    whose pixels are made inside their own task are merged (a dask array
    read from files or made by ``map_blocks``: after dask's blockwise fusion
    the write task computes its block itself, reading at most
    :data:`SHARED_INPUTS` keys shared by all); blocks that come from other
    tasks (a rechunk, say) stay one task each, so no group has to gather its
    pixels from several workers.

    This uses dask's task-spec classes (``dask._task_spec``: not a public
    module); where they are missing or changed, the blocks are written one
    per task as before.
    """
    per_group = group_size(len(tasks), block_bytes, threads)
    if per_group < 2:
        return tasks
    try:
        from dask._task_spec import Alias, Task, TaskRef, cull
        from dask.delayed import Delayed

        graph = tasks[0].__dask_graph__()
        if any(t.__dask_graph__() is not graph for t in tasks):
            return tasks
        graph = dict(graph)
        chains: list[list[Any]] = []
        for t in tasks:
            node = graph[t.key]
            chain = [node]
            while isinstance(node, Alias):
                node = graph[node.target]
                chain.append(node)
            chains.append(chain)
        inside = {n.key for chain in chains for n in chain}
        outside = {d for chain in chains for n in chain for d in n.dependencies} - inside
        if len(outside) > SHARED_INPUTS:
            return tasks
        name = f"write_blocks-{uuid.uuid4().hex}"
        out = []
        for g, start in enumerate(range(0, len(chains), per_group)):
            part = chains[start : start + per_group]
            key = (name, g)
            collect = Task(key, _list, *(TaskRef(chain[0].key) for chain in part))
            fused = Task.fuse(*(n for chain in part for n in chain), collect, key=key)
            shared = cull(graph, list(fused.dependencies))  # the few keys every block reads, and theirs
            out.append(Delayed(key, {key: fused, **shared}))  # type: ignore[no-untyped-call]
        return out
    except (ImportError, AttributeError, KeyError, TypeError, ValueError):
        return tasks


def cluster_workers(client: Any) -> dict[str, Any]:
    """The hosts of the client's workers and their threads in all (a single request to the scheduler)."""
    try:
        workers = client.scheduler_info(n_workers=-1)["workers"]
        return {
            "hosts": sorted({str(info["host"]) for info in workers.values()}),
            "threads": sum(int(info.get("nthreads", 1)) for info in workers.values()),
        }
    except Exception:  # noqa: BLE001 - no worker list: the scheduler's defaults
        return {"hosts": [], "threads": 1}


def _placed_at_once(hosts: Sequence[str]) -> dict[str, Any]:
    """``compute`` keywords that let the scheduler hand every write task to a worker at once.

    A task with no dependencies counts as a root task, which the scheduler
    holds back (``distributed.scheduler.worker-saturation``) and releases one
    by one as others finish, so that roots cannot fill the workers' memory
    with results nobody consumes yet. A write task's result is a few numbers,
    so holding it back protects nothing and costs scheduler work per block
    (measured, 1 GiB on 2 local workers: 374-387 MiB/s with it, 432-434 MiB/s
    without). A loose restriction to ``hosts``, those of the workers present
    (:func:`cluster_workers`; the scheduler keeps one small set of host
    names per task), exempts the write tasks from that queue and nothing
    else (the tasks they depend on keep it); workers that join later or
    replace a dead one get tasks by work stealing and rescheduling.
    """
    return {"workers": list(hosts), "allow_other_workers": True} if hosts else {}


def run_tasks(client: Any, tasks: Sequence[Any], what: str, hosts: Sequence[str]) -> list[Any]:
    """Compute dask ``tasks`` on ``client``; all results, or :class:`ImageSaveError` once all stopped.

    A worker that dies is replaced and its tasks rerun by the scheduler (up
    to ``distributed.scheduler.allowed-failures`` times); a task that raises
    fails the whole run. Before raising, every other task is waited for, so
    none still writes after the caller cleans up. ``hosts``: the workers'
    hosts (:func:`cluster_workers`).
    """
    distributed = require_distributed("saving on a cluster")
    futures = client.compute(list(tasks), **_placed_at_once(hosts))
    try:
        # one wait for the whole set: as_completed would wake this thread once per task, which
        # cost the client's event loop (shared with a LocalCluster's scheduler) about a quarter of its CPU
        with client.as_current(), contextlib.suppress(concurrent.futures.CancelledError):  # reported below
            distributed.wait(futures)  # every task ends: finished, failed or cancelled
        failed = [f for f in futures if f.status != "finished"]
        if failed:
            exc = failed[0].exception() if failed[0].status == "error" else None
            raise ImageSaveError(
                f"{what}: {len(failed)} of {len(futures)} tasks failed"
                + (f" (first: {type(exc).__name__}: {exc})" if exc is not None else f" ({failed[0].status})")
            ) from exc
        return list(client.gather(futures))
    finally:
        client.cancel(futures)
