"""The PUSH side: send one array per message to a receiver that binds PULL.

:class:`StreamSender` is shared by every streaming backend (generic, napari,
Fiji). It connects lazily, reconnects on its own when the receiver restarts
(ZeroMQ does that), never queues messages for a receiver that is not
connected (``ZMQ_IMMEDIATE``), and turns a send that cannot complete within
``send_timeout`` seconds into :class:`NoReceiverError` naming the endpoint.

With ``flow_control=True`` (the napari backend) live frames are paced by the
viewer's feedback: see :mod:`polystore.streaming.flow`.
"""

from __future__ import annotations

import atexit
import os
import secrets
import threading
import time
import weakref
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from polystore.streaming._zmq import send_message, zmq
from polystore.streaming.errors import NoReceiverError, StreamingError
from polystore.streaming.feedback import FeedbackInbox
from polystore.streaming.flow import CREDIT_TIMEOUT, FIRST_FEEDBACK_TIMEOUT, MAX_PENDING_LAYERS, FlowControl
from polystore.streaming.header_cache import HeaderTemplate
from polystore.streaming.protocol import Header, as_payload_array, build_header, encode_header
from polystore.streaming.rejections import RejectionLog, RejectionPolicy

__all__ = ["StreamSender", "configure_push", "default_sndhwm", "DEFAULT_SEND_TIMEOUT", "MAX_PENDING_LAYERS", "CREDIT_TIMEOUT", "FIRST_FEEDBACK_TIMEOUT"]

#: Seconds a send may wait for a receiver before raising (the issue asks <= 5 s).
DEFAULT_SEND_TIMEOUT = 5.0



