"""Every Python example of the README runs as written (except those marked not-run)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

README = Path(__file__).resolve().parents[1] / "README.md"
BLOCK = re.compile(r"(<!-- not-run:[^>]*-->\n)?```python\n(.*?)```", re.S)


def runnable_blocks() -> list[str]:
    return [code for marker, code in BLOCK.findall(README.read_text()) if not marker]


@pytest.mark.parametrize("index", range(len(runnable_blocks())))
def test_readme_example_runs(tmp_path: Path, index: int) -> None:
    code = runnable_blocks()[index]
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                            text=True, timeout=120, env={**os.environ, "PYTHONPATH": ""})
    assert result.returncode == 0, result.stderr


def test_readme_starts_with_the_two_commands() -> None:
    text = README.read_text()
    first_block = text[text.index("```bash") : text.index("```", text.index("```bash") + 7)]
    assert "make demo" in first_block and "make test" in first_block
    assert "make test" in (README.parent / ".ci" / "run").read_text()
