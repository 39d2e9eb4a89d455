"""The Fiji bridge with the ImageJ window, under Xvfb (pytest-xvfb provides DISPLAY)."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import tifffile

from fiji_testing import build_jar, free_ports, wait_until

pytest.importorskip("zmq")
from polystore import FileManager  # noqa: E402
from polystore.streaming.fiji import FijiBridge, FijiStreamingBackend  # noqa: E402

pytestmark = [pytest.mark.java, pytest.mark.gui]


def find_in(shot: np.ndarray, image: np.ndarray, tolerance: int = 8) -> tuple[int, int] | None:
    """Top-left corner where the gray ``image`` appears in the RGB ``shot`` (None if nowhere).

    ``tolerance`` absorbs the 5/6-bit colour quantisation of a 16-bit Xvfb screen
    (pytest-xvfb's default depth); on a 24-bit screen the match is exact.
    """
    h, w = image.shape
    shot = shot.astype(np.int16)
    if shot.ndim == 2:
        shot = shot[..., None]
    gray = image[..., None].astype(np.int16)
    rows, cols = shot.shape[0] - h + 1, shot.shape[1] - w + 1
    if rows <= 0 or cols <= 0:
        return None
    # only corners where the image's first and last pixels match can hold it (row-major order kept)
    first = np.abs(shot[:rows, :cols] - gray[0, 0]).max(axis=-1) <= tolerance
    last = np.abs(shot[h - 1 : h - 1 + rows, w - 1 : w - 1 + cols] - gray[-1, -1]).max(axis=-1) <= tolerance
    for y, x in np.argwhere(first & last):
        if np.abs(shot[y : y + h, x : x + w] - gray).max() <= tolerance:
            return int(y), int(x)
    return None


# Generous waits: each returns as soon as its condition holds, and a window drawn by a loaded
# machine (software rendering under Xvfb, two cores shared with the rest of the suite) can take
# well over the 5-10 s that suffice on a quiet one.
GUI_WAIT = 90.0


@pytest.fixture(scope="module")
def gui_bridge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[FijiBridge, FijiStreamingBackend]]:
    if not os.environ.get("DISPLAY"):
        pytest.skip("needs a display (pytest-xvfb or a desktop)")
    jar = build_jar()
    port, control = free_ports()
    log = tmp_path_factory.mktemp("fiji-gui") / "bridge.log"
    out = tmp_path_factory.getbasetemp()  # every tmp_path lies inside: the bridge may write there
    with FijiBridge(port, control, gui=True, jar=jar, log_path=log, output_dir=out) as bridge:
        assert bridge.control.ping()["gui"] is True
        backend = FijiStreamingBackend(port, control_port=control, control_timeout=GUI_WAIT)
        yield bridge, backend
        backend.close()
    assert not bridge.running()


def test_gui_window_shows_the_image_and_a_screenshot_is_saved(
    gui_bridge: tuple[FijiBridge, FijiStreamingBackend], tmp_path: Path
) -> None:
    bridge, backend = gui_bridge
    title = "gui/gradient"
    image = (np.add.outer(np.arange(120), 2 * np.arange(160)) % 256).astype(np.uint8)
    FileManager({"fiji": backend}).save(image, "gui/gradient.tif", backend="fiji")
    backend.flush()
    wait_until(lambda: any(i["title"] == title and i["shown"] for i in backend.status()["images"]),
               timeout=GUI_WAIT, what="the image window")
    # the X server knows a window by that title
    if shutil.which("xwininfo"):
        tree = subprocess.run(["xwininfo", "-root", "-tree"], capture_output=True, text=True, timeout=30)
        assert f'"{title}"' in tree.stdout
    shot_path = tmp_path / "gui-gradient-screenshot.tif"

    def screenshot_shows_image() -> tuple[int, int] | None:
        reply = bridge.control.screenshot(title, shot_path, overwrite=True, timeout=GUI_WAIT)
        assert reply["window_title"] == title
        return find_in(tifffile.imread(shot_path), image)

    wait_until(screenshot_shows_image, timeout=GUI_WAIT, what="the window to draw the image")
    assert shot_path.is_file()


def test_gui_hyperstack_window_and_tiff(gui_bridge: tuple[FijiBridge, FijiStreamingBackend], tmp_path: Path) -> None:
    bridge, backend = gui_bridge
    data = np.random.default_rng(8).integers(0, 256, (2, 3, 2, 40, 50), dtype=np.uint8)  # t c z y x
    frames, paths, indices = [], [], []
    for t in range(2):
        for c in range(3):
            for z in range(2):
                frames.append(data[t, c, z])
                paths.append(f"gui/hs_t{t}c{c}z{z}.tif")
                indices.append({"t": t, "c": c, "z": z})
    FileManager({"fiji": backend}).save_batch(frames, paths, backend="fiji", layer="gui/hyper", index=indices)
    backend.flush()
    wait_until(lambda: any(i["title"] == "gui/hyper" and i["shown"] for i in backend.status()["images"]),
               timeout=GUI_WAIT, what="the hyperstack window")
    with tifffile.TiffFile(backend.save_tiff("gui/hyper", tmp_path / "hyper.tif")) as tif:
        meta = tif.imagej_metadata or {}
        assert (meta["channels"], meta["slices"], meta["frames"]) == (3, 2, 2)
        np.testing.assert_array_equal(tif.series[0].asarray(), data.transpose(0, 2, 1, 3, 4))
    shot_path = tmp_path / "gui-hyper-screenshot.png"
    reply = bridge.control.screenshot("gui/hyper", shot_path, timeout=GUI_WAIT)
    assert reply["window_title"] == "gui/hyper" and shot_path.stat().st_size > 0


def test_gui_roi_manager_lists_points_and_shapes_layers(gui_bridge: tuple[FijiBridge, FijiStreamingBackend]) -> None:
    from polystore.annotations import Points, Shapes

    bridge, backend = gui_bridge
    fm = FileManager({"fiji": backend})
    cells = Shapes([[[0, 0], [0, 20], [20, 20]], [[5, 5], [5, 9], [9, 9], [9, 5]]],
                   shape_type=["polygon", "rectangle"], properties={"name": ["c1", "box"]})
    spots = Points([[0, 10.5, 12.0], [1, 40.0, 8.0]], properties={"id": [1, 2]}, axes="zyx")
    fm.save(cells, "gui/cells.roi.zip", backend="fiji")
    fm.save(spots, "gui/spots.csv", backend="fiji")
    backend.flush()
    reply = wait_until(lambda: (r := bridge.control.rois(timeout=GUI_WAIT))["manager_count"] == 4 and r,
                       timeout=GUI_WAIT, what="the ROI Manager to list 4 ROIs")
    assert [(r["layer"], r["type"], r["z"]) for r in reply["rois"]] == [
        ("gui/cells", "Polygon", 0), ("gui/cells", "Rectangle", 0), ("gui/spots", "Point", 1), ("gui/spots", "Point", 2),
    ]
    fm.save(Shapes([[[0, 0], [3, 3]]], shape_type="line"), "gui/cells.roi.zip", backend="fiji")  # replaces the layer
    backend.flush()
    wait_until(lambda: bridge.control.rois(timeout=GUI_WAIT)["manager_count"] == 3,
               timeout=GUI_WAIT, what="the ROI Manager to list the replaced layer")
