"""``polystore cp --scheduler / --workers``: one task per item on a real dask.distributed cluster (issue 14)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("zarr")

from cli_testing import run_cli, run_subprocess, tiff_folder  # noqa: E402,F401  (fixture)
from dist_testing import cluster  # noqa: E402,F401  (fixture)

from polystore import FileManager  # noqa: E402
from polystore.tree_copy import JOURNAL_NAME  # noqa: E402


def _images(store: Path) -> dict[str, np.ndarray]:
    fm = FileManager()
    return {p[len(str(store)) + 1 :]: fm.load(p, "zarr") for p in fm.list_files(store, "zarr", recursive=True)}


def test_cp_on_a_scheduler_matches_a_local_copy_and_resumes(
    cluster: Any, tiff_folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    local, remote = tmp_path / "local.zarr", tmp_path / "remote.zarr"
    assert run_cli(capsys, "cp", str(tiff_folder), str(local))[0] == 0
    code, out, err = run_cli(capsys, "cp", str(tiff_folder), str(remote), "--scheduler", cluster.scheduler_address,
                             "--progress")
    assert code == 0, err
    assert "copied 6, skipped 0" in out
    assert "6/6" in err and "task" in err  # progress counts tasks done / total
    a, b = _images(local), _images(remote)
    assert a.keys() == b.keys() and len(a) == 6
    for name in a:
        assert a[name].dtype == b[name].dtype and np.array_equal(a[name], b[name]), name
    records = [json.loads(line) for line in (remote / JOURNAL_NAME).read_text().splitlines()]
    assert sorted(r["target"] for r in records) == sorted(a)
    assert not list(tmp_path.glob(".*partial*"))
    code, out, _ = run_cli(capsys, "cp", str(tiff_folder), str(remote), "--scheduler", cluster.scheduler_address)
    assert code == 0 and "copied 0, skipped 6" in out


def test_a_failed_task_keeps_the_partial_copy_and_the_rerun_resumes(
    cluster: Any, tiff_folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tiff_folder / "B02" / "float.tiff"
    good = bad.read_bytes()
    bad.write_bytes(b"II*\x00 not a tiff")
    dst = tmp_path / "p.zarr"
    code, _, err = run_cli(capsys, "cp", str(tiff_folder), str(dst), "--scheduler", cluster.scheduler_address)
    assert code != 0
    assert "1 of 6 tasks failed" in err and "float.tiff" in err and "resume" in err
    assert not dst.exists()
    partial = tmp_path / ".p.zarr.cp-partial.zarr"
    assert len((partial / JOURNAL_NAME).read_text().splitlines()) == 5  # the finished items are journaled
    bad.write_bytes(good)
    code, out, err = run_cli(capsys, "cp", str(tiff_folder), str(dst), "--scheduler", cluster.scheduler_address)
    assert code == 0, err
    assert "copied 1, skipped 5" in out
    assert dst.exists() and not partial.exists()


def test_cp_workers_starts_a_local_cluster(tiff_folder: Path, tmp_path: Path) -> None:
    result = run_subprocess("cp", str(tiff_folder), str(tmp_path / "w.zarr"), "--workers", "2", timeout=300)
    assert result.returncode == 0, result.stderr
    assert "copied 6, skipped 0" in result.stdout
    assert len(_images(tmp_path / "w.zarr")) == 6


def test_cp_cluster_options_without_distributed_name_the_extra(tiff_folder: Path, tmp_path: Path) -> None:
    import subprocess
    import sys

    code = (
        "import sys; sys.modules['distributed'] = None\n"
        "from polystore.cli import main\n"
        f"sys.exit(main(['cp', {str(tiff_folder)!r}, {str(tmp_path / 'x.zarr')!r}, '--workers', '2']))\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode != 0
    assert 'pip install "polystore[distributed]"' in result.stderr
    assert not (tmp_path / "x.zarr").exists()
