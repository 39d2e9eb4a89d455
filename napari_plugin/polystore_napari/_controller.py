"""Qt-free logic of the Stream receiver: socket -> placement -> napari layers.

:class:`StreamController` owns a :class:`~polystore.streaming.StreamReceiver`
(background thread, bounded queue, newest-wins per live layer) and a
:class:`~polystore.streaming.Placer` (N-D stacks). The GUI thread calls
:meth:`StreamController.tick` when woken; it takes everything queued and
applies one update per layer, so a slow viewer coalesces frames instead of
piling up events. The Qt widget only adds buttons, labels and the wake-up
signal.
"""

from __future__ import annotations

import collections
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from polystore.streaming.feedback import FeedbackOutbox
from polystore.streaming.napari import default_napari_endpoint
from polystore.streaming.placement import LayerUpdate, Placer
from polystore.streaming.receiver import DEFAULT_MAX_QUEUED_BYTES, Frame, StreamReceiver
from polystore_napari._annotation_layers import apply_annotation
from polystore_napari._layers import AxisOrder, apply_update, slider_axes
from polystore_napari._redraw import THUMBNAIL_PERIOD, refresh_stale_thumbnails

__all__ = ["StreamController", "StreamStatus", "apply_update"]


@dataclass(frozen=True)
class StreamStatus:
    """What the Stream receiver widget displays."""

    state: str  # "stopped" | "listening" | "connected"
    endpoint: str
    peers: int
    received: int
    shown: int  # layer updates applied to the viewer
    frames_per_second: float  # frames received in the last second
    shown_per_second: float  # layer updates applied in the last second
    coalesced: int  # live frames replaced by newer ones before being shown
    malformed: int
    gaps: int
    rejected: int  # frames that could not be placed (stack shape mismatch, too large)
    queued_bytes: int
    last_error: str
    #: Messages shown per kind: {"image": n, "labels": n, "points": n, "shapes": n}.
    kinds: dict[str, int] = field(default_factory=dict)

    def summary(self) -> str:
        """One line for a status label."""
        return (
            f"{self.state} {self.endpoint} | peers {self.peers} | received {self.received} "
            f"({self.frames_per_second:.0f}/s) | shown {self.shown} ({self.shown_per_second:.0f}/s) | "
            f"coalesced {self.coalesced} | malformed {self.malformed} | gaps {self.gaps} | "
            f"rejected {self.rejected}"
            + "".join(f" | {kind} {n}" for kind, n in self.kinds.items() if n and kind != "image")
        )


