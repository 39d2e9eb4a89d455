"""Frames a receiver could not place, reported back to the sender.

A receiver (the napari Stream receiver, the Fiji bridge) refuses a valid
message it cannot place: a frame whose dtype or shape differs from the stack
it is indexed into, an axis the viewer has no place for, a stack over the
receiver's size limit. It reports each such frame as a :class:`RejectedFrame`;
whatever carries the report back (the Fiji bridge's control socket, the
napari receiver's feedback channel) hands it to the sender's
:class:`RejectionLog` with :meth:`RejectionLog.report`.

The sender then surfaces the reports on its **next** ``save``/``save_batch``,
before that message is built, according to the backend's ``on_rejected``
policy:

* ``"warn"`` (default): one :class:`RejectedFrameWarning` naming how many
  frames were refused, the first one's path, layer and reason;
* ``"raise"``: :class:`RejectedFrameError` (a ``StorageError``) instead; the
  new frame is not sent;
* ``"ignore"``: nothing (the reports stay readable in
  :attr:`RejectionLog.recent` and :attr:`RejectionLog.total`).

Reports are surfaced once; :attr:`RejectionLog.total` keeps counting.
"""

from __future__ import annotations

import os
import sys
import threading
import warnings
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

from polystore.streaming.errors import StreamingError

__all__ = [
    "RejectedFrame",
    "RejectedFrameWarning",
    "RejectedFrameError",
    "RejectionLog",
    "RejectionPolicy",
    "REJECTION_POLICIES",
]

#: What a sender does with reports of rejected frames (see the module docstring).
RejectionPolicy = Literal["warn", "raise", "ignore"]
REJECTION_POLICIES: tuple[str, ...] = ("warn", "raise", "ignore")


@dataclass(frozen=True)
class RejectedFrame:
    """One valid message a receiver refused to place, and why."""

    stream: str
    seq: int
    path: str
    layer: str
    reason: str
    receiver: str = ""

    @classmethod
    def from_dict(cls, raw: Mapping[str, Any], receiver: str = "") -> RejectedFrame:
        """Build from a JSON report ``{"stream", "seq", "path", "layer", "reason"}``."""
        return cls(
            stream=str(raw.get("stream", "")),
            seq=int(raw.get("seq", -1)),
            path=str(raw.get("path", "")),
            layer=str(raw.get("layer", "")),
            reason=str(raw.get("reason", "")),
            receiver=str(raw.get("receiver", receiver)),
        )

    def describe(self) -> str:
        """``"message 3 ('a/t3.tif' -> layer 'a'): reason"``."""
        where = f" on {self.receiver}" if self.receiver else ""
        return f"message {self.seq} ({self.path!r} -> layer {self.layer!r}){where}: {self.reason}"


class RejectedFrameWarning(UserWarning):
    """A receiver refused frames this sender sent earlier (see :class:`RejectionLog`)."""


class RejectedFrameError(StreamingError):
    """A receiver refused frames this sender sent earlier (``on_rejected="raise"``)."""

    def __init__(self, message: str, frames: list[RejectedFrame]) -> None:
        super().__init__(message)
        self.frames = frames


class RejectionLog:
    """Thread-safe record of the rejected frames reported for one sender.

    :meth:`report` may be called from any thread; :meth:`surface` is called by
    the sender before each new message and warns or raises once per batch of
    new reports.
    """

    def __init__(self, policy: RejectionPolicy = "warn", keep: int = 100) -> None:
        if policy not in REJECTION_POLICIES:
            raise ValueError(f"on_rejected must be one of {REJECTION_POLICIES}, not {policy!r}")
        self.policy: RejectionPolicy = policy
        self._lock = threading.Lock()
        self._recent: deque[RejectedFrame] = deque(maxlen=keep)
        self._new: list[RejectedFrame] = []
        self._total = 0
        #: True while reports wait to be surfaced (a cheap check for the send path).
        self.pending = False

    def report(self, frames: Iterable[RejectedFrame]) -> None:
        """Record rejected frames (from any thread); the next send surfaces them."""
        with self._lock:
            for frame in frames:
                self._recent.append(frame)
                if len(self._new) < 1000:
                    self._new.append(frame)
                self._total += 1
            self.pending = bool(self._new)

    @property
    def total(self) -> int:
        """Rejected frames reported so far."""
        return self._total

    @property
    def recent(self) -> list[RejectedFrame]:
        """The last reports (at most ``keep``), oldest first."""
        with self._lock:
            return list(self._recent)

    def take_new(self) -> list[RejectedFrame]:
        """The reports not surfaced yet; marks them surfaced."""
        with self._lock:
            new, self._new = self._new, []
            self.pending = False
            return new

    def surface(self, endpoint: str = "") -> None:
        """Warn about (or raise for) new reports, per :attr:`policy`; no-op when none.

        The warning points at the caller's line (the first frame outside polystore).
        """
        if not self.pending:
            return
        new = self.take_new()
        if not new or self.policy == "ignore":
            return
        first = new[0]
        where = f" at {endpoint}" if endpoint else ""
        message = (
            f"the receiver{where} refused {len(new)} frame(s) sent earlier "
            f"({self._total} in all); first: {first.describe()}. Frames indexed into a stack must "
            "match its dtype and shape (close or rename the layer to start a new stack)"
        )
        if self.policy == "raise":
            raise RejectedFrameError(message, new)
        warnings.warn(message, RejectedFrameWarning, stacklevel=_caller_level())


_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _caller_level() -> int:
    """``stacklevel`` of the first frame outside the polystore package (seen from ``warn``)."""
    level = 1
    frame = sys._getframe(1)
    while frame is not None and os.path.abspath(frame.f_code.co_filename).startswith(_PACKAGE_DIR + os.sep):
        frame = frame.f_back  # type: ignore[assignment]
        level += 1
    return level