def default_sndhwm(nbytes: int, queue_bytes: int = 32 * 1024**2) -> int:
    """The send high-water mark for messages of ``nbytes``: about ``queue_bytes`` queued, 2 to 1000 messages."""
    return max(2, min(1000, queue_bytes // max(nbytes, 1)))


def configure_push(sock: Any, sndhwm: int, send_timeout: float) -> None:
    """The options of a sender's PUSH socket (before ``connect``); see docs/streaming-protocol.md.

    No queueing for a receiver that is not connected (``IMMEDIATE``), at most
    ``sndhwm`` messages queued, sends and the close linger bounded by
    ``send_timeout`` seconds, reconnects every 50 ms to 1 s.
    """
    sock.setsockopt(zmq.IMMEDIATE, 1)
    sock.setsockopt(zmq.SNDHWM, sndhwm)
    sock.setsockopt(zmq.SNDTIMEO, int(send_timeout * 1000))
    sock.setsockopt(zmq.LINGER, int(send_timeout * 1000))
    sock.setsockopt(zmq.RECONNECT_IVL, 50)
    sock.setsockopt(zmq.RECONNECT_IVL_MAX, 1000)


_live_senders: weakref.WeakSet[StreamSender] = weakref.WeakSet()

# Bumped in a forked child: cheaper than asking os.getpid() on every send.
_forks = [0]


def _count_fork() -> None:
    _forks[0] += 1


os.register_at_fork(after_in_child=_count_fork)


class StreamSender(FlowControl):
    """A PUSH socket connected to ``endpoint`` that sends ``[header, payload]`` messages.

    Parameters
    ----------
    endpoint:
        ``tcp://host:port`` or ``ipc:///path``; the receiver binds it.
    send_timeout:
        Seconds one message may wait for a receiver; then :class:`NoReceiverError`.
    sndhwm:
        Messages ZeroMQ may queue towards a connected receiver before ``send``
        waits. ``None`` (default) sizes it from the first message so that about
        ``queue_bytes`` are queued (at least 2, at most 1000 messages): a short
        queue keeps save-to-display latency low when the receiver is the
        bottleneck.
    queue_bytes:
        Byte budget used to size ``sndhwm`` automatically (default 32 MiB).
    copy:
        ``False`` (default) sends the array's memory without copying it: do not
        modify the array until the receiver has it (a reused acquisition buffer
        should pass ``copy=True``).
    hint:
        Text appended to the no-receiver error telling the user how to start one.
    curve_server_key, curve_public_key, curve_secret_key:
        Z85 CURVE keys (``zmq.curve_keypair()``) for an encrypted, authenticated
        link to a receiver that listens with CURVE; a client keypair is generated
        when only the server key is given.
    on_rejected:
        ``"warn"`` (default), ``"raise"`` or ``"ignore"``: what the next send
        does when the receiver reported frames it refused
        (:mod:`polystore.streaming.rejections`; reports land in :attr:`rejections`).
    flow_control:
        Send live frames through a newest-only slot paced by the receiver's
        feedback (see the module docstring). Needs a loopback or ipc endpoint
        (the receiver answers on loopback); ignored otherwise. ``send`` then
        returns at once for live frames and the header it returns carries a
        provisional ``seq``.
    """

    def __init__(
        self,
        endpoint: str,
        *,
        send_timeout: float = DEFAULT_SEND_TIMEOUT,
        sndhwm: int | None = None,
        queue_bytes: int = 32 * 1024**2,
        copy: bool = False,
        hint: str = "",
        stream_id: str | None = None,
        curve_server_key: bytes | str | None = None,
        curve_public_key: bytes | str | None = None,
        curve_secret_key: bytes | str | None = None,
        on_rejected: RejectionPolicy = "warn",
        flow_control: bool = False,
    ) -> None:
        if send_timeout < 0:
            raise ValueError("send_timeout must be >= 0")
        self.endpoint = endpoint
        self.send_timeout = float(send_timeout)
        self.sndhwm = sndhwm
        self.queue_bytes = int(queue_bytes)
        self.copy = bool(copy)
        self.hint = hint
        self.stream_id = stream_id or secrets.token_hex(8)
        self._owner_pid = os.getpid()
        self._fork = _forks[0]
        self._curve = (curve_server_key, curve_public_key, curve_secret_key)
        self._seq = 0
        self._lock = threading.Lock()
        self._socket: Any = None
        self._context: Any = None
        self._pid = -1
        self._sock_fork = -1
        # The last header built and what it was built from: a repeat only patches seq and sent.
        self._template: HeaderTemplate | None = None
        self._template_args: tuple[Any, ...] = ()
        #: Frames the receiver reported it refused; surfaced by the next send.
        self.rejections = RejectionLog(on_rejected)
        self.flow_control = bool(flow_control) and _is_local(endpoint)
        #: Live frames replaced in the send slot by a newer one before being sent.
        self.conflated = 0
        self._reset_flow()
        _live_senders.add(self)

    @property
    def next_seq(self) -> int:
        """The sequence number the next message will carry."""
        return self._seq

    def _connect(self, nbytes: int = 0) -> Any:
        if self._socket is not None and self._sock_fork == _forks[0]:
            return self._socket
        hwm = self.sndhwm
        if hwm is None:
            hwm = default_sndhwm(nbytes, self.queue_bytes)
        # After a fork the parent's socket must not be touched: start afresh.
        # Each sender owns its context so close() can wait for queued messages
        # to leave (zmq_ctx_term honours the linger time) before returning.
        _flush_at_child_exit()
        self._context = zmq.Context()
        sock = self._context.socket(zmq.PUSH)
        configure_push(sock, hwm, self.send_timeout)
        server_key, public_key, secret_key = self._curve
        if server_key is not None:
            if not zmq.has("curve"):
                raise StreamingError("this libzmq was built without CURVE support")
            if public_key is None or secret_key is None:
                public_key, secret_key = zmq.curve_keypair()
            sock.curve_serverkey = _key(server_key)
            sock.curve_publickey = _key(public_key)
            sock.curve_secretkey = _key(secret_key)
        try:
            sock.connect(self.endpoint)
        except zmq.ZMQError as exc:
            sock.close(0)
            self._context.term()
            self._context = None
            raise StreamingError(f"cannot connect to {self.endpoint!r}: {exc}") from exc
        self._watch_connections(sock)
        self._socket = sock
        self._pid = os.getpid()
        self._sock_fork = _forks[0]
        return sock

    def build(
        self,
        data: Any,
        path: str,
        *,
        layer: str | None = None,
        axes: str | None = None,
        index: Mapping[str, int] | None = None,
        display: Mapping[str, Any] | None = None,
        meta: Mapping[str, Any] | None = None,
    ) -> tuple[Header, np.ndarray[Any, Any]]:
        """Validate ``data`` and build its header without sending (uses the next seq).

        First surfaces frames the receiver reported it refused (a
        :class:`~polystore.streaming.rejections.RejectedFrameWarning`, or
        :class:`~polystore.streaming.rejections.RejectedFrameError` with
        ``on_rejected="raise"``).
        """
        header, array, _encoded = self._build(data, path, layer, axes, index, display, meta)
        return header, array

    def _build(
        self,
        data: Any,
        path: str,
        layer: str | None,
        axes: str | None,
        index: Mapping[str, int] | None,
        display: Mapping[str, Any] | None,
        meta: Mapping[str, Any] | None,
    ) -> tuple[Header, np.ndarray[Any, Any], bytes]:
        """:meth:`build`, plus the encoded header."""
        if self.rejections.pending:
            self.rejections.surface(self.endpoint)
        if self._fork != _forks[0]:
            # A forked copy is a new stream: its own id, numbered from 0, so the
            # receiver's gap counting stays right for parent and children.
            self._fork = _forks[0]
            self._owner_pid = os.getpid()
            self.stream_id = secrets.token_hex(8)
            self._seq = 0
            self._socket = None
            self._template = None
            self._reset_flow()
        if self.flow_control and self._inbox is None:
            self._inbox = FeedbackInbox()
        array = as_payload_array(data)
        reply = None if self._inbox is None else self._inbox.endpoint
        args = (path, layer, axes, index, display, meta, array.dtype, array.shape, reply)
        template = self._template
        if template is not None and args == self._template_args:
            header, encoded = template.make(self._seq, time.time())
            return header, array, encoded
        header = build_header(
            array,
            path,
            stream=self.stream_id,
            seq=self._seq,
            layer=layer,
            axes=axes,
            index=index,
            display=display,
            meta=meta,
            reply=reply,
        )
        encoded = encode_header(header)
        self._template = HeaderTemplate.of(header, encoded)
        self._template_args = args
        return header, array, encoded

    def send(
        self,
        data: Any,
        path: str,
        *,
        layer: str | None = None,
        axes: str | None = None,
        index: Mapping[str, int] | None = None,
        display: Mapping[str, Any] | None = None,
        meta: Mapping[str, Any] | None = None,
    ) -> Header:
        """Send one array; returns the header sent.

        Returns once ZeroMQ has queued the message for a connected receiver;
        raises :class:`NoReceiverError` if that does not happen within
        ``send_timeout`` seconds (the message is then not sent). With flow
        control on and a receiver that answers, a live frame is put in the
        send slot instead and ``send`` returns at once; an error of the slot's
        thread is raised by the next ``send``.
        """
        self.check_feedback()
        with self._lock:
            header, array, encoded = self._build(data, path, layer, axes, index, display, meta)
            # Slot a live frame when the receiver answers with feedback, while the
            # first answer is awaited, and for a receiver silent for FIRST_FEEDBACK_TIMEOUT
            # (taken for one that never answers: the slot's thread then sends without
            # waiting for credit, and save still returns at once).
            if not (index is None and self._inbox is not None and (self._credit or self._legacy or self._inflight)):
                self._send_locked(header, array, encoded)
                return header
        self._put_live(header, array)  # outside the lock: the slot's thread needs it
        return header

    def send_many(
        self,
        items: Sequence[Any],
        paths: Sequence[str],
        **options: Any,
    ) -> list[Header]:
        """Send every item without waiting between them (ZeroMQ pipelines them)."""
        if len(items) != len(paths):
            raise ValueError(f"{len(items)} data items but {len(paths)} paths")
        unknown = sorted(set(options) - {"layer", "axes", "index", "display", "meta"})
        if unknown:
            raise TypeError(f"send_many() got unexpected options {unknown}")
        self.check_feedback()
        headers = []
        with self._lock:
            for data, path in zip(items, paths):
                header, array, encoded = self._build(
                    data, path, options.get("layer"), options.get("axes"), options.get("index"),
                    options.get("display"), options.get("meta"),
                )
                self._send_locked(header, array, encoded)
                headers.append(header)
        return headers

    def _send_locked(
        self, header: Header, array: np.ndarray[Any, Any], encoded: bytes | None = None, table: bytes | None = None
    ) -> None:
        sock = self._connect(array.nbytes)
        payload: Any = array.data if array.ndim else array.reshape(1).data
        frames = [encode_header(header) if encoded is None else encoded, payload]
        if table is not None:  # points and shapes: a third frame (polystore.streaming.annotation_wire)
            frames.append(table)
        try:
            send_message(sock, frames, self.copy)
        except zmq.Again:
            raise NoReceiverError(self.endpoint, self.send_timeout, self.hint) from None
        except zmq.ZMQError as exc:
            raise StreamingError(f"sending to {self.endpoint} failed: {exc}") from exc
        self._seq += 1
        if self._inbox is not None and header.index is None:
            self._inflight.append(header.seq)
            self._progress = time.monotonic()

    def _writable(self, nbytes: int) -> bool:
        """True when ZeroMQ takes a message at once (connects first; call with ``_lock`` held)."""
        return bool(self._connect(nbytes).getsockopt(zmq.EVENTS) & zmq.POLLOUT)

    def close(self, linger: float | None = None) -> None:
        """Close the socket, waiting up to ``linger`` s (default: send_timeout) for queued
        messages to reach the receiver. A later :meth:`send` reconnects."""
        if self._owner_pid == os.getpid():
            self.flush(linger)
            thread = self._slot_thread
            with self._slot_cond:
                self._closing = True
                self._slot_cond.notify_all()
            if thread is not None:
                thread.join(1.0)
            self._closing = False
        with self._lock:
            sock, self._socket = self._socket, None
            ctx, self._context = self._context, None
            if sock is not None and self._pid == os.getpid():
                with self._fb_lock:
                    self._unwatch_connections(sock)
                wait = self.send_timeout if linger is None else linger
                sock.close(int(wait * 1000))
                ctx.term()
            inbox, self._inbox = self._inbox, None
            if inbox is not None and self._owner_pid == os.getpid():
                inbox.close()

    def __enter__(self) -> StreamSender:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"StreamSender({self.endpoint!r}, stream={self.stream_id}, next_seq={self._seq})"


_exit_hook_pid = [0]


def _flush_at_child_exit() -> None:
    """Flush the senders at the end of a multiprocessing child too (once per process).

    A forked multiprocessing child leaves by ``os._exit`` after its
    finalizers, so atexit never runs there: a live frame waiting in the send
    slot (or queued in ZeroMQ) when the worker function returned would be
    lost. multiprocessing runs its exit finalizers in every child, however
    it ends normally.
    """
    pid = os.getpid()
    if _exit_hook_pid[0] == pid:
        return
    _exit_hook_pid[0] = pid
    import multiprocessing
    import multiprocessing.util

    if multiprocessing.parent_process() is not None:
        multiprocessing.util.Finalize(None, _flush_senders_at_exit, exitpriority=10)


def _is_local(endpoint: str) -> bool:
    """True for ipc endpoints and loopback tcp (a receiver there can answer on loopback)."""
    if endpoint.startswith("ipc://"):
        return True
    host = endpoint[len("tcp://") :].rsplit(":", 1)[0] if endpoint.startswith("tcp://") else ""
    return host in ("localhost", "[::1]") or host.startswith("127.")


def _key(value: bytes | str) -> bytes:
    return value.encode("ascii") if isinstance(value, str) else value


@atexit.register
def _flush_senders_at_exit() -> None:
    """Send what the send slots hold and give queued messages their linger time before exit.

    A forked child's copies of its parent's senders are skipped: their locks
    may have been held by another thread at the fork.
    """
    pid = os.getpid()
    for sender in list(_live_senders):
        if sender._owner_pid != pid:
            continue
        try:
            sender.close()
        except Exception:  # noqa: BLE001 - best effort at exit
            pass
