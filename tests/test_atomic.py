"""Atomic writes survive SIGKILL at any point; the JSON lock loses no update."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from polystore import atomic_write, atomic_write_json
from polystore.atomic import atomic_update_json

# One Python process imports polystore once, then forks a fresh writer per trial (the writer is
# a real process killed by SIGKILL; forking saves a Python start-up and import per trial).
KILLED_WRITERS = """
import os, sys
from polystore import atomic_write
path = sys.argv[1]
for line in sys.stdin:
    tag = line.strip()
    pid = os.fork()
    if pid == 0:
        print(f"ready {os.getpid()}", flush=True)
        i = 0
        while True:
            with atomic_write(path, lock=(i % 2 == 0)) as f:
                for _ in range(2000):
                    f.write(tag * 100 + "\\n")
            i += 1
    _, status = os.waitpid(pid, 0)
    print(f"reaped {os.WTERMSIG(status) if os.WIFSIGNALED(status) else -1}", flush=True)
"""


def _content_is_whole(text: str) -> bool:
    lines = text.splitlines()
    return len(lines) == 2000 and len(set(lines)) == 1 and len(lines[0]) == 100


def test_sigkill_leaves_old_or_new(tmp_path: Path) -> None:
    path = tmp_path / "state.txt"
    with atomic_write(path) as f:
        f.write(("0" * 100 + "\n") * 2000)
    rng = np.random.default_rng(7)
    forker = subprocess.Popen([sys.executable, "-c", KILLED_WRITERS, str(path)],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert forker.stdin is not None and forker.stdout is not None
    try:
        for trial in range(25):
            tag = "abcdefghijklmnopqrstuvwxyz"[trial]
            forker.stdin.write(tag + "\n")
            forker.stdin.flush()
            ready = forker.stdout.readline().split()
            assert ready[:1] == ["ready"], f"trial {trial}: the writer did not start"
            time.sleep(float(rng.uniform(0, 0.05)))
            os.kill(int(ready[1]), signal.SIGKILL)
            assert forker.stdout.readline().split() == ["reaped", str(int(signal.SIGKILL))], f"trial {trial}"
            assert _content_is_whole(path.read_text()), f"trial {trial}: torn file"
    finally:
        forker.stdin.close()
        assert forker.wait(timeout=60) == 0


def test_exception_inside_block_keeps_old(tmp_path: Path) -> None:
    path = tmp_path / "x.txt"
    path.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_write(path) as f:
            f.write("new")
            raise RuntimeError("boom")
    assert path.read_text() == "old"
    assert sorted(os.listdir(tmp_path)) == ["x.txt", "x.txt.lock"]


def test_binary_mode_and_json(tmp_path: Path) -> None:
    with atomic_write(tmp_path / "b.bin", mode="wb") as f:
        f.write(b"\x00\x01")
    assert (tmp_path / "b.bin").read_bytes() == b"\x00\x01"
    atomic_write_json({"key": "value"}, tmp_path / "config.json")
    assert json.loads((tmp_path / "config.json").read_text()) == {"key": "value"}
    with pytest.raises(ValueError):
        with atomic_write(tmp_path / "a", mode="a"):
            pass


COUNTER = """
import sys
from polystore.atomic import atomic_update_json
path, who, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
for i in range(n):
    def bump(state):
        state = state or {"count": 0, "log": []}
        state["count"] += 1
        state["log"].append(f"{who}-{i}")
        return state
    atomic_update_json(path, bump)
"""


def test_concurrent_json_updates_lose_nothing(tmp_path: Path) -> None:
    path = tmp_path / "counter.json"
    workers, per_worker = 4, 40
    procs = [subprocess.Popen([sys.executable, "-c", COUNTER, str(path), f"w{w}", str(per_worker)])
             for w in range(workers)]
    for proc in procs:
        assert proc.wait(timeout=120) == 0
    state = json.loads(path.read_text())
    assert state["count"] == workers * per_worker
    assert sorted(state["log"]) == sorted(f"w{w}-{i}" for w in range(workers) for i in range(per_worker))
    assert atomic_update_json(path, lambda s: {**s, "count": s["count"] + 1})["count"] == 161


def test_lock_timeout_names_the_lock(tmp_path: Path) -> None:
    from polystore.atomic import file_lock

    target = tmp_path / "busy.json"
    with file_lock(target):
        start = time.monotonic()
        with pytest.raises(TimeoutError, match="busy.json.lock"):
            with file_lock(target, timeout=0.3):
                pass
        assert time.monotonic() - start < 10
    with file_lock(target, timeout=0.3):  # free again
        pass
