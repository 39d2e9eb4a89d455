"""Flow control against receivers that do not answer (protocol 1.0 receivers), real sockets."""

from __future__ import annotations

import numpy as np
import pytest

zmq = pytest.importorskip("zmq")

from polystore.streaming import ReceiveTimeoutError, StreamReceiver  # noqa: E402
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


def test_a_restarted_viewer_gets_the_next_live_frame_without_waiting_for_lost_credit(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The frame in flight to a viewer that closed is never acknowledged; the next viewer
    must still get a live frame at once, before it ever sends credit (not after CREDIT_TIMEOUT)."""
    import time

    from polystore.streaming import flow
    from polystore.streaming.feedback import FeedbackOutbox

    monkeypatch.setattr(flow, "CREDIT_TIMEOUT", 3600.0)  # the old code would hold the frame for an hour
    first = StreamReceiver("tcp://127.0.0.1:0", coalesce=False).start()
    endpoint = first.endpoint
    outbox = FeedbackOutbox()
    backend = NapariStreamingBackend(endpoint=endpoint, send_timeout=5)
    second = None
    try:
        backend.save(np.full((4, 4), 0, np.uint8), "live.tif")
        header = first.get(timeout=10).header
        assert header.reply is not None
        outbox.send([(header.reply, header.stream, header.seq)])  # the viewer applied frame 0
        deadline = time.monotonic() + 30
        while not backend.sender._credit and time.monotonic() < deadline:
            backend.sender.check_feedback()
            time.sleep(0.01)
        assert backend.sender._credit, "the sender never heard the viewer's credit"
        backend.save(np.full((4, 4), 1, np.uint8), "live.tif")
        assert int(first.get(timeout=10).data[0, 0]) == 1  # in flight, never acknowledged
        first.stop()  # the viewer closes before applying it
        second = StreamReceiver(endpoint, coalesce=False).start()  # a new viewer, same endpoint
        backend.save(np.full((4, 4), 2, np.uint8), "live.tif")
        assert int(second.get(timeout=30).data[0, 0]) == 2  # delivered although nobody sent credit
    finally:
        backend.close()
        outbox.close()
        first.stop()
        if second is not None:
            second.stop()


def test_a_viewer_slow_to_show_its_first_frame_is_not_flooded(monkeypatch: pytest.MonkeyPatch) -> None:
    """A viewer connects its feedback socket when the first frame arrives, before showing it;
    the sender then holds later live frames for its credit instead of taking it for a 1.0
    receiver after FIRST_FEEDBACK_TIMEOUT and sending every frame (which the viewer drops)."""
    import time

    from polystore.streaming import flow
    from polystore.streaming.feedback import FeedbackOutbox

    outbox = FeedbackOutbox()
    monkeypatch.setattr(flow, "FIRST_FEEDBACK_TIMEOUT", 0.0)  # the slow first draw outlasts it
    monkeypatch.setattr(flow, "CREDIT_TIMEOUT", 3600.0)
    receiver = StreamReceiver("tcp://127.0.0.1:0", coalesce=False, on_reply=outbox.connect).start()
    backend = NapariStreamingBackend(endpoint=receiver.endpoint, send_timeout=5)
    try:
        backend.save(np.full((4, 4), 0, np.uint8), "live.tif")
        first = receiver.get(timeout=10).header  # received; the viewer takes long to show it
        deadline = time.monotonic() + 10
        while not getattr(backend.sender, "receiver_answers", False) and time.monotonic() < deadline:
            time.sleep(0.01)
        assert getattr(backend.sender, "receiver_answers", False), "the viewer's early connection was not seen"
        backend.save(np.full((4, 4), 1, np.uint8), "live.tif")
        with pytest.raises(ReceiveTimeoutError):  # held for the viewer's credit (an old sender sent it)
            receiver.get(timeout=1.0)
        for k in range(2, 6):
            backend.save(np.full((4, 4), k, np.uint8), "live.tif")
        assert first.reply is not None
        outbox.send([(first.reply, first.stream, first.seq)])  # frame 0 finally shown
        assert int(receiver.get(timeout=30).data[0, 0]) == 5  # the newest; 1-4 never crossed the socket
        assert receiver.stats().received == 2 and backend.sender.conflated == 4
    finally:
        backend.close()
        outbox.close()
        receiver.stop()
