"""The Sphinx site builds with warnings as errors, and every Python example in it runs.

Python blocks of the .md pages (```python) and .rst pages (``.. code-block::
python``) run page by page, in order, in one namespace per page, in a fresh
folder: like a reader typing them into one session. A block preceded by
``<!-- not-run: reason -->`` (markdown) or ``.. not-run: reason`` (rst) is
shown but not run: call signatures and blocks that need a live viewer or
server.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from dataclasses import dataclass
from pathlib import Path

import pytest

import screens

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
PAGES = sorted(p for p in [*DOCS.glob("*.md"), *DOCS.glob("*.rst"), *DOCS.glob("api/*.rst")])

MD_BLOCK = re.compile(r"(<!-- not-run:[^>]*-->\s*\n)?```python\n(.*?)```", re.S)
RST_NOT_RUN = re.compile(r"^\.\. not-run:")


@dataclass
class Block:
    """One Python example of a page."""

    page: str
    number: int
    code: str
    run: bool


def rst_blocks(text: str) -> list[tuple[str, bool]]:
    """(code, run) of every ``.. code-block:: python`` in an rst page."""
    lines = text.splitlines()
    out: list[tuple[str, bool]] = []
    for i, line in enumerate(lines):
        stripped = line.strip()
        if not (stripped.startswith(".. code-block:: python") or stripped.startswith(".. code:: python")):
            continue
        indent = len(line) - len(line.lstrip())
        previous = next((lines[j].strip() for j in range(i - 1, -1, -1) if lines[j].strip()), "")
        j = i + 1
        while j < len(lines) and (not lines[j].strip() or lines[j].strip().startswith(":")) and (
            not lines[j].strip() or len(lines[j]) - len(lines[j].lstrip()) > indent
        ):
            j += 1
        body = []
        while j < len(lines) and (not lines[j].strip() or len(lines[j]) - len(lines[j].lstrip()) > indent):
            body.append(lines[j])
            j += 1
        out.append((textwrap.dedent("\n".join(body)).strip() + "\n", not RST_NOT_RUN.match(previous)))
    return out


def page_blocks(page: Path) -> list[Block]:
    """Every Python example of ``page`` with whether it runs."""
    text = page.read_text()
    name = str(page.relative_to(DOCS))
    if page.suffix == ".md":
        found = [(code, not marker) for marker, code in MD_BLOCK.findall(text)]
    else:
        found = rst_blocks(text)
    blocks = []
    for number, (code, run) in enumerate(found, 1):
        blocks.append(Block(name, number, code, run))
    return blocks


RUNNER = textwrap.dedent(
    """
    import json, sys, traceback
    blocks = json.load(open(sys.argv[1]))
    namespace = {"__name__": "__main__"}
    for block in blocks:
        try:
            exec(compile(block["code"], f"<{block['page']} example {block['number']}>", "exec"), namespace)
        except BaseException:
            print(f"example {block['number']} of {block['page']} failed:\\n{block['code']}", file=sys.stderr)
            traceback.print_exc()
            sys.exit(1)
    """
)

PAGES_WITH_CODE = [p for p in PAGES if any(b.run for b in page_blocks(p))]


def test_docs_have_examples_and_few_are_not_run() -> None:
    blocks = [b for p in PAGES for b in page_blocks(p)]
    assert sum(b.run for b in blocks) >= 25
    assert {p.name for p in PAGES} >= {"index.rst", "quickstart.md", "cli.md", "napari.md", "filemanager.rst",
                                       "backends.rst", "registry.rst", "atomic.rst", "exceptions.rst"}


@pytest.mark.parametrize("page", PAGES_WITH_CODE, ids=lambda p: str(p.relative_to(DOCS)))
def test_docs_examples_run(page: Path, tmp_path: Path) -> None:
    blocks = [b.__dict__ for b in page_blocks(page) if b.run]
    (tmp_path / "blocks.json").write_text(json.dumps(blocks))
    (tmp_path / "run.py").write_text(RUNNER)
    work = tmp_path / "work"
    work.mkdir()
    result = subprocess.run([sys.executable, str(tmp_path / "run.py"), str(tmp_path / "blocks.json")], cwd=work,
                            capture_output=True, text=True, timeout=180, env={**os.environ, "PYTHONPATH": ""})
    assert result.returncode == 0, result.stderr


def test_sphinx_build_without_warnings(tmp_path: Path) -> None:
    pytest.importorskip("sphinx")
    pytest.importorskip("myst_parser")
    if os.environ.get("DISPLAY"):  # render the napari screenshots first (shared with the other tests)
        pytest.importorskip("napari")
        assert screens.live_pipeline_screenshot().returncode == 0
        assert screens.view_store_screenshot(tmp_path).returncode == 0
    out = tmp_path / "html"
    result = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-E", "-b", "html", str(DOCS), str(out),
         "-d", str(tmp_path / "doctrees")],
        capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr
    for page in ("index", "quickstart", "cli", "napari", "examples", "api/filemanager", "api/backends",
                 "api/registry", "api/atomic", "api/exceptions", "architecture", "streaming-protocol"):
        assert (out / f"{page}.html").is_file(), page
    napari_page = (out / "napari.html").read_text()
    if os.environ.get("DISPLAY"):
        for png in (screens.LIVE_PNG, screens.VIEW_PNG):
            assert f'src="_images/{png.name}"' in napari_page
            assert (out / "_images" / png.name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "polystore.FileManager.save" in (out / "api" / "filemanager.html").read_text()


def test_cli_page_covers_every_command_and_option() -> None:
    from polystore.cli import cli

    text = (DOCS / "cli.md").read_text()
    for name, command in cli.commands.items():
        assert f"polystore {name}" in text, name
        for param in command.params:
            for option in [*param.opts, *param.secondary_opts]:
                if option.startswith("--") and option != "--help":
                    assert option in text, f"{name} {option} is not in docs/cli.md"
