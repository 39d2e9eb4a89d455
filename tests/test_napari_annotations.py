"""Streamed labels, points and shapes in a real napari Viewer, over real ZeroMQ sockets."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "xcb")

pytest.importorskip("napari")
pytest.importorskip("zmq")

from polystore.annotations import Labels, Points, Shapes  # noqa: E402
from polystore.streaming.napari import NapariStreamingBackend  # noqa: E402
from polystore_napari._widgets import StreamReceiverWidget  # noqa: E402

pytestmark = pytest.mark.gui

#: Rendered here for the documentation (docs/conf.py copies it onto the napari page).
PNG = Path(__file__).resolve().parents[1] / "out" / "docs-screenshots" / "napari-annotations.png"


def _screenshot(viewer: Any, qtbot: Any) -> None:
    """An image with its labels, points and shapes, once the canvas has drawn."""
    for _ in range(50):  # software GL under Xvfb can lag
        qtbot.wait(40)
        if np.asarray(viewer.screenshot(canvas_only=True))[..., :3].std() > 5:
            break
    PNG.parent.mkdir(parents=True, exist_ok=True)
    viewer.screenshot(str(PNG), canvas_only=False)


def test_labels_points_shapes_shown_and_replaced(make_napari_viewer: Any, qtbot: Any) -> None:
    viewer = make_napari_viewer(show=True)
    widget = StreamReceiverWidget(viewer, endpoint="tcp://127.0.0.1:0")
    viewer.window.add_dock_widget(widget, name="Stream receiver")
    widget.start()
    sender = NapariStreamingBackend(endpoint=widget.controller.endpoint)
    try:
        yy, xx = np.mgrid[0:32, 0:32]
        mask = np.zeros((32, 32), np.uint16)
        mask[4:10, 4:10] = 3
        mask[(yy - 22) ** 2 + (xx - 10) ** 2 < 16] = 5
        sender.save(((yy + xx) * 3).astype(np.uint8), "A01/image.tif")
        sender.save(mask, "A01/nuclei_labels.tif", kind="labels")
        sender.save(Points([[5.0, 6.0], [20.0, 21.5]], properties={"score": [0.5, 0.9]}), "A01/spots.csv")
        sender.save(Shapes([[[0, 0], [0, 9], [9, 9]]], properties={"name": ["cell"]}), "A01/cells.roi.zip")

        def shown() -> None:
            assert {"A01/image", "A01/nuclei_labels", "A01/spots", "A01/cells"} <= {layer.name for layer in viewer.layers}

        qtbot.waitUntil(shown, timeout=15000)
        assert type(viewer.layers["A01/nuclei_labels"]).__name__ == "Labels"
        assert viewer.layers["A01/nuclei_labels"].data[5, 5] == 3
        points = viewer.layers["A01/spots"]
        assert type(points).__name__ == "Points" and points.features["score"].tolist() == [0.5, 0.9]
        assert type(viewer.layers["A01/cells"]).__name__ == "Shapes"
        _screenshot(viewer, qtbot)

        # sent again: the same layers, new content
        sender.save(Points([[1.0, 1.0], [2.0, 2.0], [3.0, 3.0]], properties={"score": [1.0, 2.0, 3.0]}), "A01/spots.csv")
        sender.save(Shapes([[[0, 0], [5, 5]], [[1, 1], [1, 4], [4, 4], [4, 1]]], shape_type=["line", "rectangle"]),
                    "A01/cells.roi.zip")
        sender.save(Labels(mask * 2), "A01/nuclei_labels.tif")

        def replaced() -> None:
            assert len(viewer.layers["A01/spots"].data) == 3
            assert viewer.layers["A01/cells"].shape_type == ["line", "rectangle"]
            assert viewer.layers["A01/nuclei_labels"].data[5, 5] == 6

        qtbot.waitUntil(replaced, timeout=15000)
        assert [layer.name for layer in viewer.layers].count("A01/spots") == 1
        status = widget.controller.status()
        assert status.kinds == {"image": 1, "labels": 2, "points": 2, "shapes": 2}
        widget.refresh_status()
        assert "labels 2, points 2, shapes 2" in widget.counters_label.text()
    finally:
        sender.close()
        widget.stop()
