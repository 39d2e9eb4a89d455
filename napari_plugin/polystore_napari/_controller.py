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
from dataclasses import dataclass
from typing import Any

from polystore.streaming.napari import default_napari_endpoint
from polystore.streaming.placement import LayerUpdate, Placer
from polystore.streaming.receiver import DEFAULT_MAX_QUEUED_BYTES, StreamReceiver

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

    def summary(self) -> str:
        """One line for a status label."""
        return (
            f"{self.state} {self.endpoint} | peers {self.peers} | received {self.received} "
            f"({self.frames_per_second:.0f}/s) | shown {self.shown} ({self.shown_per_second:.0f}/s) | "
            f"coalesced {self.coalesced} | malformed {self.malformed} | gaps {self.gaps} | "
            f"rejected {self.rejected}"
        )


def _fit_scale(scale: list[float], ndim: int) -> list[float]:
    """Pad (with 1) or trim a per-axis scale so it has one entry per data axis."""
    values = [float(s) for s in scale][-ndim:]
    return [1.0] * (ndim - len(values)) + values


def apply_update(viewer: Any, update: LayerUpdate) -> Any:
    """Show ``update`` in ``viewer`` (a napari Viewer or its plugin proxy); returns the layer.

    Creates the layer the first time (named ``update.name``, with the
    colormap/contrast limits/scale sent), replaces its data for live frames,
    refreshes it when a stack was written in place, and recreates it when the
    dimensionality or dtype changes.
    """
    display = update.display
    data = update.data
    layer = viewer.layers[update.name] if update.name in viewer.layers else None
    if layer is not None and (
        getattr(layer, "ndim", None) != data.ndim
        or getattr(layer.data, "dtype", None) != data.dtype
        or getattr(layer, "rgb", False)
    ):
        viewer.layers.remove(layer)
        layer = None
    if layer is None:
        kwargs: dict[str, Any] = {
            "name": update.name,
            "metadata": {"polystore": {"path": update.path, "meta": update.meta}},
            "rgb": False,
        }
        if len(update.axis_labels) == data.ndim:
            kwargs["axis_labels"] = update.axis_labels
        if "colormap" in display:
            kwargs["colormap"] = display["colormap"]
        if "contrast_limits" in display:
            kwargs["contrast_limits"] = display["contrast_limits"]
        if "scale" in display:
            kwargs["scale"] = _fit_scale(display["scale"], data.ndim)
        if display.get("auto_contrast"):
            kwargs["auto_contrast"] = True
        layer = viewer.add_image(data, **kwargs)
        if update.stacked and viewer.dims.ndim == data.ndim:
            viewer.dims.axis_labels = update.axis_labels
        return layer
    if "auto_contrast" in display and getattr(layer, "auto_contrast", None) != bool(display["auto_contrast"]):
        layer.auto_contrast = bool(display["auto_contrast"])
    if update.reassign:
        layer.data = data
    else:
        layer.refresh()
    if "colormap" in display and getattr(layer.colormap, "name", None) != display["colormap"]:
        layer.colormap = display["colormap"]
    if "contrast_limits" in display and list(layer.contrast_limits) != display["contrast_limits"]:
        layer.contrast_limits = display["contrast_limits"]
    if "scale" in display:
        scale = _fit_scale(display["scale"], data.ndim)
        if list(layer.scale) != scale:
            layer.scale = scale
    layer.metadata["polystore"] = {"path": update.path, "meta": update.meta}
    return layer


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
        self.receiver: StreamReceiver | None = None
        self.shown = 0
        self.latencies: collections.deque[float] = collections.deque(maxlen=1000)
        self._shown_times: collections.deque[float] = collections.deque(maxlen=4096)
        self._last_error = ""
        self.on_applied: Callable[[list[LayerUpdate]], None] | None = None

    @property
    def listening(self) -> bool:
        """True while the receiver is bound."""
        return self.receiver is not None and self.receiver.listening

    def start(self, endpoint: str | None = None) -> str:
        """Bind ``endpoint`` (default: the current one) and start receiving; returns the bound endpoint."""
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
        updates = self.placer.place(frames)
        now = time.time()
        for update in updates:
            if update.stacked and update.name not in self.viewer.layers:
                update.reassign = True  # the user closed the layer: show the whole stack again
            try:
                apply_update(self.viewer, update)
            except Exception as exc:  # noqa: BLE001 - one bad update must not stop the stream
                self._last_error = f"{update.name}: {exc!r}"[:500]
                continue
            self.shown += 1
            self._shown_times.append(now)
            self.latencies.append(now - update.sent)
        if self.on_applied is not None:
            self.on_applied(updates)
        return len(updates)

    def status(self) -> StreamStatus:
        """Counters for the widget (any thread)."""
        now = time.time()
        shown_rate = float(sum(1 for t in self._shown_times if now - t <= 1.0))
        receiver = self.receiver
        if receiver is None:
            return StreamStatus(
                "stopped", self.endpoint, 0, 0, self.shown, 0.0, shown_rate, 0, 0, 0,
                self.placer.rejected, 0, self._last_error or self.placer.last_error,
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
        )
