"""Wire protocol and placement logic, no sockets."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest

pytest.importorskip("zmq")

from polystore.streaming.placement import (  # noqa: E402
    PlacementError,
    Placer,
    StackBuffer,
    layer_name_from_path,
)
from polystore.streaming.protocol import (  # noqa: E402
    PROTOCOL_VERSION,
    ProtocolError,
    as_payload_array,
    build_header,
    decode_message,
    encode_header,
    parse_header,
)
from polystore.streaming.receiver import Frame, FrameQueue  # noqa: E402


def _message(array: np.ndarray, path: str = "p.tif", **kw: Any) -> list[bytes]:
    array = as_payload_array(array)
    header = build_header(array, path, stream="s", seq=kw.pop("seq", 0), **kw)
    return [encode_header(header), array.tobytes()]


@pytest.mark.parametrize("dtype", ["u1", "<u2", ">u2", "<i4", "<f4", ">f8", "?", "<c8"])
def test_round_trip_every_dtype(dtype: str) -> None:
    array = (np.arange(24) % 2 if dtype == "?" else np.arange(24)).astype(dtype).reshape(2, 3, 4)
    header, out = decode_message(_message(array, "a/b.tif", index={"t": 1}, meta={"k": [1, "x"]}))
    assert out.dtype == np.dtype(dtype) and out.shape == (2, 3, 4)
    np.testing.assert_array_equal(out, array)
    assert header.v == PROTOCOL_VERSION and header.index == {"t": 1} and header.meta == {"k": [1, "x"]}


def test_non_contiguous_array_is_sent_contiguous() -> None:
    array = np.arange(100, dtype=np.int16).reshape(10, 10)[::2, ::3]
    _, out = decode_message(_message(array))
    np.testing.assert_array_equal(out, array)


def test_header_fields_are_the_documented_ones() -> None:
    frames = _message(np.zeros((2, 3), np.uint16), layer="L", axes="tyx", index={"t": 0},
                      display={"colormap": "gray"})
    raw = json.loads(frames[0])
    assert set(raw) == {"v", "kind", "stream", "seq", "path", "dtype", "shape", "order", "nbytes",
                        "layer", "axes", "index", "display", "meta", "sent"}
    assert raw["dtype"] == "<u2" and raw["shape"] == [2, 3] and raw["nbytes"] == 12


@pytest.mark.parametrize(
    "change, message",
    [
        ({"v": 2}, "version"),
        ({"kind": "pickle"}, "kind"),
        ({"dtype": "|O"}, "dtype"),
        ({"dtype": "[('a', '<i4')]"}, "dtype"),
        ({"shape": [2, -3]}, "shape"),
        ({"shape": [10**12, 10**12], "nbytes": 2 * 10**24}, "payload"),
        ({"nbytes": 13}, "nbytes"),
        ({"seq": -1}, "seq"),
        ({"order": "F"}, "order"),
        ({"axes": "tt"}, "axes"),
        ({"index": {"t": "0"}}, "index"),
        ({"display": {"contrast_limits": [5, 1]}}, "contrast_limits"),
        ({"meta": [1]}, "meta"),
        ({"sent": "now"}, "sent"),
    ],
)
def test_invalid_headers_are_refused(change: dict[str, Any], message: str) -> None:
    frames = _message(np.zeros((2, 3), np.uint16))
    raw = {**json.loads(frames[0]), **change}
    with pytest.raises(ProtocolError, match=message):
        parse_header(json.dumps(raw).encode(), len(frames[1]))


def test_garbage_and_wrong_frame_counts_are_refused() -> None:
    for frames in ([b"\xff\xfe"], [b"{", b""], [b"[]", b""], [b"NaN", b""], [b"{}", b"", b""]):
        with pytest.raises(ProtocolError):
            decode_message(frames)
    with pytest.raises(ProtocolError, match="limit"):
        decode_message(_message(np.zeros(100, np.uint8)), max_frame_bytes=10)


def test_sender_refuses_what_receivers_refuse() -> None:
    with pytest.raises(TypeError):
        as_payload_array(np.array(["a"], dtype=object))
    with pytest.raises(TypeError):
        build_header(np.zeros(2), "p", stream="s", seq=0, meta={"x": object()})
    with pytest.raises(ValueError):
        build_header(np.zeros(2), "p", stream="s", seq=0, display={"contrast_limits": [1, 0]})


@pytest.mark.parametrize(
    "path, name",
    [
        ("A01/site1_c2.tif", "A01/site1_c2"),
        ("/data/plate.ome.zarr", "data/plate"),
        ("./x/y.ome.tif", "x/y"),
        ("C:\\run\\img.npy", "C:/run/img"),
        ("stream", "stream"),
        (".hidden", ".hidden"),
        ("", "stream"),
    ],
)
def test_layer_names_follow_the_documented_rule(path: str, name: str) -> None:
    assert layer_name_from_path(path) == name


def _frame(array: np.ndarray, path: str = "p.tif", **kw: Any) -> Frame:
    header, data = decode_message(_message(array, path, **kw))
    return Frame(header, data, 0.0)


def test_placer_builds_stacks_with_every_frame_at_its_index() -> None:
    placer = Placer()
    frames = [_frame(np.full((4, 5), 10 * t + c, np.uint16), layer="S", index={"t": t, "c": c})
              for t in (2, 0, 1) for c in (1, 0)]
    updates = placer.place(frames)
    assert len(updates) == 1
    update = updates[0]
    assert update.stacked and update.reassign and update.axis_labels == ("t", "c", "y", "x")
    assert update.data.shape == (3, 2, 4, 5)
    for t in range(3):
        for c in range(2):
            assert np.all(update.data[t, c] == 10 * t + c)
    # Writing inside the current extent does not change the shape: a refresh suffices.
    (again,) = placer.place([_frame(np.full((4, 5), 99, np.uint16), layer="S", index={"t": 1, "c": 1})])
    assert not again.reassign and again.data[1, 1, 0, 0] == 99 and again.data[0, 0, 0, 0] == 0


def test_placer_grows_amortised_and_keeps_old_frames() -> None:
    stack = StackBuffer("t", "yx", (2, 2), np.dtype("u1"))
    for t in range(100):
        stack.place({"t": t}, np.full((2, 2), t, np.uint8))
    view = stack.view()
    assert view.shape == (100, 2, 2)
    assert [int(view[t, 0, 0]) for t in range(100)] == list(range(100))


def test_placer_uses_header_axes_and_adds_new_index_axes() -> None:
    placer = Placer()
    (u,) = placer.place([_frame(np.ones((3, 4), np.float32), layer="V", axes="tzyx", index={"t": 1, "z": 2})])
    assert u.data.shape == (2, 3, 3, 4) and u.axis_labels == ("t", "z", "y", "x")
    (u,) = placer.place([_frame(np.ones((3, 4), np.float32), layer="V", index={"t": 0, "z": 0, "c": 1})])
    assert u.data.shape == (2, 3, 2, 3, 4) and u.reassign and u.axis_labels == ("t", "z", "c", "y", "x")


def test_placer_rejects_mismatched_frames_and_huge_stacks() -> None:
    placer = Placer(max_stack_bytes=1024)
    placer.place([_frame(np.ones((2, 2), np.uint8), layer="S", index={"t": 0})])
    assert placer.place([_frame(np.ones((3, 3), np.uint8), layer="S", index={"t": 1})]) == []
    assert placer.place([_frame(np.ones((2, 2), np.uint8), layer="S", index={"t": 2**30})]) == []
    assert placer.rejected == 2 and "byte limit" in placer.last_error
    with pytest.raises(PlacementError):
        StackBuffer("t", "yx", (2, 2), np.dtype("u1"), max_bytes=4).place({"t": 5}, np.ones((2, 2), np.uint8))


def test_live_frames_coalesce_newest_wins_and_stack_frames_are_all_kept() -> None:
    queue = FrameQueue(max_bytes=10**6)
    for value in range(5):
        queue.put(_frame(np.full((2, 2), value, np.uint8), "cam.tif"))
        queue.put(_frame(np.full((2, 2), value, np.uint8), "s.tif", index={"t": value}))
    frames = queue.take_all()
    live = [f for f in frames if f.live]
    assert len(live) == 1 and live[0].data[0, 0] == 4
    assert [f.header.index for f in frames if not f.live] == [{"t": v} for v in range(5)]
    assert queue.replaced == 4 and len(queue) == 0 and queue.nbytes == 0


def test_frame_queue_reports_full_by_bytes() -> None:
    queue = FrameQueue(max_bytes=10)
    assert queue.has_room()
    queue.put(_frame(np.zeros(100, np.uint8), index={"t": 0}))  # bigger than the budget: still taken
    assert not queue.has_room()
    assert not queue.wait_for_room(0.01)
    queue.take_all()
    assert queue.has_room()


@pytest.mark.parametrize(
    "options",
    [{}, {"layer": 'L\u00e9"x'}, {"index": {"t": 1}}, {"axes": "yx"}, {"meta": {"a": [1.5, None]}}],
)
def test_encoded_header_is_exactly_the_header(options: dict[str, Any]) -> None:
    header = build_header(np.zeros((3, 4), ">u2"), "a/\u00fcb\\c.tif", stream="s", seq=5, **options)
    assert json.loads(encode_header(header)) == header.to_dict()
    with pytest.raises(ValueError):
        build_header(np.zeros(2), "p", stream="s", seq=0, sent=float("nan"))
