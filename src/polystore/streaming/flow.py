"""Flow control of a :class:`~polystore.streaming.sender.StreamSender`: credit, the newest-only send slot.

With ``flow_control=True`` (the napari backend) live frames (no ``index``)
go through a newest-only send slot once the receiver answers with feedback
(:mod:`polystore.streaming.feedback`): ``send`` puts the frame in the slot of
its layer and returns at once (a newer frame for the same layer replaces an
unsent one, counted in ``StreamSender.conflated``), and a background thread
transmits it when the viewer has applied the previous live frame. So the
sender never transmits live frames the viewer would drop, while indexed frames
(stacks) are all sent, in order, as before.

The first live frame for a receiver goes out at once, without waiting for any
feedback: for a new sender, and again after the receiver went away (its
connection closed: a restarted viewer), since the credit for frames sent to
the old one never comes.
"""

from __future__ import annotations

import collections
import dataclasses
import threading
import time
from typing import Any

import numpy as np

from polystore.streaming._zmq import zmq
from zmq.utils.monitor import recv_monitor_message
from polystore.streaming.errors import NoReceiverError
from polystore.streaming.feedback import FeedbackInbox
from polystore.streaming.header import Header
from polystore.streaming.placement import layer_name_from_path
from polystore.streaming.rejections import RejectedFrame, RejectionLog

__all__ = ["FlowControl", "MAX_PENDING_LAYERS", "CREDIT_TIMEOUT", "FIRST_FEEDBACK_TIMEOUT"]

#: Live layers that may wait in the send slot at once; more make ``send`` wait.
MAX_PENDING_LAYERS = 256
#: Seconds without feedback after which a flow-controlled sender sends anyway.
CREDIT_TIMEOUT = 3.0
#: Seconds a new sender waits for a receiver's first feedback before taking it
#: for one that never answers (protocol 1.0): live frames then leave the send slot
#: without waiting for credit (a newer one still replaces an unsent one).
FIRST_FEEDBACK_TIMEOUT = 5.0


