"""The client of the Fiji bridge's control socket (JSON request -> JSON reply over REQ/REP)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from polystore.base import PathLike
from polystore.streaming._zmq import context, zmq
from polystore.streaming.errors import StreamingError

__all__ = ["FijiBridgeError", "FijiControl", "START_HINT", "control_endpoint"]

#: How to start a bridge; appended to errors.
START_HINT = (
    "Start the bridge with `python -m polystore.streaming.fiji start` (or FijiBridge().start()), "
    "or in Fiji with Plugins > Polystore > Start Polystore Bridge."
)


class FijiBridgeError(StreamingError):
    """The Fiji bridge did not answer, refused a request, or could not be started."""


class FijiControl:
    """A client of the bridge's control socket (JSON request -> JSON reply over REQ/REP).

    Each request uses a fresh REQ socket, so a bridge that died never leaves
    this object stuck; a request without an answer within ``timeout`` seconds
    raises :class:`FijiBridgeError` naming the endpoint. The bridge answers
    every request, with ``"ok": false`` and an ``error`` when it fails.
    """

    def __init__(self, endpoint: str, timeout: float = 5.0) -> None:
        self.endpoint = endpoint
        self.timeout = float(timeout)

    def request(self, cmd: str, timeout: float | None = None, **fields: Any) -> dict[str, Any]:
        """Send ``{"cmd": cmd, **fields}``; return the reply (raises unless it says ``ok``)."""
        wait = self.timeout if timeout is None else float(timeout)
        sock = context().socket(zmq.REQ)
        try:
            sock.setsockopt(zmq.LINGER, 0)
            sock.setsockopt(zmq.SNDTIMEO, int(wait * 1000))
            sock.connect(self.endpoint)
            sock.send(json.dumps({"cmd": cmd, **fields}).encode("utf-8"))
            if not sock.poll(int(wait * 1000), zmq.POLLIN):
                raise FijiBridgeError(
                    f"no Fiji bridge answered {cmd!r} at {self.endpoint} within {wait:g} s. {START_HINT}"
                )
            reply = json.loads(sock.recv().decode("utf-8"))
        except zmq.Again:
            raise FijiBridgeError(
                f"no Fiji bridge took {cmd!r} at {self.endpoint} within {wait:g} s. {START_HINT}"
            ) from None
        except zmq.ZMQError as exc:
            raise FijiBridgeError(f"control request {cmd!r} to {self.endpoint} failed: {exc}") from exc
        finally:
            sock.close(0)
        if not isinstance(reply, dict):
            raise FijiBridgeError(f"the Fiji bridge at {self.endpoint} sent a non-object reply: {reply!r}")
        if not reply.get("ok"):
            raise FijiBridgeError(f"the Fiji bridge at {self.endpoint} refused {cmd!r}: {reply.get('error')}")
        return reply

    def ping(self, timeout: float | None = None) -> dict[str, Any]:
        """``{"reply": "pong", "version", "imagej", "gui", "pid", "output_dir", ...}``."""
        return self.request("ping", timeout)

    def status(self, timeout: float | None = None) -> dict[str, Any]:
        """Counters (``received``, ``placed``, ``dropped``, ``rejected``, ``replaced``, ``malformed``),
        ``last_error``, per-stream ``{"messages", "last_seq", "rejected"}`` and the images."""
        return self.request("status", timeout)

    def rejected(self, stream: str, after: int = 0, timeout: float | None = None) -> dict[str, Any]:
        """Frames of ``stream`` the bridge refused to place: ``{"total": n, "rejected": [...]}``.

        Each report is ``{"stream", "seq", "path", "layer", "reason", "number"}``;
        only reports numbered ``>= after`` are returned (the bridge keeps the last 100).
        """
        return self.request("rejected", timeout, stream=stream, after=int(after))

    def save_tiff(
        self, title: str, path: PathLike, overwrite: bool = False, timeout: float | None = None
    ) -> Path:
        """Ask ImageJ to save the image ``title`` as a TIFF; returns where it was written.

        The bridge writes only inside the output folder it was started with
        (``ping()["output_dir"]``): a relative ``path`` is taken inside it, an
        absolute one must lie in it. Symlinks are refused, and an existing file
        is replaced only with ``overwrite=True``.
        """
        reply = self.request("save_tiff", timeout, title=title, path=str(path), overwrite=bool(overwrite))
        return Path(reply["path"])

    def screenshot(
        self, title: str, path: PathLike, overwrite: bool = False, timeout: float | None = None
    ) -> dict[str, Any]:
        """Capture the window showing ``title`` (GUI bridge only) as TIFF, or PNG for ``*.png``.

        Same folder rules as :meth:`save_tiff`. Returns the reply: ``path``,
        ``window_title`` and ``bounds`` [x, y, w, h].
        """
        return self.request("screenshot", timeout, title=title, path=str(path), overwrite=bool(overwrite))

    def rois(self, layer: str | None = None, limit: int = 1000, timeout: float | None = None) -> dict[str, Any]:
        """The ROIs of the points and shapes layers the bridge shows (of ``layer`` only, if given).

        ``{"count": n, "manager_count": m, "rois": [...]}``: ``m`` is the count in
        ImageJ's ROI Manager (-1 when the bridge is headless, where ImageJ has no
        ROI Manager); each of the first ``limit`` ROIs is ``{"layer", "name",
        "type", "c", "z", "t", "points", "bounds", "polystore"}`` (positions
        1-based, 0 for none; ``polystore`` the JSON of its axes and properties).
        """
        fields: dict[str, Any] = {"limit": int(limit)}
        if layer is not None:
            fields["layer"] = layer
        return self.request("rois", timeout, **fields)

    def close_image(self, title: str, timeout: float | None = None) -> None:
        """Close the image or ROI layer ``title`` in ImageJ (the next message for it starts afresh)."""
        self.request("close", timeout, title=title)

    def quit(self, timeout: float | None = None) -> None:
        """Ask the bridge to stop (a bridge started from the command line then exits)."""
        self.request("quit", timeout)

    def wait_for_stream(self, stream_id: str, last_seq: int, timeout: float = 10.0) -> dict[str, Any]:
        """Wait until the bridge has handled message ``last_seq`` of ``stream_id``; return status.

        "Handled" means placed, dropped, rejected (see ``last_error``) or replaced
        by a newer frame for the same image. The bridge answers as soon as that
        happens (no polling); raises :class:`FijiBridgeError` after ``timeout`` seconds.
        """
        return self.request(
            "wait",
            timeout + self.timeout,
            stream=stream_id,
            seq=int(last_seq),
            timeout_ms=int(timeout * 1000),
        )


def control_endpoint(endpoint: str, control_port: int | None) -> str:
    """The control endpoint next to a ``tcp://host:port`` data endpoint."""
    if not endpoint.startswith("tcp://"):
        raise ValueError(f"the Fiji bridge listens on tcp:// endpoints only, got {endpoint!r}")
    host, _, port = endpoint[len("tcp://") :].rpartition(":")
    control = int(port) + 1 if control_port is None else int(control_port)
    return f"tcp://{host}:{control}"
