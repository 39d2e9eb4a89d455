"""SIGKILL a writer at random points: a zygote process forks one child per trial (fast, no re-import)."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator


def kill_trials(script: str, args: list[str], trials: range, sleep: tuple[float, float]) -> Iterator[int]:
    """Run trial ``n`` of ``script`` and SIGKILL it after a random pause; yield ``n`` after each kill.

    ``script`` reads trial numbers from stdin, forks a child per trial that
    does the work, prints the child's pid and waits for it (see the
    ``_ZYGOTE`` scripts of the zarr fault tests).
    """
    zygote = subprocess.Popen(
        [sys.executable, "-c", script, *args], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert zygote.stdin is not None and zygote.stdout is not None
    rng = random.Random(0)
    try:
        for trial in trials:
            zygote.stdin.write(f"{trial}\n")
            zygote.stdin.flush()
            pid = int(zygote.stdout.readline())
            time.sleep(rng.uniform(*sleep))
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:  # it finished first
                pass
            yield trial
    finally:
        zygote.stdin.close()
        zygote.wait(timeout=60)
