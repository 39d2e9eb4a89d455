"""Shared reporting for the benchmarks: one comparison line (ours, raw, ratio, target) each.

``python -m bench SUITE --record FILE`` also appends every :func:`report` line
to FILE as one JSON object per line; the documentation build turns
``docs/bench-results/*.jsonl`` into the tables and the plot of
``docs/performance.md``.
"""

from __future__ import annotations

import json
import platform
import time


#: Where report() appends JSON records (set by ``python -m bench ... --record FILE``).
RECORD: dict[str, str] = {}


def report(
    label: str, ours: float, raw: float, unit: str, target: float | None, higher_is_better: bool = True
) -> str:
    """Format one comparison line: both figures, the ratio ours/raw and the target (None: reported only)."""
    ratio = ours / raw if raw else float("nan")
    sign = ">=" if higher_is_better else "<="
    if target is None:
        ok = None
        verdict = "(no target)"
    else:
        ok = ratio >= target if higher_is_better else ratio <= target
        verdict = f"(target {sign} {target}x) {'OK' if ok else 'MISS'}"
    line = (
        f"{label:<48} polystore {ours:10.3f} {unit:<6} raw {raw:10.3f} {unit:<6} "
        f"ratio {ratio:5.2f}x {verdict}"
    )
    print(line, flush=True)
    _record(label=label, polystore=ours, raw=raw, unit=unit, ratio=ratio, target=target,
            higher_is_better=higher_is_better, ok=ok)
    return line


def report_absolute(label: str, value: float, unit: str, limit: float | None, higher_is_better: bool = False,
                    detail: str = "") -> str:
    """Print (and record) a figure checked against an absolute target (None: reported only)."""
    sign = ">=" if higher_is_better else "<="
    ok: bool | None = None
    verdict = "(no target)"
    if limit is not None:
        ok = value >= limit if higher_is_better else value <= limit
        verdict = f"target {sign} {limit} {unit} {'OK' if ok else 'MISS'}"
    line = f"{label:<48} polystore {value:10.3f} {unit:<6} {verdict}"
    if detail:
        line += f"  ({detail})"
    print(line, flush=True)
    _record(label=label, polystore=value, raw=None, unit=unit, ratio=None, target=limit,
            higher_is_better=higher_is_better, ok=ok)
    return line


def _record(**fields: object) -> None:
    if not RECORD:
        return
    fields.update(suite=RECORD["suite"], run=RECORD["run"], host=platform.node())
    with open(RECORD["path"], "a", encoding="utf-8") as handle:
        handle.write(json.dumps(fields) + "\n")
