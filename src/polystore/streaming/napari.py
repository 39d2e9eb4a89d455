"""``backend="napari"``: stream images into a live napari viewer.

The viewer side is the polystore napari plugin's **Stream receiver** widget
(``polystore_napari``), which binds a PULL socket at the endpoint; this module
only sends and never imports napari or Qt. ``launch=True`` starts a viewer
process with the receiver already listening (``python -m polystore_napari``),
records its PID and can stop it by that PID.

Default endpoint: ``$POLYSTORE_NAPARI_ENDPOINT`` if set, else
``tcp://127.0.0.1:5570`` (loopback only). An ``ipc://`` socket in the private
0700 runtime directory (:func:`polystore.streaming.endpoints.ipc_endpoint`)
works too.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import ClassVar

from polystore.streaming.backend import StreamingBackend
from polystore.streaming.endpoints import RemoteBindError, check_bind_allowed, runtime_dir, tcp_endpoint
from polystore.streaming.errors import StreamingError
from polystore.streaming.sender import DEFAULT_SEND_TIMEOUT
from polystore.streaming.viewer_process import ViewerProcess

__all__ = [
    "NapariStreamingBackend",
    "default_napari_endpoint",
    "display_problem",
    "DEFAULT_NAPARI_PORT",
    "ENDPOINT_ENV",
]

#: TCP port of the default napari endpoint where ipc sockets are unavailable.
DEFAULT_NAPARI_PORT = 5570
#: Environment variable overriding the default napari endpoint (sender and plugin).
ENDPOINT_ENV = "POLYSTORE_NAPARI_ENDPOINT"


def default_napari_endpoint() -> str:
    """The endpoint the napari backend and the plugin's receiver use by default.

    ``$POLYSTORE_NAPARI_ENDPOINT`` if set, else ``tcp://127.0.0.1:5570``
    (loopback only). Pass ``endpoint=ipc_endpoint("napari")`` (a socket in the
    private 0700 runtime directory) to keep other local users out; see
    ``docs/streaming-protocol.md`` for why tcp is the default.
    """
    env = os.environ.get(ENDPOINT_ENV)
    if env:
        return env
    return tcp_endpoint(DEFAULT_NAPARI_PORT)


def display_problem() -> str:
    """Why Qt would find no display here ("" when there is one).

    napari needs a display even for a hidden window; without one Qt aborts
    the process (SIGABRT), so launchers check first.
    """
    platform = os.environ.get("QT_QPA_PLATFORM", "")
    if sys.platform.startswith("linux") and platform in ("", "xcb") and not (
        os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY")
    ):
        return "no display (DISPLAY is not set)"
    return ""


class NapariStreamingBackend(StreamingBackend):
    """Send images to a napari viewer running the polystore Stream receiver.

    ``fm.save(img, "A01/site1_c2.tif", backend="napari")`` shows ``img`` in the
    layer ``"A01/site1_c2"`` (a later save to it replaces what it shows);
    ``layer="A01", index={"t": 3, "c": 1}`` places frames into an N-D layer
    with named sliders, keeping every frame. ``colormap``, ``contrast_limits``
    and ``scale`` pass through. With no viewer listening, ``save`` raises
    :class:`~polystore.streaming.errors.NoReceiverError` after ``send_timeout``.

    ``launch=True`` starts ``python -m polystore_napari`` (a viewer with the
    receiver listening on this endpoint) and waits up to ``launch_timeout`` s
    for it; :attr:`viewer_pid` is its PID and :meth:`stop_viewer` ends it.
    """

    _backend_type: ClassVar[str] = "napari"
    receiver_hint: ClassVar[str] = (
        "Start a receiver: open Plugins > polystore > Stream receiver in napari (it listens as soon "
        "as it opens; same endpoint), run `polystore serve napari` or "
        "`python -m polystore_napari --endpoint ENDPOINT`, or use NapariStreamingBackend(launch=True)."
    )

    def __init__(
        self,
        endpoint: str | None = None,
        port: int | None = None,
        host: str = "127.0.0.1",
        *,
        launch: bool = False,
        launch_timeout: float = 120.0,
        send_timeout: float = DEFAULT_SEND_TIMEOUT,
        copy: bool = False,
        curve_server_key: bytes | str | None = None,
        curve_public_key: bytes | str | None = None,
        curve_secret_key: bytes | str | None = None,
    ) -> None:
        if endpoint is None:
            endpoint = tcp_endpoint(port, host) if port is not None else default_napari_endpoint()
        super().__init__(
            "push",
            endpoint=endpoint,
            send_timeout=send_timeout,
            copy=copy,
            curve_server_key=curve_server_key,
            curve_public_key=curve_public_key,
            curve_secret_key=curve_secret_key,
            flow_control=True,
        )
        self._viewer: ViewerProcess | None = None
        self.viewer_log: Path | None = None
        if launch:
            self.launch_viewer(timeout=launch_timeout)

    @property
    def viewer_pid(self) -> int | None:
        """PID of the viewer started by :meth:`launch_viewer` (None if none)."""
        return None if self._viewer is None else self._viewer.pid

    @property
    def viewer_process(self) -> subprocess.Popen[bytes] | None:
        """The launched viewer process (None if none was launched or it was stopped)."""
        return None if self._viewer is None else self._viewer.process

    def launch_viewer(self, timeout: float = 120.0, show: bool = True) -> int:
        """Start a napari viewer process listening on :attr:`endpoint`; return its PID.

        Waits until the receiver is bound (or raises :class:`StreamingError`
        whose first line names the cause, e.g. a busy port, followed by the
        tail of the viewer's log, if it exits or takes longer than ``timeout``
        seconds). Needs the ``napari`` extra and a display. The viewer's
        runtime folder (``viewer-*``: ready file and log) is removed when it stops.
        """
        if self._viewer is not None and self._viewer.running():
            pid = self._viewer.pid
            assert pid is not None
            return pid
        try:  # the viewer process would refuse it too, but only after napari's start-up (seconds)
            check_bind_allowed(self.endpoint, allow_remote=False)
        except RemoteBindError as exc:
            raise StreamingError(f"cannot start a napari viewer: {exc}") from None
        problem = display_problem()
        if problem:
            raise StreamingError(f"cannot start a napari viewer: {problem}; run under Xvfb (xvfb-run -a ...)")
        workdir = Path(tempfile.mkdtemp(prefix="viewer-", dir=runtime_dir()))
        ready = workdir / "ready"
        self.viewer_log = workdir / "viewer.log"
        command = [
            sys.executable,
            "-m",
            "polystore_napari",
            "--endpoint",
            self.endpoint,
            "--ready-file",
            str(ready),
            "--cleanup-dir",  # the viewer removes it when it stops by itself
            str(workdir),
        ]
        if not show:
            command.append("--hidden")
        viewer = ViewerProcess(command, self.viewer_log, name="the napari viewer process", workdir=workdir)
        pid = viewer.spawn()
        self._viewer = viewer
        try:
            viewer.wait_ready(ready.exists, timeout, f"listening on {self.endpoint}")
        except StreamingError as exc:
            self._viewer = None
            reason = self.viewer_exit_reason(viewer)
            shutil.rmtree(workdir, ignore_errors=True)
            first, _, rest = str(exc).partition("\n")
            raise StreamingError(f"{first.split('; log ')[0]}: {reason}\n{rest}") from None
        return pid

    def viewer_exit_reason(self, viewer: ViewerProcess | None = None) -> str:
        """Why the viewer stopped, in its own words (its last ``polystore_napari:`` log line)."""
        viewer = viewer or self._viewer
        tail = viewer.log_tail(200) if viewer is not None else ""
        said = [line for line in tail.splitlines() if line.startswith("polystore_napari: ")]
        errors = [line[len("polystore_napari: ") :] for line in said if " listening on " not in line]
        if errors:
            return errors[-1]
        last = tail.splitlines()[-1:] if tail else []
        return f"its log ends with: {last[0]}" if last else "it gave no reason"

    def stop_viewer(self, timeout: float = 10.0) -> None:
        """Stop the launched viewer by its PID (SIGTERM, then SIGKILL after ``timeout``)."""
        viewer, self._viewer = self._viewer, None
        if viewer is not None:
            viewer.stop(timeout)

    def close(self) -> None:
        """Flush and close the socket; a launched viewer keeps running (see :meth:`stop_viewer`)."""
        super().close()
