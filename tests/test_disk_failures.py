"""Disk failures become polystore errors naming path and fix; nothing is left behind.

Full and read-only disks are real: a 256 KB tmpfs mounted in a user+mount
namespace (``unshare -rm``), remounted read-only half-way.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from polystore import DiskBackend, FileManager, StorageError
from polystore.atomic import atomic_write_json
from polystore.cli import main
from polystore.exceptions import SymlinkLoopError

FULL_DISK_SCRIPT = r"""
import json, os, subprocess, sys
import numpy as np
from polystore import DiskBackend
from polystore.atomic import atomic_write_json

root = sys.argv[1]
disk = DiskBackend()
out = {}

def caught(call):
    try:
        call()
    except Exception as exc:
        return {"type": type(exc).__name__, "message": str(exc), "polystore": type(exc).__module__,
                "oserror": isinstance(exc, OSError), "permission": isinstance(exc, PermissionError),
                "notes": getattr(exc, "__notes__", [])}
    return None

arrays = [np.full(16 * 1024, i, np.uint8) for i in range(40)]
paths = [os.path.join(root, f"{i}.npy") for i in range(40)]
out["full_batch"] = caught(lambda: disk.save_batch(arrays, paths))
saved = [p for p in paths if os.path.exists(p)]
out["saved_intact"] = all((np.load(p) == int(os.path.basename(p)[:-4])).all() for p in saved)
out["full_json"] = caught(lambda: atomic_write_json({"x": "y" * 400000}, os.path.join(root, "big.json")))
out["names_after_full"] = sorted(os.listdir(root))
for p in saved[2:]:
    os.unlink(p)
