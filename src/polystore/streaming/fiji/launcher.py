"""``FijiBridge``: start, query and stop a polystore Fiji bridge JVM by its PID."""

from __future__ import annotations

import atexit
import os
import shutil
import subprocess
from collections.abc import Sequence
from pathlib import Path

from polystore.base import PathLike
from polystore.streaming.endpoints import runtime_dir, tcp_endpoint
from polystore.streaming.fiji.backend import DEFAULT_FIJI_PORT
from polystore.streaming.fiji.control import FijiBridgeError, FijiControl
from polystore.streaming.fiji.jars import BRIDGE_MAIN_CLASS, bridge_classpath
from polystore.streaming.viewer_process import ViewerProcess

__all__ = ["FijiBridge"]

_started: list[FijiBridge] = []


class FijiBridge:
    """Start, query and stop a polystore Fiji bridge JVM.

    ``FijiBridge(port=5580).start()`` runs ``java ... polystore.fiji.BridgePlugin``
    headless, or with the ImageJ window when ``gui=True`` (default: when
    ``$DISPLAY`` is set), waits until it answers ``ping`` on the control port,
    and records its PID in :attr:`pid`. :meth:`stop` asks it to quit and, if it
    does not, signals that PID and no other process. A bridge started by this
    Python process is stopped when it exits unless ``detach=True``.

    ``output_dir`` is the only folder ``save_tiff``/``screenshot`` may write
    into (default: the bridge's own default, ``~/polystore-fiji``; see
    ``docs/fiji-bridge.md``).

    Use as a context manager::

        with FijiBridge(port=5580, output_dir="/data/out") as bridge:
            fm.save(img, "a.tif", backend="fiji")
            bridge.control.save_tiff("a", "a.tif")     # -> /data/out/a.tif
    """

    def __init__(
        self,
        port: int = DEFAULT_FIJI_PORT,
        control_port: int | None = None,
        host: str = "127.0.0.1",
        *,
        gui: bool | None = None,
        jar: PathLike | None = None,
        classpath: Sequence[PathLike] = (),
        java: str | None = None,
        java_options: Sequence[str] = (),
        log_path: PathLike | None = None,
        output_dir: PathLike | None = None,
        detach: bool = False,
    ) -> None:
        self.port = int(port)
        self.control_port = self.port + 1 if control_port is None else int(control_port)
        self.host = host
        self.gui = bool(os.environ.get("DISPLAY")) if gui is None else gui
        self.jar = jar
        self.classpath = list(classpath)
        self.java = java or os.environ.get("JAVA", "") or shutil.which("java") or "java"
        self.java_options = list(java_options)
        self.log_path = Path(log_path) if log_path else runtime_dir() / f"fiji-bridge-{self.port}.log"
        self.output_dir = None if output_dir is None else Path(output_dir).absolute()
        self.detach = detach
        self.endpoint = tcp_endpoint(self.port, host)
        self.control = FijiControl(tcp_endpoint(self.control_port, host))
        self._viewer: ViewerProcess | None = None
        self._pid: int | None = None

    @property
    def pid(self) -> int | None:
        """PID of the JVM this object started (None before :meth:`start`)."""
        return self._pid

    @property
    def process(self) -> subprocess.Popen[bytes] | None:
        """The running JVM process (None before :meth:`start` and after :meth:`stop`)."""
        return None if self._viewer is None else self._viewer.process

    def command(self) -> list[str]:
        """The java command line :meth:`start` runs."""
        cp = os.pathsep.join(bridge_classpath(self.jar, self.classpath))
        return [
            self.java,
            *self.java_options,
            *([] if self.gui else ["-Djava.awt.headless=true"]),
            "-cp",
            cp,
            BRIDGE_MAIN_CLASS,
            "--host",
            self.host,
            "--port",
            str(self.port),
            "--control-port",
            str(self.control_port),
            *([] if self.output_dir is None else ["--output-dir", str(self.output_dir)]),
            "--gui" if self.gui else "--headless",
        ]

    def start(self, timeout: float = 30.0) -> FijiBridge:
        """Start the JVM and wait until it answers ``ping``; raises :class:`FijiBridgeError`."""
        if self.running():
            return self
        command = self.command()
        if shutil.which(command[0]) is None and not Path(command[0]).exists():
            raise FijiBridgeError(
                f"no java executable {command[0]!r}; install a JDK/JRE "
                "(Debian: apt-get install openjdk-17-jdk-headless) or pass java="
            )
        viewer = ViewerProcess(command, self.log_path, name="the Fiji bridge", error=FijiBridgeError)
        self._pid = viewer.spawn()
        self._viewer = viewer
        if not self.detach:
            _started.append(self)
        try:
            viewer.wait_ready(self._answers, timeout, f"answering on {self.control.endpoint}")
        except FijiBridgeError:
            self.stop()
            raise
        return self

    def _answers(self) -> bool:
        """True once our JVM answers ping; raises if another process answers on the port."""
        try:
            reply = self.control.ping(timeout=0.25)
        except FijiBridgeError:
            return False
        if int(reply.get("pid", -1)) == self._pid:
            return True
        # Someone else answers on this port; ours most likely failed to bind.
        viewer = self._viewer
        assert viewer is not None and viewer.process is not None
        try:
            code: int | None = viewer.process.wait(5.0)
        except subprocess.TimeoutExpired:
            code = None
        tail = viewer.log_tail()
        self.stop()
        raise FijiBridgeError(
            f"another process (pid {reply.get('pid')}) already answers on "
            f"{self.control.endpoint}; stop it or choose other ports"
            + (f". The new bridge exited with code {code}:\n{tail}" if code is not None else "")
        )

    def log_tail(self, lines: int = 20) -> str:
        """The last lines of the bridge's log."""
        if self._viewer is not None:
            return self._viewer.log_tail(lines)
        return ViewerProcess([], self.log_path, name="").log_tail(lines)

    def running(self) -> bool:
        """True while the JVM started by this object is alive."""
        return self._viewer is not None and self._viewer.running()

    def stop(self, timeout: float = 10.0) -> None:
        """Ask the bridge to quit; signal its PID (TERM, then KILL) if it has not exited."""
        viewer, self._viewer = self._viewer, None
        if self in _started:
            _started.remove(self)
        if viewer is None:
            return
        viewer.stop(timeout, ask=self._ask_quit)

    def _ask_quit(self, timeout: float) -> bool:
        """Send quit only if the control port really is ours (not another bridge's)."""
        if int(self.control.ping(timeout=min(1.0, timeout)).get("pid", -1)) != self._pid:
            return False
        self.control.quit(timeout=min(2.0, timeout))
        return True

    def __enter__(self) -> FijiBridge:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"FijiBridge({self.endpoint!r}, control={self.control.endpoint!r}, pid={self._pid}, gui={self.gui})"


@atexit.register
def _stop_started_bridges() -> None:
    for bridge in list(_started):
        try:
            bridge.stop(timeout=3.0)
        except Exception:  # noqa: BLE001 - best effort at exit
            pass