class FlowControl:
    """The flow-control half of :class:`~polystore.streaming.sender.StreamSender` (a mixin)."""

    endpoint: str
    hint: str
    send_timeout: float
    stream_id: str
    rejections: RejectionLog
    conflated: int
    _lock: threading.Lock
    _seq: int

    def _send_locked(
        self, header: Header, array: np.ndarray[Any, Any], encoded: bytes | None = None, table: bytes | None = None
    ) -> None:
        raise NotImplementedError

    def _writable(self, nbytes: int) -> bool:
        raise NotImplementedError

    def _reset_flow(self) -> None:
        """Fresh flow-control state (new object, or a forked child)."""
        self._inbox: FeedbackInbox | None = None
        self._fb_lock = threading.Lock()
        self._credit = False  # the receiver answers with feedback
        self._legacy = False  # the receiver did not answer in time: send live frames directly
        self._taken = -1
        self._inflight: collections.deque[int] = collections.deque()
        self._progress = 0.0
        self._slot: collections.OrderedDict[str, tuple[Header, np.ndarray[Any, Any]]] = collections.OrderedDict()
        self._slot_cond = threading.Condition()
        self._slot_thread: threading.Thread | None = None
        self._slot_error: BaseException | None = None
        self._sending = False  # the slot's thread holds a frame it took from the slot
        self._closing = False
        self._monitor: Any = None  # connection events of the PUSH socket (flow control only)

    def check_feedback(self) -> None:
        """Read the receiver's feedback (credit, rejected frames); raise the slot thread's error.

        Called by :meth:`send`; rejected frames go to :attr:`rejections`, which
        the next message surfaces (a warning by default).
        """
        error, self._slot_error = self._slot_error, None
        if error is not None:
            raise error
        self._read_feedback(0)

    def _read_feedback(self, timeout_ms: int) -> None:
        inbox = self._inbox
        if inbox is None or not self._fb_lock.acquire(blocking=timeout_ms > 0):
            return
        try:
            self._read_connection_events()
            for feedback in inbox.read(timeout_ms):
                if feedback.stream != self.stream_id:
                    continue
                self._credit, self._legacy = True, False
                self._progress = time.monotonic()
                self._taken = max(self._taken, feedback.taken)
                if feedback.rejected:
                    self.rejections.report(
                        RejectedFrame.from_dict({**r, "stream": feedback.stream}, self.endpoint)
                        for r in feedback.rejected
                    )
        finally:
            self._fb_lock.release()

    def _window_open(self) -> bool:
        while self._inflight and self._inflight[0] <= self._taken:
            self._inflight.popleft()
        if not self._inflight or self._closing:
            return True
        if self._legacy:  # a receiver that never answered: ZeroMQ's queue paces the slot's thread
            self._inflight.clear()
            return True
        if time.monotonic() - self._progress > (CREDIT_TIMEOUT if self._credit else FIRST_FEEDBACK_TIMEOUT):
            self._legacy = not self._credit  # never answered: a receiver without feedback
            self._inflight.clear()  # feedback lost (receiver restarted?): send anyway
            return True
        return False

    def _put_live(self, header: Header, array: np.ndarray[Any, Any]) -> None:
        key = header.layer or layer_name_from_path(header.path)
        with self._slot_cond:
            if key not in self._slot and len(self._slot) >= MAX_PENDING_LAYERS:
                if not self._slot_cond.wait_for(lambda: len(self._slot) < MAX_PENDING_LAYERS, self.send_timeout):
                    raise NoReceiverError(self.endpoint, self.send_timeout, self.hint)
            if self._slot.pop(key, None) is not None:
                self.conflated += 1
            self._slot[key] = (header, array)
            if self._slot_thread is None:
                self._closing = False
                self._slot_thread = threading.Thread(
                    target=self._slot_loop, name=f"polystore-sender {self.endpoint}", daemon=True
                )
                self._slot_thread.start()
            self._slot_cond.notify_all()

    def _slot_loop(self) -> None:
        """Send the newest frame of each live layer whenever the receiver has credit left."""
        while True:
            with self._slot_cond:
                while not self._slot and not self._closing:
                    self._slot_cond.wait(0.5)
                if not self._slot:
                    self._slot_thread = None  # under the lock: _put_live starts a new one
                    return
            if not self._window_open():
                self._read_feedback(10)
                continue
            with self._slot_cond:
                _key, (header, array) = self._slot.popitem(last=False)
                self._sending = True
                self._slot_cond.notify_all()
            try:
                self._send_from_slot(header, array)
            except Exception as exc:  # noqa: BLE001 - raised by the caller's next send
                self._slot_error = exc
            finally:
                with self._slot_cond:
                    self._sending = False
                    self._slot_cond.notify_all()

    def _send_from_slot(self, header: Header, array: np.ndarray[Any, Any]) -> None:
        """Send a frame taken from the slot, holding the sender's lock only once ZeroMQ can take it.

        A receiver that reads slowly fills the socket's queue; waiting for room
        with the lock held would make every ``send`` of the caller wait too.
        Raises :class:`NoReceiverError` when no room appears within ``send_timeout``.
        """
        deadline = time.monotonic() + self.send_timeout
        while True:
            with self._lock:
                if self._writable(array.nbytes):
                    self._send_locked(dataclasses.replace(header, seq=self._seq), array)
                    return
            if time.monotonic() >= deadline:
                raise NoReceiverError(self.endpoint, self.send_timeout, self.hint)
            with self._slot_cond:
                self._slot_cond.wait(0.005)

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every live frame in the send slot has been handed to ZeroMQ (sent, not just taken).

        Returns False if that took longer than ``timeout`` seconds (default:
        ``send_timeout``).
        """
        wait = self.send_timeout if timeout is None else timeout
        with self._slot_cond:
            self._closing = True
            self._slot_cond.notify_all()
            done = self._slot_cond.wait_for(lambda: not self._slot and not self._sending, wait)
            self._closing = False
        return done

    def _watch_connections(self, sock: Any) -> None:
        """Follow the PUSH socket's connections (called when it is created, flow control only)."""
        if self._inbox is not None:
            self._monitor = sock.get_monitor_socket(zmq.EVENT_DISCONNECTED)

    def _unwatch_connections(self, sock: Any) -> None:
        monitor, self._monitor = self._monitor, None
        if monitor is not None:
            sock.disable_monitor()
            monitor.close(0)

    def _read_connection_events(self) -> None:
        """A receiver that went away takes its unanswered frames with it: the next one starts afresh.

        Without this a restarted viewer would get no live frame until
        :data:`CREDIT_TIMEOUT` passed (the credit for the frames sent to the old
        one never comes). Called with ``_fb_lock`` held.
        """
        monitor = self._monitor
        if monitor is None:
            return
        while True:
            try:
                recv_monitor_message(monitor, zmq.NOBLOCK)
            except zmq.Again:
                return
            except zmq.ZMQError:
                return  # the socket is being closed
            self._inflight.clear()
            self._credit = self._legacy = False
