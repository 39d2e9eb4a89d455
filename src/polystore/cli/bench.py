"""``polystore bench``: run the benchmarks of the source tree (``python -m bench ...``)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import click

__all__ = ["bench", "find_bench_root", "SUITES"]

SUITES = ("core", "zarr", "frames", "stream", "fiji", "annotations", "distributed")


def find_bench_root() -> Path | None:
    """The source checkout holding ``bench/`` (``$POLYSTORE_SOURCE`` first), or None."""
    candidates = []
    env = os.environ.get("POLYSTORE_SOURCE")
    if env:
        candidates.append(Path(env))
    candidates.append(Path(__file__).resolve().parents[3])  # src/polystore/cli/bench.py -> checkout
    candidates.append(Path.cwd())
    for root in candidates:
        if (root / "bench" / "__main__.py").is_file():
            return root
    return None


@click.command(
    "bench",
    add_help_option=False,
    context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
)
@click.argument("suite", default="core", metavar="[core|zarr|frames|stream|fiji|annotations|distributed]")
@click.argument("options", nargs=-1, type=click.UNPROCESSED)
@click.pass_context
def bench(ctx: click.Context, suite: str, options: tuple[str, ...]) -> int:
    """Run benchmark SUITE (core, zarr, frames, stream, fiji, annotations or distributed); OPTIONS go to it.

    The benchmarks live in the source tree (bench/, not installed); this runs
    ``python -m bench SUITE OPTIONS`` there (set POLYSTORE_SOURCE to a
    checkout if polystore is installed elsewhere). ``polystore bench core --help``
    shows a suite's options. Commands and latest figures: docs/performance.md.
    """
    if suite in ("-h", "--help"):
        click.echo(ctx.get_help())
        return 0
    if suite not in SUITES:
        raise click.BadParameter(f"{suite!r} is not one of {', '.join(SUITES)}", param_hint="'SUITE'")
    root = find_bench_root()
    if root is None:
        raise click.ClickException(
            "the benchmarks are in the polystore source tree (bench/), which was not found; "
            "run from a checkout or set POLYSTORE_SOURCE=/path/to/polystore"
        )
    if not (root / "bench" / f"{suite}_bench.py").is_file():
        raise click.ClickException(f"benchmark suite {suite!r} is not in {root / 'bench'} (not written yet?)")
    command = [sys.executable, "-m", "bench", suite, *options]
    return subprocess.call(command, cwd=root)
