"""``polystore cp`` on a dask.distributed cluster: one task per item, the journal kept by the client.

Each task gets a plain description of one item (the ``Item`` dataclass:
paths, stamp, save keywords) and the copy settings; a worker loads the item,
saves it atomically (every backend's save is) and returns the journal record
(:func:`polystore.tree_copy.copy_item`). The client appends each record to the
journal as its task finishes, so an interrupted copy resumes like a local one,
and renames the partial destination into place only after every task
succeeded (:func:`polystore.tree_copy.copy_tree`). ``docs/distributed.md``
describes clusters; ``docs/cli.md`` the options.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from polystore.exceptions import MissingDependencyError, StorageError

if TYPE_CHECKING:
    from polystore.copy_journal import Journal
    from polystore.tree_copy import Item

__all__ = ["copy_on_cluster", "cluster_client", "require_distributed"]

_FM: dict[str, Any] = {}
_FM_LOCK = threading.Lock()


def _worker_fm() -> Any:
    """One FileManager per worker process (made on first use)."""
    with _FM_LOCK:
        if "fm" not in _FM:
            from polystore.filemanager import FileManager

            _FM["fm"] = FileManager()
        return _FM["fm"]


def _copy_task(item: Item, root: str, record: dict[str, Any] | None, settings: tuple[Any, ...]) -> Any:
    from polystore.tree_copy import copy_item

    src_backend, to, axes, compressor = settings
    return copy_item(_worker_fm(), item, root, record, src_backend, to, axes, compressor)


def require_distributed(purpose: str) -> Any:
    """The ``distributed`` module, or :class:`MissingDependencyError` naming the ``distributed`` extra."""
    try:
        import distributed
    except ImportError as exc:
        raise MissingDependencyError("distributed", "distributed", purpose) from exc
    return distributed


def cluster_client(scheduler: str | None = None, workers: int | None = None) -> Any:
    """A ``distributed.Client`` of the scheduler at ``scheduler``, or of a new LocalCluster of ``workers`` processes.

    The client of a LocalCluster closes its cluster when closed. Raises
    :class:`~polystore.exceptions.MissingDependencyError` naming the
    ``distributed`` extra when it is not installed.
    """
    distributed = require_distributed("cp --scheduler/--workers")
    if scheduler:
        return distributed.Client(scheduler)
    cluster = distributed.LocalCluster(
        n_workers=workers or 1, threads_per_worker=1, processes=True, dashboard_address=":0"
    )
    client = distributed.Client(cluster)
    client._polystore_cluster = cluster  # closed with the client by the CLI
    return client


def copy_on_cluster(
    client: Any,
    items: Sequence[Item],
    root: str,
    journal: Journal,
    settings: tuple[Any, ...],
    progress: bool | None,
    name: str,
) -> tuple[int, int]:
    """Copy ``items`` under ``root`` as tasks on ``client``; (copied, skipped).

    Progress shows tasks done / total. When a task fails, the others are
    waited for (and their records journaled, so a rerun skips them), then
    :class:`StorageError` names the first failure.
    """
    from tqdm import tqdm

    distributed = require_distributed("cp on a cluster")

    futures = [
        client.submit(_copy_task, item, root, journal.records.get(item.target), settings, pure=False)
        for item in items
    ]
    copied = skipped = 0
    failed: list[tuple[Item, BaseException]] = []
    where = {f.key: item for f, item in zip(futures, items)}
    bar = tqdm(total=len(futures), desc=f"cp -> {name} (tasks)", unit="task",
               disable=None if progress is None else not progress, file=sys.stderr)
    try:
        for future in distributed.as_completed(futures, loop=client.loop):
            bar.update(1)
            if future.status != "finished":
                exc = future.exception() if future.status == "error" else None
                failed.append((where[future.key], exc or RuntimeError(future.status)))
                continue
            got = future.result()
            if got is None:
                skipped += 1
            else:
                journal.add(got)
                copied += 1
    finally:
        bar.close()
        client.cancel(futures)
    if failed:
        item, exc = failed[0]
        raise StorageError(
            f"{len(failed)} of {len(items)} tasks failed; first: {item.rel!r}: {type(exc).__name__}: {exc}"
        ) from exc
    return copied, skipped
