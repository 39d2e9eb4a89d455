"""What a receiver hands its consumer: :class:`Frame`, and the bounded :class:`FrameQueue`.

The queue is bounded in bytes (payloads and headers) and in frames; live
frames (no ``index``) are coalesced per layer, newest wins, and indexed frames
(stacks) are all kept in order. See :mod:`polystore.streaming.receiver`.
"""

from __future__ import annotations

import collections
import threading
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from polystore.streaming.placement import layer_name_from_path
from polystore.streaming.protocol import Header

__all__ = ["Frame", "FrameQueue", "DEFAULT_MAX_QUEUED_BYTES", "DEFAULT_MAX_QUEUED_FRAMES"]

#: Default byte budget of a receiver's queue (512 MiB, headers included).
DEFAULT_MAX_QUEUED_BYTES = 512 * 1024**2
#: Default cap on the number of queued frames, whatever their size.
DEFAULT_MAX_QUEUED_FRAMES = 1024


@dataclass(frozen=True)
class Frame:
    """One received image: its validated header, the array and when it arrived."""

    header: Header
    data: np.ndarray[Any, Any]
    received: float  # time.time() when the receiver thread took it off the socket
    header_bytes: int = 0  # size of the JSON header on the wire
    #: The labels, points or shapes of a version-2 message (None for images).
    annotation: Any = None

    def __init__(
        self,
        header: Header,
        data: np.ndarray[Any, Any],
        received: float,
        header_bytes: int = 0,
        annotation: Any = None,
    ) -> None:
        # Written by hand (the dataclass keeps it): a frozen dataclass's own
        # __init__ sets each field through object.__setattr__, ~1 us more per
        # received message, which shows with small frames.
        values = self.__dict__
        values["header"] = header
        values["data"] = data
        values["received"] = received
        values["header_bytes"] = header_bytes
        values["annotation"] = annotation

    @property
    def nbytes(self) -> int:
        """What the frame costs the queue: payload plus header bytes."""
        return int(self.data.nbytes) + self.header_bytes

    @property
    def layer(self) -> str:
        """The target layer: the header's ``layer`` or the name derived from ``path``."""
        return self.header.layer or layer_name_from_path(self.header.path)

    @property
    def live(self) -> bool:
        """True for frames that replace what a layer shows (no ``index``)."""
        return self.header.index is None


class FrameQueue:
    """A bounded queue: newest-wins per live layer, every indexed frame kept.

    Bounded in bytes (payload and header) and in frames. Thread-safe. ``put``
    never blocks; producers check :meth:`has_room` (or :meth:`wait_for_room`)
    first. A frame larger than the whole budget is still accepted into an
    empty queue so it cannot wedge the stream.
    """

    def __init__(
        self,
        max_bytes: int = DEFAULT_MAX_QUEUED_BYTES,
        coalesce: bool = True,
        max_frames: int = DEFAULT_MAX_QUEUED_FRAMES,
    ) -> None:
        self.max_bytes = int(max_bytes)
        self.max_frames = max(1, int(max_frames))
        self.coalesce = coalesce
        self._items: collections.OrderedDict[Any, Frame] = collections.OrderedDict()
        self._bytes = 0
        self._counter = 0
        self.replaced = 0
        self.taken = 0
        self._cond = threading.Condition()

    def _key(self, frame: Frame) -> Any:
        if self.coalesce and frame.live:
            return ("live", frame.layer)
        self._counter += 1
        return ("seq", self._counter)

    def _room(self) -> bool:
        return not self._items or (self._bytes < self.max_bytes and len(self._items) < self.max_frames)

    def has_room(self) -> bool:
        """True when the queue is under its byte and frame budgets (or empty)."""
        with self._cond:
            return self._room()

    def wait_for_room(self, timeout: float) -> bool:
        """Wait up to ``timeout`` s for room; returns :meth:`has_room`."""
        with self._cond:
            self._cond.wait_for(self._room, timeout)
            return self._room()

    def put(self, frame: Frame) -> bool:
        """Queue ``frame``; returns True if the queue was empty before (wake the consumer)."""
        with self._cond:
            was_empty = not self._items
            key = self._key(frame)
            old = self._items.pop(key, None)
            if old is not None:
                self._bytes -= old.nbytes
                self.replaced += 1
            self._items[key] = frame
            self._bytes += frame.nbytes
            self._cond.notify_all()
            return was_empty

    def take_all(self) -> list[Frame]:
        """Remove and return every queued frame in arrival order."""
        with self._cond:
            frames = list(self._items.values())
            self._items.clear()
            self._bytes = 0
            self.taken += len(frames)
            self._cond.notify_all()
            return frames

    def take_first(self, path: str | None = None, timeout: float | None = None) -> Frame | None:
        """Remove and return the oldest frame (whose path is ``path`` if given).

        Waits up to ``timeout`` s (forever for ``None``); returns None on timeout.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._cond:
            while True:
                for key, frame in self._items.items():
                    if path is None or frame.header.path == path:
                        del self._items[key]
                        self._bytes -= frame.nbytes
                        self.taken += 1
                        self._cond.notify_all()
                        return frame
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return None
                self._cond.wait(remaining)

    def empty(self) -> bool:
        """True when nothing is queued (a snapshot: other threads may put frames at once)."""
        return not self._items

    def __len__(self) -> int:
        with self._cond:
            return len(self._items)

    @property
    def nbytes(self) -> int:
        """Bytes currently queued (payloads and headers)."""
        with self._cond:
            return self._bytes
