"""Sphinx configuration of the polystore documentation.

Build: ``sphinx-build -W -b html docs docs/_build/html`` (``tests/test_docs.py``
runs exactly this, and every Python example of these pages).

Screenshots on the napari page are never drawn by hand: they are the PNGs the
test suite (``tests/screens.py``: the live-pipeline example and ``polystore
view``) and ``make demo`` render from a real viewer under Xvfb, copied here
from ``out/docs-screenshots/`` and ``out/demo/viewer.png`` at build time.
"""

from __future__ import annotations

import re
import shutil
import sys
from pathlib import Path
from typing import Any

DOCS = Path(__file__).resolve().parent
ROOT = DOCS.parent
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "napari_plugin"))

from polystore import __version__  # noqa: E402

project = "polystore"
author = "polystore developers"
copyright = "polystore developers, MIT License"  # noqa: A001
version = release = __version__

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.napoleon",
    "myst_parser",
]
source_suffix = {".rst": "restructuredtext", ".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build", "_generated", "Thumbs.db", ".DS_Store"]
myst_heading_anchors = 3
autodoc_member_order = "bysource"
autodoc_typehints = "signature"
napoleon_google_docstring = True
napoleon_numpy_docstring = True
html_theme = "alabaster"
html_title = f"polystore {release}"
html_static_path: list[str] = []

# --------------------------------------------------------------------------- screenshots

GENERATED = DOCS / "_generated"
SCREENSHOT_SOURCES = [
    (ROOT / "out" / "docs-screenshots" / "napari-live-pipeline.png",
     "A pipeline process saving raw frames, smoothed frames and masks with "
     '``fm.save(..., backend="napari", layer=..., index={"t": t})``: three N-D layers with a time slider '
     "(rendered by ``examples/live_napari_pipeline.py --screenshot`` in the test suite)."),
    (ROOT / "out" / "docs-screenshots" / "napari-view-store.png",
     "``polystore view plate.zarr/A01``: an OME-Zarr image opened lazily through the plugin's reader, "
     "with its t and c axes as sliders (rendered by the test suite)."),
    (ROOT / "out" / "docs-screenshots" / "napari-annotations.png",
     "An image streamed with its labels (``kind=\"labels\"``), points and shapes "
     "(``polystore.annotations``): Labels, Points and Shapes layers over it "
     "(rendered by ``tests/test_napari_annotations.py``)."),
    (ROOT / "out" / "demo" / "viewer.png",
     "The README demo (``make demo``): two channels of a time-lapse streamed from a pipeline process "
     "(rendered headless by the demo)."),
]


def _write_screenshots() -> None:
    """Copy the rendered screenshots that exist and write the fragment the napari page includes."""
    GENERATED.mkdir(exist_ok=True)
    parts = []
    for source, caption in SCREENSHOT_SOURCES:
        if not source.is_file():
            continue
        target = GENERATED / source.name
        shutil.copyfile(source, target)
        parts.append(f"```{{figure}} /_generated/{target.name}\n:width: 100%\n\n{caption}\n```\n")
    if not parts:
        parts.append(
            "```{note}\nNo screenshots in this build: they are rendered by the test suite "
            "(`make test`) and the demo (`make demo`) from a real viewer and copied here when the "
            "docs are built afterwards.\n```\n"
        )
    (GENERATED / "napari-screenshots.md.inc").write_text("\n".join(parts))


_write_screenshots()

# --------------------------------------------------------------------------- benchmark figures

sys.path.insert(0, str(DOCS))
import _bench_report  # noqa: E402

_bench_report.write(DOCS / "bench-results", GENERATED)
