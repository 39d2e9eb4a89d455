"""``polystore view``: open a store or file in napari through the polystore plugin's reader."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import click

from polystore.path_kinds import guess_backend, is_url

__all__ = ["view", "open_in_viewer", "require_display"]


def open_in_viewer(viewer: Any, path: str) -> list[str]:
    """Add the layers for ``path`` to ``viewer``; return their names.

    Zarr stores, groups, arrays and OME-Zarr images open lazily through the
    plugin's reader (``viewer.open(path, plugin="polystore")``); a member of a
    batch array and disk files (.tif, .npy, ...) load through FileManager.
    """
    from polystore_napari._reader import get_reader

    local = path.rstrip("/")
    if not is_url(local) and get_reader(local) is not None:
        layers = viewer.open(local, plugin="polystore")
        return [layer.name for layer in layers]
    from polystore import FileManager

    fm = FileManager()
    backend = guess_backend(local)
    if not fm.exists(local, backend):
        raise click.ClickException(f"no such file, store or array: {path!r}")
    if not fm.is_file(local, backend):
        raise click.ClickException(
            f"{path!r} is a folder, not an image or zarr store; open a file or a store inside it"
        )
    data = fm.load(local, backend, **({"lazy": True} if backend == "zarr" else {}))
    layer = viewer.add_image(data, name=Path(local).stem)
    return [layer.name]


def _exists(path: str) -> bool:
    """A local file or folder, or a zarr node (a batch member has no file of its own)."""
    if os.path.exists(path):
        return True
    if guess_backend(path) != "zarr":
        return False
    from polystore import FileManager

    return bool(FileManager().exists(path, "zarr"))


def require_display(why: str = "") -> None:
    """Raise a one-line error when Qt would find no display (instead of Qt aborting the process)."""
    from polystore.streaming.napari import display_problem

    problem = display_problem()
    if problem:
        raise click.ClickException(f"{problem}{why}; run under Xvfb, e.g. xvfb-run -a polystore ...")


def _screenshot(viewer: Any, png: str) -> None:
    from qtpy.QtWidgets import QApplication

    import numpy as np

    for _ in range(50):  # let Qt lay out and vispy draw (software GL under Xvfb can lag)
        for _ in range(5):
            QApplication.processEvents()
            time.sleep(0.02)
        if np.asarray(viewer.screenshot(canvas_only=True))[..., :3].std() > 0:
            break
    viewer.screenshot(png, canvas_only=False)


@click.command("view")
@click.argument("path")
@click.option("--screenshot", "png", type=click.Path(dir_okay=False), default=None,
              help="Render the viewer to this PNG and exit instead of staying open.")
def view(path: str, png: str | None) -> None:
    """Open PATH (a zarr/OME-Zarr store, group, array, or an image file) in napari.

    Stores open lazily through the polystore napari plugin's reader, so only
    the planes on screen are read. Needs the napari extra and a display
    (under Xvfb: QT_QPA_PLATFORM=xcb).
    """
    if not is_url(path) and not _exists(path.rstrip("/")):
        raise click.ClickException(f"no such file, store or array: {path!r}")
    require_display()
    import napari

    viewer = napari.Viewer(title=f"polystore: {path}", show=True)
    try:
        names = open_in_viewer(viewer, path)
        click.echo(f"opened {path}: layers {', '.join(names)}")
        if png:
            _screenshot(viewer, png)
            click.echo(f"screenshot: {png}")
            return
        napari.run()
    finally:
        viewer.close()
