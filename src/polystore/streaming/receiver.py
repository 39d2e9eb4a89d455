"""The PULL side, Qt-free: a background thread drains the socket into a bounded queue.

:class:`StreamReceiver` binds a PULL socket and reads it on its own thread so
a busy consumer (a GUI thread drawing frames) never stalls the socket. Frames
go into a :class:`FrameQueue` that holds at most ``max_queued_bytes``:

* live frames (no ``index``) are coalesced per layer, newest wins: a slow
  consumer sees the latest image and memory stays flat;
* indexed frames (``index`` set, N-D stacks) are all kept, in order.

When the queue is full the thread stops reading, so ZeroMQ's high-water marks
push back on the sender (which then waits, and after its timeout raises)
instead of memory growing. Every message is validated by
:mod:`polystore.streaming.protocol`; invalid ones are dropped and counted, as
are gaps in each stream's sequence numbers.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from polystore.streaming._malloc import settle_malloc_thresholds
from polystore.streaming._zmq import recv_message, zmq
from zmq.utils.monitor import recv_monitor_message
from polystore.streaming.annotation_wire import decode_any, two_part_annotation
from polystore.streaming.endpoints import check_bind_allowed, prepare_ipc
from polystore.streaming.errors import ReceiveTimeoutError, StreamingError
from polystore.streaming.frames import DEFAULT_MAX_QUEUED_BYTES, DEFAULT_MAX_QUEUED_FRAMES, Frame, FrameQueue
from polystore.streaming.header_cache import HeaderCache
from polystore.streaming.protocol import DEFAULT_MAX_FRAME_BYTES, MAX_HEADER_BYTES, decode_message
from polystore.streaming.receiver_stats import ReceiverCounters, ReceiverStats

__all__ = [
    "Frame",
    "FrameQueue",
    "ReceiverStats",
    "StreamReceiver",
    "DEFAULT_MAX_QUEUED_BYTES",
    "DEFAULT_MAX_QUEUED_FRAMES",
    "DEFAULT_RCVHWM",
    "configure_pull",
]

#: ZeroMQ pipe depth (messages) in front of a receiver (docs/streaming-protocol.md, limits).
DEFAULT_RCVHWM = 16


def configure_pull(sock: Any, rcvhwm: int, max_frame_bytes: int) -> None:
    """The options of a receiver's PULL socket (before ``bind``): pipe depth, no linger, frame size cap."""
    sock.setsockopt(zmq.RCVHWM, rcvhwm)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.MAXMSGSIZE, max(max_frame_bytes, MAX_HEADER_BYTES))


