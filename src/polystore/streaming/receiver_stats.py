"""The counters of a :class:`~polystore.streaming.receiver.StreamReceiver`: :class:`ReceiverStats`, :class:`ReceiverCounters`.

The reading thread counts every message (valid, malformed, gaps in a
stream's sequence numbers); any thread may ask for a snapshot.
"""

from __future__ import annotations

import collections
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from polystore.streaming.header import Header

__all__ = ["ReceiverStats", "ReceiverCounters"]

#: Streams whose last sequence number is remembered (least recently seen dropped).
MAX_TRACKED_STREAMS = 1024


@dataclass
class ReceiverStats:
    """A snapshot of a receiver's counters."""

    listening: bool = False
    endpoint: str = ""
    peers: int = 0  # senders currently connected
    received: int = 0  # valid messages taken off the socket
    bytes_received: int = 0
    malformed: int = 0  # messages dropped by validation
    gaps: int = 0  # sequence numbers never seen (lost messages)
    out_of_order: int = 0  # a stream's seq went backwards (sender restarted)
    replaced: int = 0  # live frames superseded by a newer one before being taken
    taken: int = 0  # frames handed to the consumer
    queued_frames: int = 0
    queued_bytes: int = 0
    backpressure_waits: int = 0  # times reading paused because the queue was full
    frames_per_second: float = 0.0
    last_error: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


class ReceiverCounters:
    """A receiver's :class:`ReceiverStats`, updated under one lock (thread-safe)."""

    def __init__(self, endpoint: str) -> None:
        self._lock = threading.Lock()
        self._stats = ReceiverStats(endpoint=endpoint)
        self._last_seq: collections.OrderedDict[str, int] = collections.OrderedDict()
        self._arrivals: collections.deque[float] = collections.deque(maxlen=4096)
        self._newest: str | None = None  # the stream counted last (the newest entry of _last_seq)

    @property
    def listening(self) -> bool:
        """True while the receiver's socket is bound."""
        with self._lock:
            return self._stats.listening

    def set_listening(self, listening: bool, endpoint: str) -> None:
        """The socket was bound at ``endpoint`` (True) or closed (False: no peers left)."""
        with self._lock:
            self._stats.listening = listening
            self._stats.endpoint = endpoint
            if not listening:
                self._stats.peers = 0

    def peer(self, delta: int) -> None:
        """A sender connected (+1) or went away (-1)."""
        with self._lock:
            self._stats.peers = max(0, self._stats.peers + delta)

    def backpressure_wait(self) -> None:
        """Reading paused because the queue was full."""
        with self._lock:
            self._stats.backpressure_waits += 1

    def error(self, text: str, malformed: bool = False) -> None:
        """Remember ``text`` as the last error; ``malformed``: a message was dropped."""
        with self._lock:
            if malformed:
                self._stats.malformed += 1
            self._stats.last_error = text[:500]

    def count(self, header: Header, now: float) -> None:
        """A valid message arrived at ``now``: count it and any gap in its stream's ``seq``."""
        stream = header.stream
        seq = header.seq
        with self._lock:
            stats = self._stats
            stats.received += 1
            stats.bytes_received += header.nbytes
            self._arrivals.append(now)
            last_seq = self._last_seq
            if stream == self._newest:
                # the stream of the previous message: already the most recent entry
                last: int | None = last_seq[stream]
                last_seq[stream] = seq
            else:
                last = last_seq.pop(stream, None)
                last_seq[stream] = seq
                self._newest = stream
                while len(last_seq) > MAX_TRACKED_STREAMS:
                    last_seq.popitem(last=False)
            if last is not None:
                if seq > last + 1:
                    stats.gaps += seq - last - 1
                elif seq <= last:
                    stats.out_of_order += 1

    def snapshot(self) -> ReceiverStats:
        """A copy of the counters, with the arrivals of the last second as ``frames_per_second``."""
        now = time.time()
        with self._lock:
            snap = ReceiverStats(**{**self._stats.__dict__, "extra": dict(self._stats.extra)})
            recent = sum(1 for t in self._arrivals if now - t <= 1.0)
        snap.frames_per_second = float(recent)
        return snap
