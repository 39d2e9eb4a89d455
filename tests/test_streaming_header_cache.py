"""The repeated-header fast paths (sender template, receiver cache) give exactly what the full path gives."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from polystore.streaming.header_cache import HeaderCache, HeaderTemplate, canonical_split
from polystore.streaming.protocol import ProtocolError, build_header, encode_header, parse_header

SEQS = [b"0", b"7", b"9223372036854775807", b"9223372036854775808", b"-1", b"01", b"1.0", b"1e3", b"true",
        b'"3"', b"null", b"", b'5,"path":"elsewhere.tif"', b"5 "]
SENTS = [b"1.5", b"2", b"-3.25", b"1e999", b"-1e999", b"NaN", b"Infinity", b"1e5", b"01.5", b".5", b"1.",
         b"null", b'"1.0"', b"1.5,\"x\":1", b"1" + b"0" * 400]


def _outcome(parse: object, data: bytes, nbytes: int) -> object:
    try:
        return parse(data, nbytes)  # type: ignore[operator]
    except ProtocolError as exc:
        return ("refused", type(exc))


@pytest.mark.parametrize("display", [{}, {"contrast_limits": [0.0, 4000.0], "colormap": "gray"}])
def test_a_cached_header_with_other_numbers_is_parsed_exactly_like_the_full_path(display: dict) -> None:
    array = np.zeros((2, 3), np.uint16)
    header = build_header(array, "a/b.tif", stream="s1", seq=3, display=display, layer="L",
                          reply="tcp://127.0.0.1:4000")
    known = encode_header(header)
    before, _seq, middle, _sent, after = canonical_split(known)  # type: ignore[misc]
    cache = HeaderCache()
    assert cache.parse(known, 12) == header
    for seq, sent in itertools.product(SEQS, SENTS):
        data = before + b',"seq":' + seq + middle + b',"sent":' + sent + after
        for nbytes in (12, 13):
            assert _outcome(cache.parse, data, nbytes) == _outcome(parse_header, data, nbytes), (seq, sent, nbytes)
    assert cache.hits > 0  # the fast path was taken for the valid variants


def test_headers_with_index_or_metadata_always_take_the_full_path() -> None:
    array = np.zeros((2, 3), np.uint16)
    cache = HeaderCache()
    for k in range(3):
        for header in (build_header(array, "p", stream="s", seq=k, index={"t": k}, axes="tyx"),
                       build_header(array, "q", stream="s", seq=k, meta={"k": [k]})):
            parsed = cache.parse(encode_header(header), 12)
            assert parsed == header
    assert cache.hits == 0


def test_the_sender_template_encodes_what_encode_header_encodes() -> None:
    array = np.zeros((4, 4), np.uint8)
    header = build_header(array, "x.tif", stream="s\"\\é", seq=0, display={"scale": [1.0, 2.0]}, layer="l")
    template = HeaderTemplate.of(header, encode_header(header))
    assert template is not None
    for seq, sent in [(1, 1764540000.123456), (2**63 - 1, 0.5), (12, 1e-7)]:
        made, data = template.make(seq, sent)
        assert made.seq == seq and made.sent == sent
        assert data == encode_header(made)
        assert parse_header(data, 16) == made
        made.display["scale"].append(3.0)  # each header owns its values
        assert header.display["scale"] == [1.0, 2.0]


def test_repeated_saves_over_a_real_socket_arrive_whole_through_both_fast_paths() -> None:
    pytest.importorskip("zmq")
    from polystore.streaming import StreamingBackend

    pull = StreamingBackend(mode="pull", endpoint="tcp://127.0.0.1:0")
    push = StreamingBackend(mode="push", endpoint=pull.endpoint, send_timeout=5)
    try:
        for k in range(5):
            push.save(np.full((3, 3), k, np.uint16), "live/a.tif", contrast_limits=[0, 9], layer="a")
        push.save(np.full((3, 3), 7, np.uint16), "live/b.tif")  # another path: the full path again
        frames = [pull.receive(timeout=10) for _ in range(6)]
    finally:
        push.close()
        pull.close()
    assert [f.header.seq for f in frames] == list(range(6))
    assert [int(f.data[0, 0]) for f in frames] == [0, 1, 2, 3, 4, 7]
    assert all(f.header.display == {"contrast_limits": [0.0, 9.0]} for f in frames[:5])
    assert frames[5].header.path == "live/b.tif" and frames[5].header.display == {}
    assert len({f.header.sent for f in frames}) > 1 or frames[0].header.sent > 0
    assert pull.receiver._headers.hits == 4


def test_gap_counting_follows_each_stream_when_streams_interleave_and_old_ones_are_forgotten() -> None:
    """The counter's shortcut for "same stream as the previous message" keeps every stream's own numbering."""
    from polystore.streaming.receiver_stats import MAX_TRACKED_STREAMS, ReceiverCounters

    counters = ReceiverCounters("tcp://127.0.0.1:1")
    a = build_header(np.zeros(2), "a", stream="A", seq=0)
    b = build_header(np.zeros(2), "b", stream="B", seq=0)

    def count(header: object, seq: int) -> None:
        counters.count(header.__class__(**{**header.__dict__, "seq": seq}), 0.0)  # type: ignore[arg-type]

    for stream, seq in [(a, 0), (a, 1), (b, 0), (a, 2), (b, 1), (b, 2), (a, 5), (a, 6), (b, 3), (a, 4)]:
        count(stream, seq)
    snap = counters.snapshot()
    assert (snap.received, snap.gaps, snap.out_of_order) == (10, 2, 1)  # A skipped 3 and 4, then went back to 4
    for n in range(MAX_TRACKED_STREAMS):  # A and B are pushed out of the tracked streams
        counters.count(build_header(np.zeros(2), "x", stream=f"s{n}", seq=0), 0.0)
    count(a, 100)  # A is new again: no gap counted against its forgotten numbering
    count(a, 102)
    snap = counters.snapshot()
    assert (snap.gaps, snap.out_of_order) == (3, 1)


@pytest.mark.parametrize("parts", [1, 2, 3, 5])
def test_reading_a_message_part_by_part_gives_what_recv_multipart_gives(parts: int) -> None:
    import zmq

    from polystore.streaming._zmq import recv_message, send_message

    ctx = zmq.Context()
    pull, push = ctx.socket(zmq.PULL), ctx.socket(zmq.PUSH)
    try:
        port = pull.bind_to_random_port("tcp://127.0.0.1")
        push.connect(f"tcp://127.0.0.1:{port}")
        message = [bytes([k]) * (k * 70_000 + 3) for k in range(parts)]  # small (copied) and large (zero-copy) parts
        for _ in range(2):
            send_message(push, [memoryview(p) for p in message], copy=False)
        assert pull.poll(5000)
        assert [bytes(f.buffer) for f in recv_message(pull)] == message
        assert [bytes(f.buffer) for f in pull.recv_multipart(copy=False)] == message
        with pytest.raises(zmq.Again):
            recv_message(pull, zmq.NOBLOCK)
    finally:
        pull.close(0)
        push.close(0)
        ctx.term()
