"""One way to run a viewer process: spawn it, wait until it listens, stop it by its PID.

Used by the napari launcher (``NapariStreamingBackend.launch_viewer``) and the
Fiji bridge launcher (``FijiBridge``). The process runs in its own session
(``start_new_session``) with its output in a log file; :meth:`ViewerProcess.stop`
signals that one PID (SIGTERM, then SIGKILL) and never looks processes up by
name.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time
from collections.abc import Callable, Sequence
from pathlib import Path

from polystore.streaming.errors import StreamingError

__all__ = ["ViewerProcess", "signal_pid"]


def signal_pid(pid: int, timeout: float, alive: Callable[[], bool]) -> None:
    """SIGTERM ``pid``, then SIGKILL if ``alive()`` still holds after ``timeout`` s.

    Only that PID is signalled; ``alive`` tells when it is gone (reaped child,
    or a check of ``/proc/PID`` guarding against a recycled PID).
    """
    for sig in (signal.SIGTERM, signal.SIGKILL):
        if not alive():
            return
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not alive():
                return
            time.sleep(0.05)


class ViewerProcess:
    """A viewer process started by this Python process, known by its PID.

    Parameters
    ----------
    command:
        The command line to run.
    log_path:
        File receiving the process's stdout and stderr.
    name:
        How errors name it ("the napari viewer", "the Fiji bridge").
    error:
        The :class:`StreamingError` subclass raised when it fails to start.
    workdir:
        A private folder of this process (ready file, log) removed by :meth:`stop`.
    """

    def __init__(
        self,
        command: Sequence[str],
        log_path: Path,
        *,
        name: str,
        error: type[StreamingError] = StreamingError,
        workdir: Path | None = None,
    ) -> None:
        self.command = list(command)
        self.log_path = log_path
        self.name = name
        self.error = error
        self.workdir = workdir
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int | None:
        """PID of the started process (None before :meth:`spawn`)."""
        return None if self.process is None else self.process.pid

    def spawn(self) -> int:
        """Start the process in its own session, output to :attr:`log_path`; return its PID."""
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                self.command,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        return self.process.pid

    def running(self) -> bool:
        """True while the process is alive."""
        return self.process is not None and self.process.poll() is None

    def wait_ready(self, ready: Callable[[], bool], timeout: float, what: str) -> None:
        """Poll ``ready()`` until it is true; raise :attr:`error` if the process exits first
        or after ``timeout`` s (then the process is stopped). ``what`` completes
        "exited before ..." / "did not ... within", e.g. "listening on tcp://...".
        """
        deadline = time.monotonic() + timeout
        while True:
            process = self.process
            if process is None:
                raise self.error(f"{self.name} was not started")
            code = process.poll()
            if code is not None:
                raise self.error(
                    f"{self.name} exited with code {code} before {what}; log {self.log_path}:\n{self.log_tail()}"
                )
            if ready():
                return
            if time.monotonic() > deadline:
                tail = self.log_tail()
                self.stop()
                raise self.error(
                    f"{self.name} was not {what} within {timeout:g} s; log {self.log_path}:\n{tail}"
                )
            time.sleep(0.05)

    def log_tail(self, lines: int = 20) -> str:
        """The last lines of the log ("" when there is none)."""
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self, timeout: float = 10.0, ask: Callable[[float], bool] | None = None) -> int | None:
        """Stop the process: ``ask(timeout)`` first (e.g. a quit request; True when it
        exited), then SIGTERM and SIGKILL to its PID. Returns its exit code (None if
        it was not running). Removes :attr:`workdir`.
        """
        process = self.process
        code: int | None = None
        if process is not None and process.poll() is None:
            asked = False
            if ask is not None:
                try:
                    asked = ask(timeout)
                except Exception:  # noqa: BLE001 - asking is best effort; signals follow
                    asked = False
            if asked:
                try:
                    process.wait(timeout)
                except subprocess.TimeoutExpired:
                    pass
            signal_pid(process.pid, timeout, lambda: process.poll() is None)
            code = process.poll()
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
        return code
