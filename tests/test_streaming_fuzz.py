"""10,000 fuzzed messages: the receiver stays alive, counts exactly, and memory stays flat."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

zmq = pytest.importorskip("zmq")
psutil = pytest.importorskip("psutil")

from polystore.streaming import StreamReceiver  # noqa: E402
from polystore.streaming.protocol import build_header, encode_header  # noqa: E402


def _valid(rng: np.random.Generator, seq: int) -> list[bytes]:
    shape = tuple(int(n) for n in rng.integers(1, 9, size=int(rng.integers(1, 4))))
    array = rng.integers(0, 255, size=shape).astype(np.uint8)
    index = {"t": int(rng.integers(0, 4))} if rng.random() < 0.3 else None
    layer = f"L{int(rng.integers(0, 5))}" if index is None else f"S{shape}"
    header = build_header(array, f"fuzz/{seq}.tif", stream="fuzz", seq=seq, layer=layer, index=index)
    return [encode_header(header), array.tobytes()]


def _corrupt(rng: np.random.Generator, seq: int) -> list[bytes]:
    """A message that must fail validation, from one of many families."""
    head, body = _valid(rng, seq)
    raw: dict[str, Any] = json.loads(head)
    kind = int(rng.integers(0, 16))
    if kind == 0:
        return [rng.bytes(int(rng.integers(0, 200)))]  # one frame of garbage
    if kind == 1:
        return [head, body, rng.bytes(8)]  # three frames
    if kind == 2:
        return [rng.bytes(int(rng.integers(1, 300))), body]  # garbage header
    if kind == 3:
        return [head, body[: len(body) // 2]]  # truncated payload
    if kind == 4:
        return [head, body + rng.bytes(int(rng.integers(1, 50)))]  # payload too long
    if kind == 5:
        raw["shape"] = [int(n) + 1 for n in raw["shape"]]  # shape/size mismatch
    elif kind == 6:
        raw["shape"], raw["nbytes"] = [200_000, 200_000, 100], 4 * 10**12  # declares 4 TB
    elif kind == 7:
        raw["v"] = int(rng.choice([0, 2, 99, -1]))  # wrong version
    elif kind == 8:
        raw["dtype"] = str(rng.choice(["|O", "<U4", "|V8", "<M8[ns]", "float", "<u3", ""]))
    elif kind == 9:
        del raw[str(rng.choice(["v", "seq", "dtype", "shape", "nbytes", "path", "stream", "sent"]))]
    elif kind == 10:
        raw["seq"] = str(raw["seq"])
    elif kind == 11:
        return [b"[" * 100_000 + b"]" * 100_000, body]  # deep nesting / oversized header
    elif kind == 12:
        return [head[: len(head) // 2], body]  # truncated JSON
    elif kind == 13:
        raw["index"] = {"t": -1}
    elif kind == 14:
        raw["display"] = {"contrast_limits": "auto"}
    else:
        return [b"\xff\xfe" + head, body]  # not UTF-8
    return [json.dumps(raw).encode(), body]


def test_ten_thousand_fuzzed_messages(tmp_path: Path) -> None:
    rng = np.random.default_rng(20261122)
    endpoint = f"ipc://{tmp_path}/fuzz.sock"
    process = psutil.Process()
    with StreamReceiver(endpoint, coalesce=True, max_queued_bytes=1 << 20) as receiver:
        push = zmq.Context.instance().socket(zmq.PUSH)
        push.connect(receiver.endpoint)
        rss_before = process.memory_info().rss
        good = bad = 0
        for i in range(10_000):
            if rng.random() < 0.2:
                push.send_multipart(_valid(rng, good))
                good += 1
            else:
                push.send_multipart(_corrupt(rng, good))
                bad += 1
            if i % 500 == 0:
                receiver.take()  # a consumer that keeps up now and then
        # A final valid frame proves the receiver is still alive and reading.
        sentinel = np.arange(6, dtype=np.uint16).reshape(2, 3)
        header = build_header(sentinel, "sentinel.tif", stream="end", seq=0)
        push.send_multipart([encode_header(header), sentinel.tobytes()])
        received_sentinel = None
        while received_sentinel is None:
            frame = receiver.get("sentinel.tif", timeout=30)
            received_sentinel = frame.data
        np.testing.assert_array_equal(received_sentinel, sentinel)
        stats = receiver.stats()
        push.close(0)
    assert stats.malformed == bad
    assert stats.received == good + 1
    assert stats.gaps == 0 and stats.out_of_order == 0
    assert bad > 7000 and good > 1500
    assert process.memory_info().rss - rss_before < 100 * 1024**2
