"""Flow control against receivers that do not answer (protocol 1.0 receivers), real sockets."""

from __future__ import annotations

import numpy as np
import pytest

zmq = pytest.importorskip("zmq")

from polystore.streaming import StreamReceiver  # noqa: E402
from polystore.streaming.napari import NapariStreamingBackend  # noqa: E402


def wait_for_credit(backend: NapariStreamingBackend) -> None:
    """Read the sender's feedback until the viewer's credit arrived (fails after 30 s)."""
    import time

    deadline = time.monotonic() + 30
    while not backend.sender._credit and time.monotonic() < deadline:
        backend.sender.check_feedback()
        time.sleep(0.01)
    assert backend.sender._credit, "the sender never heard the viewer's credit"


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
        wait_for_credit(backend)
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


def _pipeline_child_that_returns_with_a_frame_in_the_slot(endpoint: str) -> None:
    """A worker function: credit for frame 0, frame 1 unacknowledged, frame 2 parked; then return."""
    import time

    backend = NapariStreamingBackend(endpoint=endpoint, send_timeout=5)
    backend.save(np.full((4, 4), 0, np.uint8), "live.tif")
    wait_for_credit(backend)
    backend.save(np.full((4, 4), 1, np.uint8), "live.tif")
    backend.save(np.full((4, 4), 2, np.uint8), "live.tif")  # waits for credit for frame 1: never comes
    # Returns without close(), as a pipeline function that drops its FileManager does.


def test_a_forked_worker_that_returns_still_delivers_the_frame_left_in_the_send_slot() -> None:
    """multiprocessing's forked children leave by os._exit: atexit never runs there, so the
    newest live frame parked in the send slot was lost (the demo lost its last frame)."""
    import multiprocessing

    from polystore.streaming.feedback import FeedbackOutbox

    outbox = FeedbackOutbox()
    try:
        with StreamReceiver("tcp://127.0.0.1:0", coalesce=False) as receiver:
            worker = multiprocessing.get_context("fork").Process(
                target=_pipeline_child_that_returns_with_a_frame_in_the_slot, args=(receiver.endpoint,)
            )
            worker.start()
            try:
                header = receiver.get(timeout=30).header
                assert header.reply is not None
                outbox.send([(header.reply, header.stream, header.seq)])  # the viewer applied frame 0
                seen = [int(receiver.get(timeout=30).data[0, 0])]
                while seen[-1] != 2:
                    seen.append(int(receiver.get(timeout=15).data[0, 0]))
                assert seen in ([1, 2], [2])  # 1 may be replaced in the slot by 2; 2 must arrive
            finally:
                worker.join(30)
                if worker.exitcode is None:
                    worker.kill()
            assert worker.exitcode == 0
    finally:
        outbox.close()


def test_flush_returns_only_after_the_slot_frame_was_sent_not_just_taken(monkeypatch: pytest.MonkeyPatch) -> None:
    """close() relies on flush(): returning when the slot's thread had only *taken* the frame let
    close() shut the socket first; the thread then sent on a fresh socket nobody flushed (lost at exit)."""
    import threading
    import time

    from polystore.streaming.feedback import FeedbackOutbox

    outbox = FeedbackOutbox()
    with StreamReceiver("tcp://127.0.0.1:0", coalesce=False) as receiver:
        backend = NapariStreamingBackend(endpoint=receiver.endpoint, send_timeout=5)
        try:
            backend.save(np.full((4, 4), 0, np.uint8), "live.tif")
            header = receiver.get(timeout=10).header
            assert header.reply is not None
            outbox.send([(header.reply, header.stream, header.seq)])
            wait_for_credit(backend)
            sender = backend.sender
            original = sender._send_locked
            handed: list[int] = []

            def slow_send(header, array, encoded=None, table=None):  # type: ignore[no-untyped-def]
                if threading.current_thread() is not threading.main_thread():
                    time.sleep(1.0)  # a slot thread descheduled between taking and sending
                original(header, array, encoded, table)
                handed.append(int(array[0, 0]))

            monkeypatch.setattr(sender, "_send_locked", slow_send)
            backend.save(np.full((4, 4), 1, np.uint8), "live.tif")  # credit: goes through the slot
            assert sender.flush(10)
            assert handed == [1], "flush() returned before the frame was handed to ZeroMQ"
            assert int(receiver.get(timeout=10).data[0, 0]) == 1
        finally:
            backend.close()
            outbox.close()


def test_a_receiver_silent_past_the_first_feedback_timeout_gets_live_frames_through_the_slot(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A viewer that does not answer its first frame in time (a protocol-1.0 receiver, or a napari
    viewer busy creating its first layer under load) must not be flooded: later live frames still
    go through the newest-only slot (save returns at once, unsent ones are replaced), they are just
    not held back waiting for credit. The old code sent each one straight to the socket, so saves
    blocked behind a slow receiver and then failed."""
    import time

    from polystore.streaming import StreamSender, flow

    monkeypatch.setattr(flow, "FIRST_FEEDBACK_TIMEOUT", 0.3)
    # Not threaded: nothing reads until get(), so the socket's queues fill up.
    receiver = StreamReceiver("tcp://127.0.0.1:0", coalesce=False, threaded=False, rcvhwm=1).start()
    sender = StreamSender(receiver.endpoint, send_timeout=2, sndhwm=1, flow_control=True)
    try:
        frame = np.zeros((512, 1024), np.uint16)  # 1 MiB
        sender.send(frame, "live.tif")  # the first live frame goes out at once
        sender.send(frame, "live.tif")  # then waits in the slot for an answer that never comes
        deadline = time.monotonic() + 30
        while not sender._legacy:
            assert time.monotonic() < deadline, "the sender never gave up waiting for feedback"
            time.sleep(0.02)
        for k in range(2, 80):
            frame = np.full((512, 1024), k, np.uint16)
            sender.send(frame, "live.tif")  # old code: blocks, then NoReceiverError
        assert sender.conflated > 0  # frames the receiver could not take yet were replaced, not queued
        seen = [int(receiver.get(timeout=10).data[0, 0])]
        while seen[-1] != 79:
            seen.append(int(receiver.get(timeout=10).data[0, 0]))
        assert seen == sorted(seen) and receiver.stats().gaps == 0  # the newest arrives last
    finally:
        sender.close(0)
        receiver.stop()
