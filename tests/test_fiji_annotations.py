"""Labels, points and shapes sent to the Fiji bridge (a real JVM): a label image with a LUT, ROIs.

The bridge is headless here (ImageJ's ROI Manager is a window; tests/test_fiji_gui.py
checks the ROI Manager itself): its ``rois`` control request lists the ROIs it holds
per layer, the ones a GUI bridge shows in the ROI Manager.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tifffile

from fiji_testing import build_jar, free_ports
from streaming_conformance import annotation_frames, annotation_table
from polystore import FileManager
from polystore.annotations import Labels, Points, Shapes

zmq = pytest.importorskip("zmq")
from polystore.streaming.fiji import FijiBridge, FijiStreamingBackend  # noqa: E402

pytestmark = pytest.mark.java

SPOTS = Points(
    [[0, 10.5, 12.0], [0, 40.0, 8.25], [2, 5.0, 6.0]],
    properties={"id": [1, 2, 3], "score": [0.9, 0.4, 0.7], "cls": ["a", "b", "a"]},
    axes="zyx",
)
CELLS = Shapes(
    [
        [[1, 0, 0], [1, 0, 20], [1, 20, 20]],
        [[0, 2, 2], [0, 2, 9], [0, 7, 9]],
        [[3, 5, 5], [3, 5, 9], [3, 9, 9], [3, 9, 5]],
        [[0, 10, 10], [0, 10, 30], [0, 20, 30], [0, 20, 10]],
        [[2, 1, 1], [2, 4, 6]],
    ],
    shape_type=["polygon", "path", "rectangle", "ellipse", "line"],
    properties={"name": ["c1", "c2", "box", "oval", "ln"], "area": [200.0, 0.0, 16.0, 157.1, 0.0]},
    axes="tyx",
)


@pytest.fixture(scope="module")
def bridge(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FijiBridge]:
    port, control = free_ports()
    out = tmp_path_factory.getbasetemp()
    with FijiBridge(port, control, gui=False, jar=build_jar(), output_dir=out) as running:
        yield running


@pytest.fixture
def backend(bridge: FijiBridge) -> Iterator[FijiStreamingBackend]:
    be = FijiStreamingBackend(bridge.port, control_port=bridge.control_port, send_timeout=5.0)
    yield be
    be.close()


def test_points_become_point_rois_per_plane_with_their_properties(backend: FijiStreamingBackend) -> None:
    fm = FileManager({"fiji": backend})
    fm.save(SPOTS, "A01/spots.csv", backend="fiji")
    status = backend.flush()
    assert status["annotations"]["layers"]["A01/spots"] == {"kind": "points", "rois": 2, "planes": 1}
    reply = backend.control.rois("A01/spots")
    assert reply["count"] == 2 and reply["manager_count"] == -1  # headless: no ROI Manager window
    first, second = reply["rois"]
    assert (first["type"], first["name"], first["z"], first["c"], first["t"]) == ("Point", "points-0001", 1, 0, 0)
    assert first["points"] == [[12.0, 10.5], [8.25, 40.0]]  # x, y
    assert (second["z"], second["points"]) == (3, [[6.0, 5.0]])
    stored = json.loads(first["polystore"])
    assert stored == {"axes": ["z", "y", "x"], "properties": {"id": [1, 2], "score": [0.9, 0.4], "cls": ["a", "b"]}}


def test_shapes_become_rois_with_type_name_and_position(backend: FijiStreamingBackend) -> None:
    fm = FileManager({"fiji": backend})
    fm.save(CELLS, "A01/cells.roi.zip", backend="fiji")
    backend.flush()
    rois = backend.control.rois("A01/cells")["rois"]
    assert [(r["name"], r["type"], r["t"]) for r in rois] == [
        ("c1", "Polygon", 2), ("c2", "Polyline", 1), ("box", "Rectangle", 4), ("oval", "Oval", 1), ("ln", "Straight Line", 3),
    ]
    assert rois[0]["points"] == [[0.0, 0.0], [20.0, 0.0], [20.0, 20.0]]
    assert rois[2]["bounds"] == {"x": 5.0, "y": 5.0, "width": 4.0, "height": 4.0}
    assert rois[3]["bounds"] == {"x": 10.0, "y": 10.0, "width": 20.0, "height": 10.0}
    assert rois[4]["points"] == [[1.0, 1.0], [6.0, 4.0]]
    stored = json.loads(rois[3]["polystore"])
    assert stored == {"axes": ["t", "y", "x"], "shape_type": "ellipse", "properties": {"name": "oval", "area": 157.1}}


def test_points_and_shapes_sent_by_index_replace_their_plane_only(backend: FijiStreamingBackend) -> None:
    fm = FileManager({"fiji": backend})
    for t in range(3):
        fm.save(Points([[1.0, 2.0], [3.0, t]]), "planes/spots.csv", backend="fiji", index={"t": t})
    fm.save(Points([[7.0, 7.0]]), "planes/spots.csv", backend="fiji", index={"t": 1})  # replaces plane t=1
    fm.save(CELLS, "planes/cells.roi.zip", backend="fiji", index={"z": 4})  # shapes of the plane z=4
    status = backend.flush()
    assert status["annotations"]["layers"]["planes/spots"] == {"kind": "points", "rois": 3, "planes": 3}
    spots = backend.control.rois("planes/spots")["rois"]
    assert [(r["t"], r["points"]) for r in spots] == [(1, [[2.0, 1.0], [0.0, 3.0]]), (2, [[7.0, 7.0]]), (3, [[2.0, 1.0], [2.0, 3.0]])]
    cells = backend.control.rois("planes/cells")["rois"]
    assert [(r["z"], r["t"]) for r in cells] == [(5, 2), (5, 1), (5, 4), (5, 1), (5, 3)]
    fm.save(Points([[1.0, 1.0]]), "planes/spots.csv", backend="fiji")  # no index: the whole layer
    status = backend.flush()
    assert status["annotations"]["layers"]["planes/spots"] == {"kind": "points", "rois": 1, "planes": 1}


def test_shapes_sent_again_replace_their_layer_only(backend: FijiStreamingBackend) -> None:
    backend.save(CELLS, "again/cells.roi.zip")
    backend.save(SPOTS, "again/spots.csv")
    fewer = Shapes([[[0, 0], [5, 5]]], shape_type="line")
    backend.save(fewer, "again/cells.roi.zip")
    status = backend.flush()
    layers = status["annotations"]["layers"]
    assert layers["again/cells"] == {"kind": "shapes", "rois": 1, "planes": 1}
    assert layers["again/spots"] == {"kind": "points", "rois": 2, "planes": 1}
    assert [r["layer"] for r in backend.control.rois()["rois"]][-3:] == ["again/spots", "again/spots", "again/cells"]
    assert status["annotations"]["shown"]["shapes"] >= 2


@pytest.mark.parametrize(("dtype", "bits"), [(np.uint8, 8), (np.int32, 16), (np.int64, 32)])
def test_labels_become_an_image_with_the_label_lut(
    backend: FijiStreamingBackend, tmp_path: Path, dtype: Any, bits: int
) -> None:
    rng = np.random.default_rng(2)
    top = {8: 255, 16: 60000, 32: 2**24}[bits]
    mask = rng.integers(0, top, (2, 12, 16)).astype(dtype)
    title = f"A01/nuclei_{bits}"
    FileManager({"fiji": backend}).save(mask, f"{title}.tif", backend="fiji", kind="labels", axes="zyx")
    status = backend.flush()
    image = next(i for i in status["images"] if i["title"] == title)
    assert (image["labels"], image["bit_depth"], image["slices"]) == (True, bits, 2)
    saved = backend.save_tiff(title, tmp_path / f"{bits}.tif")
    with tifffile.TiffFile(saved) as tif:
        pixels = tif.asarray()
        page = tif.pages[0]
        lut = page.colormap if page.colormap is not None else tif.imagej_metadata["LUTs"][0]
    np.testing.assert_array_equal(pixels, mask)  # values exact, whatever ImageJ type holds them
    lut = np.asarray(lut).reshape(3, -1)
    assert tuple(lut[:, 0]) == (0, 0, 0)  # background black
    colours = {tuple(lut[:, i]) for i in range(1, lut.shape[1])}
    assert len(colours) > 200  # distinct colours per label, not a grey ramp
    assert (0, 0, 0) not in colours


def test_labels_beyond_what_imagej_holds_are_dropped_and_reported(backend: FijiStreamingBackend) -> None:
    backend.save(Labels(np.full((4, 4), 2**40, np.int64)), "huge_labels.tif")
    status = backend.flush()
    assert "do not fit ImageJ" in status["last_error"]
    assert "huge_labels" not in [i["title"] for i in status["images"]]
    from polystore.streaming.rejections import RejectedFrameWarning

    tilted = Shapes([[[0, 5], [5, 10], [10, 5], [5, 0]]], shape_type="ellipse")  # a rotated box
    with pytest.warns(RejectedFrameWarning, match="do not fit ImageJ"):  # the labels, reported to the sender
        backend.save(tilted, "tilted.roi.zip")
    backend.flush()
    with pytest.warns(RejectedFrameWarning, match="axis-aligned ellipses"):
        backend.save(SPOTS, "after.csv")


_frames = annotation_frames
_table = annotation_table


SHAPES_2D = Shapes([[[0, 0], [0, 20], [20, 20]], [[1, 1], [4, 6]]], shape_type=["polygon", "line"],
                   properties={"score": [0.5, 1.0]})
POINTS_3D = Points([[1.0, 2.0, 3.5], [0.0, 7.0, 8.5]], properties={"id": [4, 5]}, axes="zyx")
MASK = Labels(np.arange(16, dtype=np.uint16).reshape(4, 4))
_nan = np.frombuffer(_frames(POINTS_3D)[1], "<f8").copy()
_nan[0] = np.nan
# The same refusals as the Python receiver (tests/test_streaming_annotations.py).
MALFORMED = [
    (_frames(POINTS_3D, v=3), "unsupported protocol version 3"),
    (_frames(POINTS_3D, kind="mesh"), "unknown message kind \"mesh\" for protocol version 2"),
    (_frames(MASK, kind="mesh"), "unknown message kind \"mesh\" for protocol version 2"),
    (_frames(POINTS_3D, v=1), "unknown message kind \"points\" for protocol version 1"),
    (_frames(POINTS_3D)[:2], "points messages have 3 frames"),
    ([*_frames(MASK), b"{}"], "labels messages have 2 frames"),
    ([_frames(MASK, dtype="<f4", nbytes=64)[0], bytes(64)], "labels must have an integer dtype"),
    (_frames(POINTS_3D, axes="yx"), r"\[N, 2\]"),
    (_frames(MASK, index={"t": 1}), "'index' must be null"),
    (_frames(POINTS_3D, index={"z": 1}), "also a coordinate axis"),
    (_frames(POINTS_3D, axes=None), "need 'axes'"),
    (_table(POINTS_3D, properties={"id": [1]}), "'id' has 1 value"),
    (_table(POINTS_3D, properties={"z": [1, 2]}), "name of an axis"),
    (_table(POINTS_3D, properties={"id": {"dtype": "<i8", "base64": "AAAA"}}), "3 bytes, not a multiple of 8"),
    (_table(POINTS_3D, properties={"id": {"dtype": "|O", "base64": ""}}), "unsupported dtype '|O'"),
    (_table(POINTS_3D, properties={"id": {"dtype": "<i8", "base64": "**"}}), "not valid base64"),
    (_table(SHAPES_2D, counts=[3, 3]), "counts 6 vertices but the payload holds 5"),
    (_table(SHAPES_2D, counts=[1, 4]), "polygon with 1 vertices"),
    (_table(SHAPES_2D, shape_types=["polygon", "blob"]), "unknown type 'blob'"),
    (_frames(POINTS_3D)[:2] + [b"{not json"], "table frame is not UTF-8 JSON"),
    (_frames(POINTS_3D)[:2] + [b"NaN"], "table frame is not UTF-8 JSON"),
    ([_frames(POINTS_3D)[0], _nan.tobytes(), _frames(POINTS_3D)[2]], "finite"),
]


def test_malformed_annotations_are_refused_by_name_and_the_bridge_goes_on(bridge: FijiBridge) -> None:
    ctx = zmq.Context.instance()
    push = ctx.socket(zmq.PUSH)
    push.setsockopt(zmq.LINGER, 2000)
    push.connect(bridge.endpoint)
    try:
        for frames, reason in MALFORMED:
            before = bridge.control.status()["malformed"]
            push.send_multipart(frames)
            deadline = time.monotonic() + 30
            while (status := bridge.control.status())["malformed"] == before and time.monotonic() < deadline:
                time.sleep(0.01)
            assert status["malformed"] == before + 1, reason
            assert re.search(reason, status["last_error"]), (reason, status["last_error"])
    finally:
        push.close()
    assert bridge.control.ping()["reply"] == "pong"
    assert bridge.control.ping()["protocol"] == 2


def test_fuzzed_annotation_messages_leave_the_bridge_alive(bridge: FijiBridge, backend: FijiStreamingBackend) -> None:
    rng = np.random.default_rng(12)
    good = {"points": annotation_frames(POINTS_3D), "shapes": annotation_frames(SHAPES_2D), "labels": annotation_frames(MASK)}
    junk: list[Any] = [None, -1, 2**63, 1.5, "x", [], {}, [1, -2], True, {"dtype": "<i8", "base64": "A"}, [[1]], "\u0000"]
    messages: list[list[bytes]] = []
    for _ in range(150):
        kind = str(rng.choice(list(good)))
        frames = list(good[kind])
        roll = rng.random()
        if roll < 0.4:  # a header field changed or dropped
            header = json.loads(frames[0])
            key = list(header)[int(rng.integers(len(header)))]
            if rng.random() < 0.3:
                del header[key]
            else:
                header[key] = junk[int(rng.integers(len(junk)))]
            frames[0] = json.dumps(header).encode()
        elif roll < 0.7 and len(frames) == 3:  # a table entry changed
            table = json.loads(frames[2])
            key = str(rng.choice(["properties", "counts", "shape_types", "extra"]))
            table[key] = junk[int(rng.integers(len(junk)))]
            frames[2] = json.dumps(table).encode()
        elif roll < 0.85:  # random bytes for one frame
            frames[int(rng.integers(len(frames)))] = rng.bytes(int(rng.integers(0, 200)))
        else:  # a frame too many or too few
            frames = frames[:-1] if rng.random() < 0.5 else [*frames, b"{}"]
        messages.append(frames)
    before = bridge.control.status()
    push = zmq.Context.instance().socket(zmq.PUSH)
    push.setsockopt(zmq.LINGER, 2000)
    push.connect(bridge.endpoint)
    for frames in messages:
        push.send_multipart(frames)
    backend.save(SHAPES_2D, "fuzz/after.roi.zip")  # a good message after them still lands
    status = backend.flush()

    def counted(now: dict[str, Any]) -> int:
        return int(now["received"] + now["malformed"] - before["received"] - before["malformed"])

    # the push socket stays open until the bridge took every message: closed earlier, its linger
    # would drop what the bridge (4 messages of receive queue) had not read yet on a loaded machine
    deadline = time.monotonic() + 30
    while counted(status) < len(messages) + 1 and time.monotonic() < deadline:
        time.sleep(0.05)
        status = bridge.control.status()
    push.close()
    assert counted(status) == len(messages) + 1  # every message counted once
    assert status["malformed"] - before["malformed"] >= 60
    assert status["annotations"]["layers"]["fuzz/after"]["rois"] == 2
    assert bridge.running() and bridge.control.ping()["reply"] == "pong"


def test_save_batch_sends_annotations_to_the_bridge(backend: FijiStreamingBackend) -> None:
    backend.save_batch([SPOTS, CELLS], ["batch/spots.csv", "batch/cells.roi.zip"])
    backend.save_batch([POINTS_3D, POINTS_3D], ["batch/p.csv", "batch/p.csv"], index=[{"t": 0}, {"t": 1}])
    layers = backend.flush()["annotations"]["layers"]
    assert layers["batch/spots"]["rois"] == 2 and layers["batch/cells"]["rois"] == 5
    assert layers["batch/p"] == {"kind": "points", "rois": 4, "planes": 2}