class StreamReceiver:
    """Bind a PULL socket at ``endpoint`` and drain it on a background thread.

    Parameters
    ----------
    endpoint:
        Where to listen: ``tcp://127.0.0.1:PORT`` (port 0 picks a free one; see
        :attr:`endpoint` after :meth:`start`) or ``ipc:///path``.
    coalesce:
        Newest-wins for live frames (viewers). ``False`` keeps every frame
        (pull backends).
    max_queued_bytes:
        Byte budget of the queue (payloads and headers); above it the thread
        stops reading (backpressure).
    max_queued_frames:
        Cap on queued frames, so tiny frames with large headers stay bounded too.
    max_frame_bytes:
        Largest payload accepted; ZeroMQ drops a peer that sends a bigger frame
        before allocating it (``ZMQ_MAXMSGSIZE``).
    allow_remote:
        Needed to bind a non-loopback tcp address.
    curve_secret_key, curve_public_key:
        Z85 server keypair: only CURVE clients knowing the public key can connect.
    on_frame:
        Called on the receiver thread when a frame arrives in an empty queue
        (at most one wake-up per :meth:`take` by the consumer).
    threaded:
        ``True`` (default): a background thread drains the socket (viewers).
        ``False``: no thread; :meth:`get` and :meth:`take` read the socket in
        the calling thread (pull backends: no hand-off between threads, and
        unread messages wait in ZeroMQ, which pushes back on the sender).
    """

    def __init__(
        self,
        endpoint: str,
        *,
        coalesce: bool = True,
        max_queued_bytes: int = DEFAULT_MAX_QUEUED_BYTES,
        max_queued_frames: int = DEFAULT_MAX_QUEUED_FRAMES,
        max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES,
        rcvhwm: int = DEFAULT_RCVHWM,
        allow_remote: bool = False,
        curve_secret_key: bytes | str | None = None,
        curve_public_key: bytes | str | None = None,
        on_frame: Callable[[], None] | None = None,
        threaded: bool = True,
    ) -> None:
        check_bind_allowed(endpoint, allow_remote)
        self.threaded = threaded
        self._sock: Any = None
        self._ctx: Any = None
        self._pump_lock = threading.Lock()
        self.requested_endpoint = endpoint
        self.endpoint = endpoint
        self.max_frame_bytes = int(max_frame_bytes)
        self.rcvhwm = int(rcvhwm)
        self.queue = FrameQueue(max_queued_bytes, coalesce=coalesce, max_frames=max_queued_frames)
        self.on_frame = on_frame
        self._curve = (curve_secret_key, curve_public_key)
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._ready = threading.Event()
        self._bind_error: BaseException | None = None
        self._counters = ReceiverCounters(endpoint)
        self._rcvtimeo = 0  # RCVTIMEO last set on the socket (unthreaded reads)
        self._headers = HeaderCache()  # used by the one thread that reads the socket

    # -- lifecycle -------------------------------------------------------
    def start(self, timeout: float = 10.0) -> StreamReceiver:
        """Bind and start the thread; raises :class:`StreamingError` if binding fails."""
        if not self.threaded:
            if self._sock is None:
                try:
                    self._sock = self._open(monitor=False)[0]
                except Exception as exc:  # noqa: BLE001 - reported as a StreamingError
                    raise StreamingError(f"cannot listen on {self.requested_endpoint}: {exc}") from exc
                self._counters.set_listening(True, self.endpoint)
            return self
        if self._thread is not None and self._thread.is_alive():
            return self
        self._stop.clear()
        self._ready.clear()
        self._bind_error = None
        self._thread = threading.Thread(target=self._run, name=f"polystore-receiver {self.endpoint}", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout):
            self.stop()
            raise StreamingError(f"receiver at {self.endpoint} did not start within {timeout} s")
        if self._bind_error is not None:
            self._thread.join()
            raise StreamingError(f"cannot listen on {self.requested_endpoint}: {self._bind_error}") from self._bind_error
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop reading and close the socket (queued frames stay takeable)."""
        if not self.threaded:
            with self._pump_lock:
                sock, self._sock = self._sock, None
                if sock is not None:
                    sock.close(0)
                    self._ctx.term()
                self._counters.set_listening(False, self.endpoint)
            return
        self._stop.set()
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
        self._thread = None

    @property
    def listening(self) -> bool:
        """True while the socket is bound and the thread runs."""
        return self._counters.listening

    def __enter__(self) -> StreamReceiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- consumer side -----------------------------------------------------
    def take(self) -> list[Frame]:
        """Every queued frame (newest only per live layer), oldest first."""
        if not self.threaded:
            with self._pump_lock:
                self._pump(0)
        return self.queue.take_all()

    def get(self, path: str | None = None, timeout: float | None = None) -> Frame:
        """The oldest queued frame (for ``path`` if given), waiting up to ``timeout`` s."""
        frame = self.queue.take_first(path, timeout) if self.threaded else self._get_unthreaded(path, timeout)
        if frame is None:
            what = f"for {path!r} " if path is not None else ""
            raise ReceiveTimeoutError(f"no message {what}arrived at {self.endpoint} within {timeout} s")
        return frame

    def _get_unthreaded(self, path: str | None, timeout: float | None) -> Frame | None:
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._pump_lock:
            while True:
                if path is None and self._sock is not None and self.queue.empty():
                    return self._receive_direct(deadline)
                frame = self.queue.take_first(path, 0)
                if frame is not None:
                    return frame
                if not self.queue.has_room():
                    raise ReceiveTimeoutError(
                        f"no message for {path!r} at {self.endpoint}: the queue is full "
                        f"({self.queue.nbytes} bytes of other paths); load those first"
                    )
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return None
                if self._sock is None:
                    raise StreamingError(f"receiver at {self.endpoint} is not listening")
                self._pump(-1 if remaining is None else max(1, int(remaining * 1000)))

    def _pump(self, timeout_ms: int) -> None:
        """Read what is waiting (after up to ``timeout_ms`` for the first message)."""
        sock = self._sock
        if sock is None:
            return
        if not _readable(sock) and (timeout_ms == 0 or not sock.poll(timeout_ms, zmq.POLLIN)):
            return
        self._drain(sock)

    def _drain(self, sock: Any) -> None:
        """Take what is waiting (at most 256 messages, while the queue has room).

        Asks the socket whether a message is there (``ZMQ_EVENTS``, no system
        call) instead of ending every batch with a failed non-blocking read,
        which costs an exception per batch: with small frames a batch is often
        one message.
        """
        for _ in range(256):
            if not _readable(sock) or not self._receive_one(sock) or not self.queue.has_room():
                return

    def stats(self) -> ReceiverStats:
        """A snapshot of the counters (safe to call from any thread)."""
        snap = self._counters.snapshot()
        snap.replaced = self.queue.replaced
        snap.taken = self.queue.taken
        snap.queued_frames = len(self.queue)
        snap.queued_bytes = self.queue.nbytes
        return snap

    # -- the thread ----------------------------------------------------------
    def _open(self, monitor: bool = True) -> tuple[Any, Any]:
        # Checked before any socket exists: a socket left open by a failed
        # bind makes the context's garbage collection block for ever.
        prepare_ipc(self.requested_endpoint)
        # libzmq's I/O thread mallocs every received message: keep glibc from
        # handing those pages back and faulting them in again (see _malloc).
        settle_malloc_thresholds()
        # A context of its own: terminating it on stop waits until libzmq has
        # really closed the listening socket, so the endpoint is free at once.
        self._ctx = zmq.Context()
        sock = self._ctx.socket(zmq.PULL)
        mon = None
        try:
            configure_pull(sock, self.rcvhwm, self.max_frame_bytes)
            secret, public = self._curve
            if secret is not None:
                if not zmq.has("curve"):
                    raise StreamingError("this libzmq was built without CURVE support")
                sock.curve_server = True
                sock.curve_secretkey = secret.encode("ascii") if isinstance(secret, str) else secret
                if public is not None:
                    sock.curve_publickey = public.encode("ascii") if isinstance(public, str) else public
            mon = sock.get_monitor_socket(zmq.EVENT_ACCEPTED | zmq.EVENT_DISCONNECTED) if monitor else None
            sock.bind(self.requested_endpoint)
        except BaseException:
            if mon is not None:
                sock.disable_monitor()
                mon.close(0)
            sock.close(0)
            self._ctx.term()
            raise
        last = sock.getsockopt(zmq.LAST_ENDPOINT)
        self.endpoint = last.decode() if isinstance(last, bytes) else str(last)
        return sock, mon

    def _run(self) -> None:
        try:
            sock, monitor = self._open()
        except Exception as exc:  # noqa: BLE001 - reported to start()
            self._bind_error = exc
            self._ready.set()
            return
        self._counters.set_listening(True, self.endpoint)
        self._ready.set()
        poller = zmq.Poller()
        poller.register(sock, zmq.POLLIN)
        poller.register(monitor, zmq.POLLIN)
        try:
            while not self._stop.is_set():
                if not self.queue.has_room():
                    self._counters.backpressure_wait()
                    while not self._stop.is_set() and not self.queue.wait_for_room(0.05):
                        self._drain_monitor(monitor)
                    continue
                events = dict(poller.poll(50))
                if monitor in events:
                    self._drain_monitor(monitor)
                if sock in events:
                    # Drain what is there (bounded) before polling again: fewer
                    # GIL round trips, so ZeroMQ's small pipe rarely fills.
                    self._drain(sock)
        finally:
            self._counters.set_listening(False, self.endpoint)
            sock.disable_monitor()
            monitor.close(0)
            sock.close(0)
            self._ctx.term()

    def _drain_monitor(self, monitor: Any) -> None:
        while True:
            try:
                event = recv_monitor_message(monitor, zmq.NOBLOCK)
            except zmq.Again:
                return
            if event["event"] == zmq.EVENT_ACCEPTED:
                self._counters.peer(1)
            elif event["event"] == zmq.EVENT_DISCONNECTED:
                self._counters.peer(-1)

    def _receive_direct(self, deadline: float | None) -> Frame | None:
        """The next valid message, read in this thread and handed over without queueing it
        (``get()`` of any path on an empty queue); None when ``deadline`` passes first."""
        sock = self._sock
        while True:
            remaining = None if deadline is None else deadline - time.monotonic()
            if remaining is not None and remaining <= 0:
                return None
            want = -1 if remaining is None else max(1, int(remaining * 1000))
            # Set only when the timeout in force would end too early or more than 2 ms
            # past the deadline: a repeated load(timeout=T) then costs no option call.
            if want != self._rcvtimeo and not (0 < want <= self._rcvtimeo <= want + 2):
                sock.setsockopt(zmq.RCVTIMEO, want)
                self._rcvtimeo = want
            try:
                frames = recv_message(sock)
            except zmq.Again:
                return None
            frame = self._decode(frames)
            if frame is not None:
                self.queue.taken += 1
                return frame

    def _decode(self, frames: list[Any]) -> Frame | None:
        """Validate and count one message; None (counted as malformed) when it is invalid."""
        now = time.time()
        try:
            if len(frames) == 2:  # images and labels: decode_any's checks, one call less per message
                header, array = decode_message(frames, self.max_frame_bytes, self._headers)
                annotation = None if header.kind == "image" else two_part_annotation(header, array)
            else:
                header, array, annotation = decode_any(frames, self.max_frame_bytes, self._headers)
        except Exception as exc:  # noqa: BLE001 - ProtocolError, or anything odd: never kill the thread
            self._counters.error(str(exc), malformed=True)
            return None
        self._counters.count(header, now)
        return Frame(header, array, now, len(frames[0]), annotation)

    def _receive_one(self, sock: Any) -> bool:
        """Take one message off the socket; False when none was waiting."""
        try:
            frames = recv_message(sock, zmq.NOBLOCK)
        except zmq.Again:
            return False
        frame = self._decode(frames)
        if frame is None:
            return True
        if self.queue.put(frame) and self.on_frame is not None:
            try:
                self.on_frame()
            except Exception as exc:  # noqa: BLE001 - a consumer bug must not kill the thread
                self._counters.error(f"on_frame callback failed: {exc!r}")
        return True


def _readable(sock: Any) -> bool:
    """True when a message is waiting on ``sock`` (reads ``ZMQ_EVENTS``)."""
    return bool(sock.getsockopt(zmq.EVENTS) & zmq.POLLIN)
