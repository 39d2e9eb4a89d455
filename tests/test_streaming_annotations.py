"""Labels, points and shapes over real ZeroMQ sockets: protocol version 2 messages."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pytest

zmq = pytest.importorskip("zmq")

from streaming_conformance import annotation_frames, annotation_table  # noqa: E402

from polystore.annotations import Labels, Points, Shapes  # noqa: E402
from polystore.streaming import StreamingBackend, StreamReceiver  # noqa: E402
from polystore.streaming.annotation_wire import decode_any  # noqa: E402
from polystore.streaming.protocol import ProtocolError, build_header, encode_header  # noqa: E402

SPOTS = Points([[1.0, 2.0, 3.5], [0.0, 7.0, 8.5]], properties={"id": [4, 5], "cls": ["a", "b"]}, axes="zyx")
CELLS = Shapes([[[0, 0], [0, 20], [20, 20]], [[1, 1], [4, 6]]], shape_type=["polygon", "line"],
               properties={"score": [0.5, 1.0]})
MASK = Labels(np.arange(16, dtype=np.uint16).reshape(4, 4))


def test_annotations_round_trip_over_sockets() -> None:
    with StreamingBackend(mode="pull", endpoint="tcp://127.0.0.1:0") as pull:
        with StreamingBackend(mode="push", endpoint=pull.endpoint) as push:
            push.save(SPOTS, "A01/spots.csv")
            push.save(CELLS, "A01/cells.roi.zip")
            push.save(MASK.data, "A01/nuclei_labels.tif", kind="labels")
            image = np.ones((3, 3), np.uint8)
            push.save(image, "A01/image.tif")  # images stay version-1 messages
            assert pull.load("A01/spots.csv") == SPOTS
            assert pull.load("A01/cells.roi.zip") == CELLS
            assert pull.load("A01/nuclei_labels.tif") == MASK
            np.testing.assert_array_equal(pull.load("A01/image.tif"), image)
            with pytest.raises(ValueError, match="labels replace their layer"):
                push.save(MASK, "x", index={"t": 1})
            with pytest.raises(ValueError, match="also a coordinate axis"):
                push.save(SPOTS, "x", index={"z": 1})
            push.save(SPOTS, "A01/spots.csv", index={"t": 4})  # points of one plane
            frame = pull.receive("A01/spots.csv")
            assert frame.header.index == {"t": 4} and frame.annotation == SPOTS


_frames = annotation_frames
_table = annotation_table


@pytest.mark.parametrize(
    ("frames", "reason"),
    [
        (_frames(SPOTS, v=3), "unsupported protocol version 3"),
        (_frames(SPOTS, kind="mesh"), "unknown message kind 'mesh' for protocol version 2"),
        (_frames(SPOTS, v=1), "unknown message kind 'points' for protocol version 1"),
        (_frames(SPOTS)[:2], "points messages have 3 frames"),
        ([_frames(MASK, dtype="<f4", nbytes=64)[0], bytes(64)], "labels must have an integer dtype"),
        (_frames(SPOTS, axes="yx"), r"\[N, 2\]"),
        (_frames(MASK, index={"t": 1}), "'index' must be null"),
        (_frames(SPOTS, index={"z": 1}), "also a coordinate axis"),
        (_frames(SPOTS, index={"t": 1.5}), "positions must be JSON integers"),
        (_table(SPOTS, properties={"id": [1]}), "'id' has 1 value"),
        (_table(SPOTS, properties={"id": {"dtype": "<i8", "base64": "AAAA"}}), "3 bytes, not a multiple of 8"),
        (_table(SPOTS, properties={"id": {"dtype": "|O", "base64": ""}}), "unsupported dtype '|O'"),
        (_table(SPOTS, properties={"id": {"dtype": "<i8", "base64": "**"}}), "not valid base64"),
        (_table(SPOTS, properties={"id": {"dtype": "<i8", "base64": "AAAAAAAAAAA="}}), "'id' has 1 value"),
        (_table(CELLS, counts=[3, 3]), "counts 6 vertices but the payload holds 5"),
        (_table(CELLS, counts=[1, 4]), "polygon with 1 vertices"),
        (_frames(SPOTS)[:2] + [b"{not json"], "table frame is not UTF-8 JSON"),
        (_frames(SPOTS)[:2] + [b"NaN"], "table frame is not UTF-8 JSON"),
    ],
)
def test_malformed_annotation_messages_are_refused(frames: list[bytes], reason: str) -> None:
    with pytest.raises(ProtocolError, match=reason):
        decode_any(frames)


def test_non_finite_coordinates_refused() -> None:
    frames = _frames(SPOTS)
    coords = np.frombuffer(frames[1], dtype="<f8").copy()
    coords[0] = np.nan
    with pytest.raises(ProtocolError, match="finite"):
        decode_any([frames[0], coords.tobytes(), frames[2]])


def test_receiver_stays_up_and_counts_malformed_annotations() -> None:
    receiver = StreamReceiver("tcp://127.0.0.1:0").start()
    ctx = zmq.Context.instance()
    sock = ctx.socket(zmq.PUSH)
    try:
        sock.connect(receiver.endpoint)
        bad = [_frames(SPOTS, v=3), _table(CELLS, counts=[3, 3]), _frames(SPOTS)[:2] + [b"\xff"]]
        for frames in bad:
            sock.send_multipart(frames)
        image = np.arange(4, dtype=np.uint8)
        good = build_header(image, "ok", stream="s", seq=1)
        sock.send_multipart([encode_header(good), image.tobytes()])  # a version-1 image after them
        frame = receiver.get("ok", timeout=10)
        np.testing.assert_array_equal(frame.data, image)
        deadline = time.time() + 5
        while receiver.stats().malformed < len(bad) and time.time() < deadline:
            time.sleep(0.02)
        assert receiver.stats().malformed == len(bad)
    finally:
        sock.close(linger=0)
        receiver.stop()


def test_axes_must_be_single_letters_to_be_sent() -> None:
    # Refused before anything is sent (no receiver needed), naming the axes and the rule.
    from polystore.annotations import InvalidAnnotationError

    with StreamingBackend(mode="push", endpoint="tcp://127.0.0.1:9", send_timeout=0) as push:
        with pytest.raises(InvalidAnnotationError, match=r"single letters to be sent, got \('row', 'col'\)"):
            push.save(Points([[1.0, 2.0]], axes=["row", "col"]), "p.csv")
        with pytest.raises(InvalidAnnotationError, match="single letters"):
            push.save(np.ones((2, 2), np.uint8), "m.tif", kind="labels", axes=["yy", "xx"])
        assert push.sender.next_seq == 0
    with pytest.raises(ProtocolError, match="distinct axis letters"):  # and a receiver refuses them
        decode_any(_frames(Points([[1.0, 2.0]]), axes="y1"))


def test_save_batch_sends_annotations_as_annotations() -> None:
    # Before: save_batch of Points raised "cannot stream arrays of dtype object".
    with StreamingBackend(mode="pull", endpoint="tcp://127.0.0.1:0") as pull:
        with StreamingBackend(mode="push", endpoint=pull.endpoint) as push:
            push.save_batch([SPOTS, CELLS, MASK], ["b/spots.csv", "b/cells.roi.zip", "b/mask.tif"])
            push.save_batch([SPOTS, SPOTS], ["b/t0.csv", "b/t1.csv"], index=[{"t": 0}, {"t": 1}])
            push.save_batch([MASK.data], ["b/plain.tif"], kind="labels")
            assert pull.load("b/spots.csv") == SPOTS
            assert pull.load("b/cells.roi.zip") == CELLS
            assert pull.load("b/mask.tif") == MASK
            assert [pull.receive(f"b/t{t}.csv").header.index for t in (0, 1)] == [{"t": 0}, {"t": 1}]
            assert pull.load("b/plain.tif") == MASK
