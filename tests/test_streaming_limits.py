"""The pull receiver's queue stays bounded whatever the frames look like (real sockets)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

zmq = pytest.importorskip("zmq")

from polystore.streaming import NoReceiverError, ReceiveTimeoutError, StreamingBackend, StreamSender  # noqa: E402


@pytest.fixture(params=["tcp", "ipc"])
def endpoint(request: Any, tmp_path: Path) -> str:
    return "tcp://127.0.0.1:0" if request.param == "tcp" else f"ipc://{tmp_path}/s.sock"


def test_zero_byte_frames_with_big_headers_count_toward_the_cap(endpoint: str) -> None:
    meta = {"notes": "x" * 62_000}  # ~62 KB of header, zero bytes of payload
    cap = 1024 * 1024
    with StreamingBackend(mode="pull", endpoint=endpoint, max_queued_bytes=cap) as pull:
        sender = StreamSender(pull.endpoint, send_timeout=0.5, sndhwm=4)
        sent = 0
        try:
            with pytest.raises(NoReceiverError):
                for _ in range(2000):
                    sender.send(np.zeros(0, np.uint8), "other", meta=meta)
                    sent += 1
                    if sent % 50 == 0:
                        with pytest.raises(ReceiveTimeoutError):
                            pull.load("wanted", timeout=0.01)  # reads "other" frames into the queue
            queue = pull.receiver.queue
            assert len(queue) <= cap // 62_000 + 1, len(queue)
            assert queue.nbytes >= 62_000 * len(queue)  # the headers are counted
            assert sent < 2000  # the sender was held back instead of the receiver growing
        finally:
            sender.close(0)


def test_queued_frame_count_is_capped(endpoint: str) -> None:
    with StreamingBackend(mode="pull", endpoint=endpoint, max_queued_frames=64) as pull:
        sender = StreamSender(pull.endpoint, send_timeout=0.5, sndhwm=4)
        try:
            for t in range(3000):
                try:
                    sender.send(np.zeros(1, np.uint8), "other", index={"t": t})
                except NoReceiverError:
                    break  # held back: fine
                if t % 100 == 0:
                    with pytest.raises(ReceiveTimeoutError):
                        pull.load("wanted", timeout=0.01)
            assert len(pull.receiver.queue) <= 64
            first = pull.receiver.get("other", timeout=5)  # nothing lost: the oldest is still first
            assert first.header.index == {"t": 0}
        finally:
            sender.close(0)
