"""The Fiji bridge with the ImageJ window, under Xvfb (pytest-xvfb provides DISPLAY)."""

from __future__ import annotations

import os
import shutil
import subprocess
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
    for y in range(shot.shape[0] - h + 1):
        for x in range(shot.shape[1] - w + 1):
            patch = shot[y : y + h, x : x + w]
            if np.abs(patch - image[..., None].astype(np.int16)).max() <= tolerance:
                return y, x
    return None


def test_gui_window_shows_the_image_and_a_screenshot_is_saved(tmp_path: Path) -> None:
    if not os.environ.get("DISPLAY"):
        pytest.skip("needs a display (pytest-xvfb or a desktop)")
    jar = build_jar()
    port, control = free_ports()
    title = "gui/gradient"
    image = (np.add.outer(np.arange(120), 2 * np.arange(160)) % 256).astype(np.uint8)
    with FijiBridge(port, control, gui=True, jar=jar, log_path=tmp_path / "bridge.log") as bridge:
        assert bridge.control.ping()["gui"] is True
        backend = FijiStreamingBackend(port, control_port=control)
        FileManager({"fiji": backend}).save(image, "gui/gradient.tif", backend="fiji")
        backend.flush()
        wait_until(lambda: backend.status()["images"][0]["shown"], what="the image window")
        # the X server knows a window by that title
        if shutil.which("xwininfo"):
            tree = subprocess.run(["xwininfo", "-root", "-tree"], capture_output=True, text=True, timeout=30)
            assert f'"{title}"' in tree.stdout
        shot_path = tmp_path / "gui-gradient-screenshot.tif"

        def screenshot_shows_image() -> tuple[int, int] | None:
            reply = bridge.control.screenshot(title, shot_path)
            assert reply["window_title"] == title
            return find_in(tifffile.imread(shot_path), image)

        corner = wait_until(screenshot_shows_image, what="the window to draw the image")
        assert corner is not None
        backend.close()
    assert shot_path.is_file()