class StreamController:
    """Receive frames at an endpoint and show them in ``viewer``.

    ``wake`` is called on the receiver thread when frames arrive in an empty
    queue; it must arrange for :meth:`tick` to run on the GUI thread (the
    widget emits a queued Qt signal). Without ``wake``, call :meth:`tick` from
    a timer.
    """

    def __init__(
        self,
        viewer: Any,
        endpoint: str | None = None,
        *,
        wake: Callable[[], None] | None = None,
        max_queued_bytes: int = DEFAULT_MAX_QUEUED_BYTES,
        allow_remote: bool = False,
        curve_secret_key: bytes | str | None = None,
    ) -> None:
        self.viewer = viewer
        self.endpoint = endpoint or default_napari_endpoint()
        self.wake = wake
        self.max_queued_bytes = max_queued_bytes
        self.allow_remote = allow_remote
        self.curve_secret_key = curve_secret_key
        self.placer = Placer()
        self.axis_order = AxisOrder()
        self.feedback = FeedbackOutbox()
        self._last_updates: dict[str, LayerUpdate] = {}
        # (reply, stream) pairs already answered once (see _greet); the newest 256 are kept
        self._greeted: collections.OrderedDict[tuple[str, str], None] = collections.OrderedDict()
        self.receiver: StreamReceiver | None = None
        self.shown = 0
        self.kind_counts: dict[str, int] = {"image": 0, "labels": 0, "points": 0, "shapes": 0}
        self.latencies: collections.deque[float] = collections.deque(maxlen=1000)
        self._shown_times: collections.deque[float] = collections.deque(maxlen=4096)
        self._last_error = ""
        self.on_applied: Callable[[list[LayerUpdate]], None] | None = None

    @property
    def listening(self) -> bool:
        """True while the receiver is bound."""
        return self.receiver is not None and self.receiver.listening

    def start(self, endpoint: str | None = None) -> str:
        """Bind ``endpoint`` (default: the current one) and start receiving; returns the bound endpoint.

        Already listening there: nothing changes."""
        if self.listening and endpoint in (None, self.endpoint):
            return self.endpoint
        self.stop()
        if endpoint:
            self.endpoint = endpoint
        public = None
        if self.curve_secret_key is not None:
            import zmq

            public = zmq.curve_public(
                self.curve_secret_key.encode("ascii") if isinstance(self.curve_secret_key, str) else self.curve_secret_key
            )
        receiver = StreamReceiver(
            self.endpoint,
            coalesce=True,
            max_queued_bytes=self.max_queued_bytes,
            allow_remote=self.allow_remote,
            curve_secret_key=self.curve_secret_key,
            curve_public_key=public,
            on_frame=self._wake,
        )
        receiver.start()
        self.receiver = receiver
        self.endpoint = str(receiver.endpoint)
        return self.endpoint

    def stop(self) -> None:
        """Stop listening (layers stay; stacks are kept for a restart)."""
        if self.receiver is not None:
            self.receiver.stop()
            self.tick()
            self.receiver = None
        self.feedback.close()

    def _wake(self) -> None:
        if self.wake is not None:
            self.wake()

    def wait_until_received(
        self,
        count: int,
        sender_done: Callable[[], bool],
        process_events: Callable[[], object],
        timeout: float = 120.0,
    ) -> bool:
        """Keep applying frames until ``count`` messages arrived, the sender is done and
        nothing is left queued; False if ``timeout`` seconds pass first.

        ``process_events`` keeps the GUI alive meanwhile (``QApplication.processEvents``).
        """
        receiver = self.receiver
        if receiver is None:
            raise RuntimeError("the controller is not listening: call start() first")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            process_events()
            self.tick()
            stats = receiver.stats()
            if sender_done() and stats.received >= count and stats.queued_frames == 0:
                return True
            time.sleep(0.02)
        return False

    def tick(self) -> int:
        """Apply every queued frame to the viewer (GUI thread); returns updates applied."""
        receiver = self.receiver
        if receiver is None:
            return 0
        frames = receiver.take()
        if not frames:
            return 0
        self._greet(frames)
        images = [frame for frame in frames if frame.annotation is None]
        updates = self.placer.place(images)
        for frame, reason in self.placer.refused:
            header = frame.header
            self.feedback.report_rejected(header.stream, header.seq, header.path, frame.layer, reason)
        now = time.time()
        for update in updates:
            if update.stacked and update.name not in self.viewer.layers:
                update.reassign = True  # the user closed the layer: show the whole stack again
            if self.axis_order.add(slider_axes(update)):
                self._reembed(update.name)
            if self._apply(update):
                self.shown += 1
                self._shown_times.append(now)
                self.latencies.append(now - update.sent)
        # labels, points and shapes after the images, so a new annotation layer lies over its image
        shown_annotations = sum(self._apply_annotation(frame) for frame in frames if frame.annotation is not None)
        self._send_feedback(frames)
        self.kind_counts["image"] += len(updates)
        if self.on_applied is not None:
            self.on_applied(updates)
        return len(updates) + shown_annotations

    def refresh_thumbnails(self) -> int:
        """Update layer thumbnails that live frames redrawn in place left stale (GUI thread).

        The receiver widget calls this twice a second, so a thumbnail is right
        within about a second of the last frame; returns how many were updated.
        """
        return refresh_stale_thumbnails(THUMBNAIL_PERIOD / 2)

    def _apply_annotation(self, frame: Frame) -> bool:
        """Show a labels/points/shapes message (replacing its layer); False if it failed."""
        try:
            apply_annotation(self.viewer, frame)
        except Exception as exc:  # noqa: BLE001 - one bad message must not stop the stream
            self._last_error = f"{frame.layer}: {exc!r}"[:500]
            return False
        self.shown += 1
        self.kind_counts[frame.header.kind] += 1
        return True

    def _apply(self, update: LayerUpdate) -> bool:
        try:
            apply_update(self.viewer, update, self.axis_order.axes)
        except Exception as exc:  # noqa: BLE001 - one bad update must not stop the stream
            self._last_error = f"{update.name}: {exc!r}"[:500]
            return False
        self._last_updates[update.name] = update
        return True

    def _reembed(self, skip: str) -> None:
        """A new axis appeared: give every other stream layer the new set of dimensions."""
        for name, update in list(self._last_updates.items()):
            if name == skip or name not in self.viewer.layers:
                self._last_updates.pop(name, None)
                continue
            update.reassign = True
            self._apply(update)

    def _greet(self, frames: list[Frame]) -> None:
        """Answer the first frame of each new stream at once, before it is applied.

        Creating a stream's first layer can take seconds on a loaded machine; a
        sender that hears nothing for ``FIRST_FEEDBACK_TIMEOUT`` (5 s) takes the
        viewer for one that never answers and stops waiting for credit, and then
        sends frames the viewer drops. Later frames are answered once applied.
        """
        new = []
        for frame in frames:
            reply = frame.header.reply
            if reply is not None and (reply, frame.header.stream) not in self._greeted:
                self._greeted[(reply, frame.header.stream)] = None
                new.append(frame)
        while len(self._greeted) > 256:
            self._greeted.popitem(last=False)
        if new:
            self._send_feedback(new)

    def _send_feedback(self, frames: list[Frame]) -> None:
        """Tell each sender which of its frames were applied (its credit) and what was refused."""
        newest: dict[tuple[str, str], int] = {}
        for frame in frames:
            reply = frame.header.reply
            if reply is not None:
                key = (reply, frame.header.stream)
                newest[key] = max(newest.get(key, -1), frame.header.seq)
        if newest:
            self.feedback.send((reply, stream, seq) for (reply, stream), seq in newest.items())

    def status(self) -> StreamStatus:
        """Counters for the widget (any thread)."""
        now = time.time()
        shown_rate = float(sum(1 for t in self._shown_times if now - t <= 1.0))
        receiver = self.receiver
        if receiver is None:
            return StreamStatus(
                "stopped", self.endpoint, 0, 0, self.shown, 0.0, shown_rate, 0, 0, 0,
                self.placer.rejected, 0, self._last_error or self.placer.last_error, dict(self.kind_counts),
            )
        stats = receiver.stats()
        state = "connected" if stats.peers > 0 else ("listening" if stats.listening else "stopped")
        return StreamStatus(
            state=state,
            endpoint=stats.endpoint,
            peers=stats.peers,
            received=stats.received,
            shown=self.shown,
            frames_per_second=stats.frames_per_second,
            shown_per_second=shown_rate,
            coalesced=stats.replaced,
            malformed=stats.malformed,
            gaps=stats.gaps,
            rejected=self.placer.rejected,
            queued_bytes=stats.queued_bytes,
            last_error=self._last_error or self.placer.last_error or stats.last_error,
            kinds=dict(self.kind_counts),
        )
