"""The napari plugin and live streaming also run on PyQt6 (napari 0.9 deprecates PyQt5).

``make test`` installs PyQt6 into ``.venv/pyqt6`` (beside the venv's PyQt5); this
test runs the napari test modules again in a subprocess that selects it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PYQT6_SITE = ROOT / ".venv" / "pyqt6"


@pytest.mark.gui
@pytest.mark.skipif(not (PYQT6_SITE / "PyQt6").is_dir(),
                    reason="PyQt6 not installed in .venv/pyqt6 (scripts/setup.sh test installs it)")
def test_napari_tests_pass_on_pyqt6() -> None:
    env = {**os.environ, "PYTHONPATH": str(PYQT6_SITE), "QT_API": "pyqt6", "PYTEST_QT_API": "pyqt6",
           "QT_QPA_PLATFORM": "xcb"}
    probe = subprocess.run([sys.executable, "-c", "import qtpy; print(qtpy.API_NAME)"],
                           env=env, capture_output=True, text=True, timeout=120)
    assert probe.stdout.strip() == "PyQt6", probe.stderr
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-p", "no:warnings",
         "tests/test_napari_stream.py", "tests/test_napari_plugin.py"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]
    assert " passed" in result.stdout and "failed" not in result.stdout
