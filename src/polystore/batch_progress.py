"""Progress bars for long batch work (``FileManager.save_batch`` / ``load_batch``)."""

from __future__ import annotations

import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TypeVar

__all__ = ["PROGRESS_THRESHOLD", "wants_progress", "chunks_with_progress", "one_call_with_progress"]

#: Batches at least this long show a progress bar when stderr is a terminal.
PROGRESS_THRESHOLD = 200

T = TypeVar("T")


def wants_progress(count: int, progress: bool | None) -> bool:
    """``progress`` if given; otherwise True for long batches when stderr is a terminal."""
    if progress is None:
        return count >= PROGRESS_THRESHOLD and sys.stderr.isatty()
    return progress


def chunks_with_progress(items: Sequence[T], description: str) -> Iterator[Sequence[T]]:
    """Yield about 100 slices of ``items`` while a tqdm bar counts the items done."""
    from tqdm import tqdm

    step = max(1, len(items) // 100)
    with tqdm(total=len(items), desc=description, unit="item") as bar:
        for start in range(0, len(items), step):
            chunk = items[start : start + step]
            yield chunk
            bar.update(len(chunk))


@contextmanager
def one_call_with_progress(count: int, description: str) -> Iterator[None]:
    """A bar for a batch done in one call: it completes when the block returns."""
    from tqdm import tqdm

    with tqdm(total=count, desc=description, unit="item") as bar:
        yield
        bar.update(count)
