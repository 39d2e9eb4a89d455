"""Streamed labels, points and shapes in a real napari Viewer, over real ZeroMQ sockets."""

from __future__ import annotations

import os
from collections.abc import Iterator
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


@pytest.fixture
def streamed(make_napari_viewer: Any) -> Iterator[tuple[Any, Any, NapariStreamingBackend]]:
    """A shown viewer with the Stream receiver docked and listening, and a sender to it."""
    viewer = make_napari_viewer(show=True)
    widget = StreamReceiverWidget(viewer, endpoint="tcp://127.0.0.1:0")
    viewer.window.add_dock_widget(widget, name="Stream receiver")
    widget.start()
    sender = NapariStreamingBackend(endpoint=widget.controller.endpoint)
    try:
        yield viewer, widget, sender
    finally:
        sender.close()
        widget.stop()


def test_labels_points_shapes_shown_and_replaced(
    streamed: tuple[Any, Any, NapariStreamingBackend], qtbot: Any
) -> None:
    viewer, widget, sender = streamed
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


def test_points_and_shapes_sent_by_index_fill_their_planes(
    streamed: tuple[Any, Any, NapariStreamingBackend], qtbot: Any
) -> None:
    viewer, _widget, sender = streamed
    for t in range(3):  # detections of three time points, one message each
        spots = Points([[t + 1.0, 2.0], [5.0, t + 6.0]], properties={"id": [10 * t, 10 * t + 1]})
        sender.save(spots, "A01/spots.csv", index={"t": t})
    sender.save(Shapes([[[0, 0], [0, 9], [9, 9]]], properties={"n": [1]}), "A01/cells.roi.zip", index={"z": 2})
    sender.save(Shapes([[[1, 1], [4, 4]]], shape_type="line", properties={"n": [2]}), "A01/cells.roi.zip",
                index={"z": 0})
    sender.save(Points([[7.0, 7.0]], properties={"id": [99]}), "A01/spots.csv", index={"t": 1})  # replaces t=1

    def filled() -> None:
        assert {"A01/spots", "A01/cells"} <= {layer.name for layer in viewer.layers}
        points = viewer.layers["A01/spots"]
        assert points.features["id"].tolist() == [0, 1, 99, 20, 21]
        assert viewer.layers["A01/cells"].nshapes == 2

    qtbot.waitUntil(filled, timeout=15000)
    points = viewer.layers["A01/spots"]
    assert tuple(points.axis_labels) == ("t", "y", "x")
    np.testing.assert_array_equal(points.data, [[0, 1, 2], [0, 5, 6], [1, 7, 7], [2, 3, 2], [2, 5, 8]])
    cells = viewer.layers["A01/cells"]
    assert cells.shape_type == ["polygon", "line"] and tuple(cells.axis_labels) == ("z", "y", "x")
    np.testing.assert_array_equal(cells.data[1], [[0, 1, 1], [0, 4, 4]])
    assert cells.features["n"].tolist() == [1, 2]

    sender.save(Points([[3.0, 3.0]]), "A01/spots.csv")  # no index: replaces the whole layer
    qtbot.waitUntil(lambda: len(viewer.layers["A01/spots"].data) == 1, timeout=15000)
    assert viewer.layers["A01/spots"].ndim == 2
