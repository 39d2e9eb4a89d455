"""Screenshots made by running the examples and the CLI under the suite's Xvfb display.

Not a test module: test_examples, test_cli and test_docs share these runs (one
per session). The PNGs land in ``out/docs-screenshots/``, where the Sphinx
build (``docs/conf.py``) picks them up for the napari page.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SCREENSHOTS = ROOT / "out" / "docs-screenshots"
LIVE_PNG = SCREENSHOTS / "napari-live-pipeline.png"
VIEW_PNG = SCREENSHOTS / "napari-view-store.png"

_runs: dict[str, subprocess.CompletedProcess[str]] = {}


def gui_env() -> dict[str, str]:
    """The environment for a subprocess that opens a napari window on the suite's display."""
    if not os.environ.get("DISPLAY"):
        pytest.skip("needs a display (pytest-xvfb provides one)")
    return {**os.environ, "QT_QPA_PLATFORM": "xcb", "PYTHONPATH": ""}


def _run(key: str, command: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    if key not in _runs:
        _runs[key] = subprocess.run(command, cwd=cwd, env=gui_env(), capture_output=True, text=True, timeout=240)
    return _runs[key]


def live_pipeline_screenshot() -> subprocess.CompletedProcess[str]:
    """Run examples/live_napari_pipeline.py --screenshot (once per session)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return _run(
        "live",
        [sys.executable, str(ROOT / "examples" / "live_napari_pipeline.py"), "--frames", "6",
         "--screenshot", str(LIVE_PNG)],
        ROOT,
    )


def view_store_screenshot(workdir: Path) -> subprocess.CompletedProcess[str]:
    """Write a small OME-Zarr plate with the TIFF example, then ``polystore view`` it --screenshot."""
    if "view" not in _runs:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        made = subprocess.run(
            [sys.executable, str(ROOT / "examples" / "tiff_folder_to_ome_zarr.py"), "--out", str(workdir / "plate.zarr")],
            cwd=workdir, capture_output=True, text=True, timeout=120,
        )
        if made.returncode != 0:
            return made
    return _run(
        "view",
        [sys.executable, "-m", "polystore", "view", str(workdir / "plate.zarr" / "A01"), "--screenshot", str(VIEW_PNG)],
        ROOT,
    )


def assert_drawn(png: Path) -> None:
    """The PNG exists and its canvas is not blank (napari draws black without a real GL surface)."""
    import imageio.v3 as iio

    assert png.is_file(), f"{png} was not written"
    pixels = np.asarray(iio.imread(png))
    height, width = pixels.shape[:2]
    canvas = pixels[height // 10 : height * 9 // 10, width // 3 : width * 9 // 10, :3]
    assert canvas.std() > 5, f"{png}: the canvas is blank"
