"""Helpers of the command-line tests: run ``polystore`` in or out of process, a folder of TIFFs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tifffile

from polystore.cli import main

#: Every subcommand of ``polystore``.
COMMANDS = ("ls", "info", "cp", "view", "serve", "bench")


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """Run ``polystore ARGS`` in this process; return (exit code, stdout, stderr)."""
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def run_subprocess(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None,
                   timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """Run ``python -m polystore ARGS`` in a new process."""
    return subprocess.run([sys.executable, "-m", "polystore", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def tiff_folder(tmp_path: Path) -> Path:
    """Six TIFFs in two well folders (2-D uint16, a 3-D uint8 stack, a float32 plane) and a stray .txt."""
    rng = np.random.default_rng(7)
    src = tmp_path / "tiffs"
    for t in range(4):
        tifffile.imwrite(src / "A01" / f"t{t}.tif", rng.integers(0, 65535, (48, 40), dtype=np.uint16),
                         photometric="minisblack") if (src / "A01").mkdir(parents=True, exist_ok=True) is None else None
    (src / "B02").mkdir()
    tifffile.imwrite(src / "B02" / "stack.tif", rng.integers(0, 255, (5, 24, 24), dtype=np.uint8),
                     photometric="minisblack")
    tifffile.imwrite(src / "B02" / "float.tiff", rng.random((16, 20)).astype(np.float32))
    (src / "notes.txt").write_text("not an image")
    return src


def tiffs_of(folder: Path) -> dict[str, np.ndarray]:
    """Every TIFF under ``folder`` by relative path without extension."""
    return {str(p.relative_to(folder).with_suffix("")): tifffile.imread(p)
            for p in sorted(folder.rglob("*.tif*"))}
