"""Turn recorded benchmark runs into the tables and the plot of performance.md.

``python -m bench SUITE --record docs/bench-results/SUITE.jsonl`` appends one
JSON object per reported figure. At build time this module takes the latest
recorded run of each suite and writes ``_generated/bench-tables.md.inc`` and
``_generated/bench-ratios.png`` (how close each figure is to its target).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def latest_runs(results: Path) -> dict[str, list[dict[str, Any]]]:
    """Suite name -> the records of its most recent recorded run."""
    runs: dict[str, list[dict[str, Any]]] = {}
    for path in sorted(results.glob("*.jsonl")):
        records = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
        for record in records:
            suite = record["suite"]
            current = runs.get(suite)
            if current is None or record["run"] > current[0]["run"]:
                runs[suite] = [record]
            elif record["run"] == current[0]["run"]:
                current.append(record)
    return runs


def _figure(value: float | None, unit: str) -> str:
    if value is None:
        return ""
    return f"{value:,.3g} {unit}" if abs(value) < 100 else f"{value:,.0f} {unit}"


def table(records: list[dict[str, Any]]) -> str:
    """A markdown table of one run."""
    rows = ["| figure | polystore | raw | ratio | target | |", "| --- | --- | --- | --- | --- | --- |"]
    for r in records:
        sign = ">=" if r["higher_is_better"] else "<="
        if r["target"] is None:
            target = "(reported only)"
        elif r["ratio"] is None:
            target = f"{sign} {r['target']:g} {r['unit']}"
        else:
            target = f"{sign} {r['target']:g}x"
        ratio = "" if r["ratio"] is None else f"{r['ratio']:.2f}x"
        verdict = "" if r["ok"] is None else ("OK" if r["ok"] else "MISS")
        rows.append(f"| {r['label']} | {_figure(r['polystore'], r['unit'])} | {_figure(r['raw'], r['unit'])} "
                    f"| {ratio} | {target} | {verdict} |")
    return "\n".join(rows)


def score(record: dict[str, Any]) -> float:
    """How far a figure is from its target: 1.0 is exactly on target, above 1 is better."""
    value = record["ratio"] if record["ratio"] is not None else record["polystore"]
    target = record["target"]
    if not value or not target:
        return 0.0
    return float(value / target if record["higher_is_better"] else target / value)


def write(results: Path, generated: Path) -> None:
    """Write the tables fragment and the plot (or a note when nothing was recorded)."""
    generated.mkdir(exist_ok=True)
    runs = latest_runs(results) if results.is_dir() else {}
    fragment = generated / "bench-tables.md.inc"
    if not runs:
        fragment.write_text("```{note}\nNo recorded benchmark runs in docs/bench-results/.\n```\n")
        return
    parts = ["```{figure} /_generated/bench-ratios.png\n:width: 100%\n\n"
             "Each figure of the latest recorded runs divided by its target (1.0 = on target; "
             "right of the line is better).\n```\n"]
    for suite, records in sorted(runs.items()):
        parts.append(f"### `python -m bench {suite}` ({records[0]['run']}, host {records[0]['host']})\n")
        parts.append(table(records) + "\n")
    fragment.write_text("\n".join(parts))
    _plot([(f"{s}: {r['label']}", score(r)) for s, records in sorted(runs.items()) for r in records
           if r["target"] is not None],
          generated / "bench-ratios.png")


def _plot(scores: list[tuple[str, float]], target: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    labels = [label for label, _ in scores][::-1]
    values = [value for _, value in scores][::-1]
    figure, axes = pyplot.subplots(figsize=(10, 0.32 * len(scores) + 1.2))
    colors = ["#3a923a" if v >= 1 else "#c0392b" for v in values]
    axes.barh(range(len(values)), values, color=colors)
    axes.axvline(1.0, color="black", linewidth=1)
    axes.set_yticks(range(len(labels)), labels, fontsize=8)
    axes.set_xlabel("figure / target (>= 1 meets the target)")
    axes.set_xscale("log")
    figure.tight_layout()
    figure.savefig(target, dpi=110)
    pyplot.close(figure)
