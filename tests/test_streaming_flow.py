"""Flow control against receivers that do not answer (protocol 1.0 receivers), real sockets."""

from __future__ import annotations

import numpy as np
import pytest

zmq = pytest.importorskip("zmq")

from polystore.streaming import StreamReceiver  # noqa: E402
from polystore.streaming.napari import NapariStreamingBackend  # noqa: E402


def test_a_receiver_without_feedback_still_gets_the_newest_live_frame() -> None:
    with StreamReceiver("tcp://127.0.0.1:0", coalesce=False) as receiver:
        backend = NapariStreamingBackend(endpoint=receiver.endpoint, send_timeout=5)
        try:
            for k in range(5):
                backend.save(np.full((4, 4), k, np.uint8), "live.tif")
            assert backend.sender.flush(10)
            seen = [int(receiver.get(timeout=10).data[0, 0])]
            while seen[-1] != 4:
                seen.append(int(receiver.get(timeout=10).data[0, 0]))
            assert seen[0] == 0 and seen == sorted(seen)  # the first at once, the newest last
            # Nobody answered: later live frames go straight out, none is held back.
            backend.save(np.full((4, 4), 9, np.uint8), "live.tif")
            assert int(receiver.get(timeout=10).data[0, 0]) == 9
            assert receiver.stats().gaps == 0
        finally:
            backend.close()