subprocess.run(["mount", "-o", "remount,ro", root], check=True)
out["ro_batch"] = caught(lambda: disk.save_batch(arrays[:2], paths[:2]))
out["ro_json"] = caught(lambda: atomic_write_json({"a": 1}, os.path.join(root, "state.json")))
out["ro_intact"] = all((np.load(p) == i).all() for i, p in enumerate(paths[:2]))
print(json.dumps(out))
"""


def _run_on_small_tmpfs(tmp_path: Path, script: str) -> dict:
    if shutil.which("unshare") is None:
        pytest.skip("needs unshare(1) to mount a small tmpfs")
    mount = tmp_path / "mnt"
    mount.mkdir()
    probe = subprocess.run(["unshare", "-rm", "mount", "-t", "tmpfs", "none", str(mount)], capture_output=True)
    if probe.returncode != 0:
        pytest.skip(f"user+mount namespaces unavailable: {probe.stderr.decode().strip()}")
    shell = 'mount -t tmpfs -o size=256k none "$0" && exec "$1" -c "$2" "$0"'
    proc = subprocess.run(["unshare", "-rm", "sh", "-c", shell, str(mount), sys.executable, script],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout.strip().splitlines()[-1])


def test_full_and_read_only_disk_raise_polystore_errors_naming_path_and_fix(tmp_path: Path) -> None:
    out = _run_on_small_tmpfs(tmp_path, FULL_DISK_SCRIPT)
    full = out["full_batch"]
    assert full["type"] == "StorageFullError" and full["oserror"], full
    assert ".npy" in full["message"] and "disk:" in full["message"] and "free some space" in full["message"]
    assert any("were saved" in note for note in full["notes"])
    assert out["saved_intact"]
    json_full = out["full_json"]
    assert json_full["type"] == "StorageFullError" and "big.json" in json_full["message"], json_full
    assert not [n for n in out["names_after_full"] if n.endswith(".tmp") or n == "big.json"]
    for key in ("ro_batch", "ro_json"):
        error = out[key]
        assert error["type"] == "StoragePermissionError" and error["permission"], error
        assert "read-only" in error["message"] and "another location" in error["message"]
    assert out["ro_intact"]


def test_symlink_loops_in_recursive_listing_name_the_link(tmp_path: Path, fm: FileManager) -> None:
    (tmp_path / "a").mkdir()
    fm.save(np.zeros(2), tmp_path / "a" / "x.npy", backend="disk")
    (tmp_path / "a" / "up").symlink_to("..")  # a/up/a/up/... until ELOOP
    with pytest.raises(SymlinkLoopError, match=r"a/up.*remove or correct") as info:
        fm.list_files(tmp_path, "disk", recursive=True)
    assert isinstance(info.value, OSError)
    (tmp_path / "a" / "up").unlink()
    assert fm.list_files(tmp_path, "disk", recursive=True) == [str(tmp_path / "a" / "x.npy")]
    (tmp_path / "a" / "self").symlink_to("self")
    with pytest.raises(SymlinkLoopError, match="self"):
        fm.list_files(tmp_path, "disk", recursive=True)


def test_ls_lists_a_folder_with_one_corrupt_file_and_marks_it(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    disk = DiskBackend()
    disk.save(np.zeros((4, 5), np.uint16), tmp_path / "a.tif")
    (tmp_path / "b.tif").write_bytes(b"II*\x00garbage")
    disk.save(np.zeros(3), tmp_path / "c.npy")
    code = main(["ls", str(tmp_path)])
    out, err = capsys.readouterr()
    lines = out.splitlines()
    assert [line.split()[-1] for line in lines if not line.startswith("corrupt")] == ["a.tif", "c.npy"]
    (bad,) = [line for line in lines if line.startswith("corrupt")]
    assert "b.tif" in bad
    assert code != 0 and "1 file(s) could not be read" in err


def test_listings_hide_locks_journal_and_temp_files(tmp_path: Path, fm: FileManager) -> None:
    atomic_write_json({"a": 1}, tmp_path / "state.json")  # leaves state.json.lock
    fm.save(np.zeros(2), tmp_path / "x.npy", backend="disk")
    (tmp_path / ".polystore-cp.jsonl").write_text("{}\n")
    (tmp_path / ".x.npy.999999-3.tmp").write_bytes(b"half")
    assert (tmp_path / "state.json.lock").exists()
    assert fm.list_files(tmp_path, "disk") == [str(tmp_path / "state.json"), str(tmp_path / "x.npy")]
    assert fm.list_dir(tmp_path, "disk") == ["state.json", "x.npy"]


def _write_json_forever(path: str) -> None:
    n = 0
    while True:
        atomic_write_json({"n": n, "pad": "x" * 200_000}, path)
        n += 1


def test_killed_atomic_write_json_leaves_nothing_visible_or_lasting(tmp_path: Path, fm: FileManager) -> None:
    target = tmp_path / "target.json"
    atomic_write_json({"n": -1}, target)
    fork = multiprocessing.get_context("fork")
    rng = np.random.default_rng(3)
    for _ in range(50):
        proc = fork.Process(target=_write_json_forever, args=(str(target),))
        proc.start()
        time.sleep(float(rng.uniform(0.005, 0.05)))
        os.kill(proc.pid or 0, signal.SIGKILL)
        proc.join()
        assert isinstance(json.loads(target.read_text())["n"], int)  # always complete
    assert fm.list_files(tmp_path, "disk") == [str(target)]
    assert fm.list_dir(tmp_path, "disk") == ["target.json"]
    DiskBackend().cleanup(tmp_path)
    assert sorted(os.listdir(tmp_path)) == ["target.json", "target.json.lock"]


def test_cleanup_keeps_temp_files_of_running_writers(tmp_path: Path) -> None:
    mine = tmp_path / f".a.npy.{os.getpid()}-1.tmp"
    dead = tmp_path / ".a.npy.999999999-1.tmp"
    other = tmp_path / ".notes.tmp"  # not a polystore temp name
    for path in (mine, dead, other):
        path.write_bytes(b"x")
    assert DiskBackend().cleanup(tmp_path) == [str(dead)]
    assert mine.exists() and other.exists() and not dead.exists()
    with pytest.raises(StorageError):
        DiskBackend().cleanup(tmp_path / "missing")
