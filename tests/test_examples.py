"""Every script in examples/ runs and checks what it produced."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

import screens

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"


def run_example(name: str, *args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(EXAMPLES / name), *args], cwd=cwd, capture_output=True,
                          text=True, timeout=180, env={**os.environ, "PYTHONPATH": ""})


def test_every_example_is_tested() -> None:
    tested = {"demo.py", "live_napari_pipeline.py", "tiff_folder_to_ome_zarr.py", "custom_backend.py",
              "multiprocessing_shared_memory.py"}
    assert {p.name for p in EXAMPLES.glob("*.py")} == tested


def test_tiff_folder_to_ome_zarr(tmp_path: Path) -> None:
    pytest.importorskip("zarr")
    result = run_example("tiff_folder_to_ome_zarr.py", "--out", str(tmp_path / "plate.zarr"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("read back equal") == 2
    # the store is OME-Zarr that ome-zarr-py reads
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Reader

    nodes = list(Reader(parse_url(str(tmp_path / "plate.zarr" / "A01")))())
    assert nodes and nodes[0].data[0].shape == (4, 2, 128, 128)


def test_custom_backend(tmp_path: Path) -> None:
    result = run_example("custom_backend.py", str(tmp_path / "arrays.db"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "['A01/t0.npy', 'A01/t1.npy', 'A01/t2.npy']" in result.stdout
    assert "refused as expected" in result.stdout and "missing as expected" in result.stdout
    assert (tmp_path / "arrays.db").stat().st_size > 0


def test_multiprocessing_shared_memory(tmp_path: Path) -> None:
    result = run_example("multiprocessing_shared_memory.py", "--workers", "2", "--tiles", "6", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "6 tiles from 2 worker processes" in result.stdout


@pytest.mark.gui
def test_live_napari_pipeline_under_a_real_viewer() -> None:
    pytest.importorskip("napari")
    result = screens.live_pipeline_screenshot()
    assert result.returncode == 0, result.stderr
    assert "18 images streamed and checked" in result.stdout
    screens.assert_drawn(screens.LIVE_PNG)


@pytest.mark.gui
def test_demo_runs_headless(tmp_path: Path) -> None:
    pytest.importorskip("napari")
    result = subprocess.run([sys.executable, str(EXAMPLES / "demo.py"), "--out", str(tmp_path / "demo"), "--headless"],
                            cwd=ROOT, env=screens.gui_env(), capture_output=True, text=True, timeout=240)
    assert result.returncode == 0, result.stderr
    screens.assert_drawn(tmp_path / "demo" / "viewer.png")
