"""Shared timing helpers for the benchmarks: best-of-N wall time and ratio printing."""

from __future__ import annotations

import time
from collections.abc import Callable


def best_of(fn: Callable[[], object], repeat: int = 5) -> float:
    """Run ``fn`` ``repeat`` times (after one warm-up) and return the fastest wall time in s."""
    fn()
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - start)
    return best


def report(label: str, ours: float, raw: float, unit: str, target: float, higher_is_better: bool = True) -> str:
    """Format one comparison line: both figures, the ratio ours/raw and the target."""
    ratio = ours / raw if raw else float("nan")
    ok = ratio >= target if higher_is_better else ratio <= target
    sign = ">=" if higher_is_better else "<="
    line = (
        f"{label:<48} polystore {ours:10.3f} {unit:<6} raw {raw:10.3f} {unit:<6} "
        f"ratio {ratio:5.2f}x (target {sign} {target}x) {'OK' if ok else 'MISS'}"
    )
    print(line, flush=True)
    return line
