"""Feedback from a viewer to its senders: flow-control credit and rejected frames.

A sender that can be reached on loopback binds a small PULL socket at
``tcp://127.0.0.1:<free port>`` and names it in every header (``reply``). A
viewer (the napari Stream receiver) that has applied frames sends, per
stream, one JSON message to that address::

    {"v": 1, "kind": "feedback", "stream": "...", "taken": 41,
     "rejected": [{"seq": 40, "path": "A01/t3.tif", "layer": "A01",
                   "reason": "frame (64, 64) uint8 does not match the stack's ..."}]}

``taken`` is the highest ``seq`` of that stream the viewer has applied (the
sender's credit for live frames, see :class:`polystore.streaming.sender.StreamSender`);
``rejected`` lists the frames of that stream the viewer refused since the
last feedback (at most 32; the sender's
:class:`~polystore.streaming.rejections.RejectionLog` surfaces them on its
next save). Feedback is best effort: it is never queued for long, and a
sender that hears nothing falls back to sending every frame (protocol
version 1 behaviour). See ``docs/streaming-protocol.md``.
"""

from __future__ import annotations

import collections
import json
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from polystore.streaming._zmq import context, zmq

__all__ = ["Feedback", "FeedbackInbox", "FeedbackOutbox", "parse_feedback"]

_MAX_FEEDBACK_BYTES = 64 * 1024
_MAX_PEERS = 64
_MAX_REPORTS = 32


@dataclass(frozen=True)
class Feedback:
    """One feedback message for a stream."""

    stream: str
    taken: int
    rejected: tuple[dict[str, Any], ...] = ()

    def encode(self) -> bytes:
        """The JSON bytes sent on the wire."""
        body = {"v": 1, "kind": "feedback", "stream": self.stream, "taken": self.taken,
                "rejected": list(self.rejected[:_MAX_REPORTS])}
        return json.dumps(body, separators=(",", ":")).encode("utf-8")


def parse_feedback(data: bytes) -> Feedback | None:
    """Decode a feedback message; None for anything malformed (it is ignored)."""
    if len(data) > _MAX_FEEDBACK_BYTES:
        return None
    try:
        raw = json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None
    if type(raw) is not dict or raw.get("v") != 1 or raw.get("kind") != "feedback":
        return None
    stream, taken, rejected = raw.get("stream"), raw.get("taken"), raw.get("rejected", [])
    if type(stream) is not str or type(taken) is not int or type(rejected) is not list:
        return None
    reports = tuple(
        {"seq": r.get("seq", -1), "path": str(r.get("path", "")), "layer": str(r.get("layer", "")),
         "reason": str(r.get("reason", ""))[:1000]}
        for r in rejected[:_MAX_REPORTS]
        if type(r) is dict and type(r.get("seq", -1)) is int
    )
    return Feedback(stream, taken, reports)


class FeedbackInbox:
    """The sender's end: a PULL socket bound on loopback that collects feedback.

    Not thread-safe by itself; :class:`~polystore.streaming.sender.StreamSender`
    serialises access.
    """

    def __init__(self) -> None:
        sock = context().socket(zmq.PULL)
        sock.setsockopt(zmq.LINGER, 0)
        sock.setsockopt(zmq.RCVHWM, 256)
        sock.setsockopt(zmq.MAXMSGSIZE, _MAX_FEEDBACK_BYTES)
        sock.bind("tcp://127.0.0.1:0")
        last = sock.getsockopt(zmq.LAST_ENDPOINT)
        self.endpoint: str = last.decode() if isinstance(last, bytes) else str(last)
        self._sock: Any = sock

    def read(self, timeout_ms: int = 0) -> list[Feedback]:
        """Every feedback message waiting (after up to ``timeout_ms`` for the first)."""
        sock = self._sock
        out: list[Feedback] = []
        if sock is None or (timeout_ms and not sock.poll(timeout_ms, zmq.POLLIN)):
            return out
        while True:
            try:
                data = sock.recv(zmq.NOBLOCK)
            except zmq.Again:
                return out
            feedback = parse_feedback(data)
            if feedback is not None:
                out.append(feedback)

    def close(self) -> None:
        """Close the socket."""
        sock, self._sock = self._sock, None
        if sock is not None:
            sock.close(0)


class FeedbackOutbox:
    """The viewer's end: one PUSH socket per sender ``reply`` address (at most 64).

    Sends never block: feedback that cannot be queued is dropped (the sender
    then falls back to sending every frame). Thread-safe.
    """

    def __init__(self) -> None:
        self._socks: collections.OrderedDict[str, Any] = collections.OrderedDict()
        self._lock = threading.Lock()
        self._rejected: dict[str, list[dict[str, Any]]] = {}
        self.sent = 0

    def report_rejected(self, stream: str, seq: int, path: str, layer: str, reason: str) -> None:
        """Note a refused frame of ``stream``; it goes out with that stream's next feedback."""
        with self._lock:
            pending = self._rejected.setdefault(stream, [])
            if len(pending) < _MAX_REPORTS:
                pending.append({"seq": seq, "path": path, "layer": layer, "reason": reason[:1000]})
            while len(self._rejected) > 4 * _MAX_PEERS:
                del self._rejected[next(iter(self._rejected))]

    def send(self, replies: Iterable[tuple[str, str, int]]) -> None:
        """Send ``(reply, stream, taken)`` feedback, one message per stream."""
        with self._lock:
            for reply, stream, taken in replies:
                sock = self._socket(reply)
                if sock is None:
                    continue
                message = Feedback(stream, taken, tuple(self._rejected.pop(stream, ()))).encode()
                try:
                    sock.send(message, zmq.NOBLOCK)
                    self.sent += 1
                except zmq.ZMQError:
                    pass

    def _socket(self, reply: str) -> Any:
        sock = self._socks.pop(reply, None)
        if sock is None:
            sock = context().socket(zmq.PUSH)
            sock.setsockopt(zmq.LINGER, 0)
            sock.setsockopt(zmq.SNDHWM, 8)
            try:
                sock.connect(reply)
            except zmq.ZMQError:
                sock.close(0)
                return None
            while len(self._socks) >= _MAX_PEERS:
                self._socks.popitem(last=False)[1].close(0)
        self._socks[reply] = sock
        return sock

    def close(self) -> None:
        """Close every socket."""
        with self._lock:
            for sock in self._socks.values():
                sock.close(0)
            self._socks.clear()
