"""``backend="fiji"``: stream images into Fiji / ImageJ 1 as hyperstacks.

The receiving side is the polystore Fiji bridge, an ImageJ 1 plugin
(``fiji_bridge/`` in the source tree, ``docs/fiji-bridge.md``) that binds a
PULL socket at ``tcp://127.0.0.1:5580`` and answers JSON requests on a control
socket at the next port (``ping``, ``status``, ``save_tiff``, ``close``,
``quit``). This module only sends, talks to the control socket and starts or
stops a bridge JVM; it never imports Java.

* :class:`FijiStreamingBackend` sends with the shared
  :class:`~polystore.streaming.sender.StreamSender` (same wire format as
  napari). ImageJ holds uint8, uint16 and float32 pixels; other dtypes are
  converted by :func:`to_imagej_dtype` with a :class:`FijiConversionWarning`.
* :class:`FijiBridge` starts the bridge JVM (headless, or the ImageJ window
  when ``$DISPLAY`` is set), waits until it answers ``ping``, records its PID
  and stops it by that PID only.
* ``python -m polystore.streaming.fiji start|stop|status|ping|save-tiff|run``
  does the same from a shell (the PID is recorded in the polystore runtime
  directory).
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from polystore.base import PathLike
from polystore.exceptions import MissingDependencyError, StorageError, UnsupportedFormatError

try:
    import zmq
except ImportError as _exc:  # pragma: no cover - exercised only without pyzmq
    raise MissingDependencyError("pyzmq", "fiji", "the Fiji bridge backend") from _exc

from polystore.streaming.backend import StreamingBackend
from polystore.streaming.endpoints import runtime_dir, tcp_endpoint
from polystore.streaming.errors import StreamingError
from polystore.streaming.sender import DEFAULT_SEND_TIMEOUT

__all__ = [
    "FijiStreamingBackend",
    "FijiBridge",
    "FijiControl",
    "FijiBridgeError",
    "FijiConversionWarning",
    "to_imagej_dtype",
    "find_bridge_jar",
    "bridge_classpath",
    "DEFAULT_FIJI_PORT",
    "BRIDGE_MAIN_CLASS",
    "main",
]

#: Data (PULL) port of the bridge; its control (REP) port is this + 1.
DEFAULT_FIJI_PORT = 5580
#: Java class the launcher runs.
BRIDGE_MAIN_CLASS = "polystore.fiji.BridgePlugin"
#: Environment variables: the bridge jar, and extra classpath entries (ImageJ, JeroMQ jars).
JAR_ENV = "POLYSTORE_FIJI_JAR"
CLASSPATH_ENV = "POLYSTORE_FIJI_CLASSPATH"
_DEBIAN_JARS = ("/usr/share/java/ij.jar", "/usr/share/java/jeromq.jar")
_START_HINT = (
    "Start the bridge with `python -m polystore.streaming.fiji start` (or FijiBridge().start()), "
    "or in Fiji with Plugins > Polystore > Start Polystore Bridge."
)


class FijiBridgeError(StreamingError):
    """The Fiji bridge did not answer, refused a request, or could not be started."""


class FijiConversionWarning(UserWarning):
    """An array was converted to a dtype ImageJ can hold before it was sent."""


# ----------------------------------------------------------------------------- dtypes

#: ImageJ 1 pixel types: 8-bit, 16-bit unsigned, 32-bit float.
IMAGEJ_DTYPES = (np.dtype(np.uint8), np.dtype(np.uint16), np.dtype(np.float32))


def to_imagej_dtype(array: np.ndarray[Any, Any]) -> tuple[np.ndarray[Any, Any], str | None]:
    """Return ``array`` in a dtype ImageJ holds, and a note when it had to convert.

    The rule depends on the dtype only (never on the values), so every frame of
    a stream lands in the same hyperstack type:

    ========================================  ===========  ==========================
    sent dtype                                shown as     values
    ========================================  ===========  ==========================
    uint8, uint16, float32 (either byte order)  unchanged    exact
    bool                                      uint8        False -> 0, True -> 1
    int8, int16, float16                      float32      exact
    int32, uint32, int64, uint64              float32      exact up to 2**24, rounded above
    float64                                   float32      rounded to float32
    complex, anything else                    refused      UnsupportedFormatError
    ========================================  ===========  ==========================
    """
    dtype = array.dtype
    if dtype.newbyteorder("=") in IMAGEJ_DTYPES or dtype in IMAGEJ_DTYPES:
        return array, None
    kind, size = dtype.kind, dtype.itemsize
    if kind == "b":
        return array.astype(np.uint8), "bool converted to uint8 (0/1)"
    if (kind == "i" and size <= 2) or (kind == "f" and size == 2):
        return array.astype(np.float32), f"{dtype.name} converted to float32 (exact)"
    if kind in "iu":
        return (
            array.astype(np.float32),
            f"{dtype.name} converted to float32 (exact up to 2**24, rounded above)",
        )
    if kind == "f":
        return array.astype(np.float32), f"{dtype.name} converted to float32 (rounded)"
    raise UnsupportedFormatError(
        f"fiji: cannot show dtype {dtype} in ImageJ (it holds uint8, uint16 and float32); "
        "convert the array first, e.g. np.abs(z).astype(np.float32) for complex data"
    )


def _as_imagej_array(data: Any) -> np.ndarray[Any, Any]:
    try:
        from polystore.frameworks import to_numpy
    except ImportError:  # pragma: no cover - frameworks lands with the core
        array = np.asarray(data)
    else:
        array = np.asarray(to_numpy(data))
    converted, note = to_imagej_dtype(array)
    if note is not None:
        warnings.warn(
            f"fiji: {note}; ImageJ holds only uint8, uint16 and float32 pixels",
            FijiConversionWarning,
            stacklevel=4,
        )
    return converted


# ----------------------------------------------------------------------------- control


class FijiControl:
    """A client of the bridge's control socket (JSON request -> JSON reply over REQ/REP).

    Each request uses a fresh REQ socket, so a bridge that died never leaves
    this object stuck; a request without an answer within ``timeout`` seconds
    raises :class:`FijiBridgeError` naming the endpoint.
    """

    def __init__(self, endpoint: str, timeout: float = 5.0) -> None:
        self.endpoint = endpoint
        self.timeout = float(timeout)
        self._context: Any = None

    def request(self, cmd: str, timeout: float | None = None, **fields: Any) -> dict[str, Any]:
        """Send ``{"cmd": cmd, **fields}``; return the reply (raises unless it says ``ok``)."""
        wait = self.timeout if timeout is None else float(timeout)
        if self._context is None or self._context.closed:
            self._context = zmq.Context.instance()
        sock = self._context.socket(zmq.REQ)
        try:
            sock.setsockopt(zmq.LINGER, 0)
            sock.setsockopt(zmq.SNDTIMEO, int(wait * 1000))
            sock.connect(self.endpoint)
            sock.send(json.dumps({"cmd": cmd, **fields}).encode("utf-8"))
            if not sock.poll(int(wait * 1000), zmq.POLLIN):
                raise FijiBridgeError(
                    f"no Fiji bridge answered {cmd!r} at {self.endpoint} within {wait:g} s. {_START_HINT}"
                )
            reply = json.loads(sock.recv().decode("utf-8"))
        except zmq.Again:
            raise FijiBridgeError(
                f"no Fiji bridge took {cmd!r} at {self.endpoint} within {wait:g} s. {_START_HINT}"
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
        """``{"reply": "pong", "version", "imagej", "gui", "pid", ...}``."""
        return self.request("ping", timeout)

    def status(self, timeout: float | None = None) -> dict[str, Any]:
        """Counters (``received``, ``placed``, ``dropped``, ``replaced``, ``malformed``), ``last_error``,
        per-stream ``{"messages", "last_seq"}`` and the images with their dimensions."""
        return self.request("status", timeout)

    def save_tiff(self, title: str, path: PathLike, timeout: float | None = None) -> Path:
        """Ask ImageJ to save the image ``title`` as a TIFF at ``path`` (made absolute)."""
        target = Path(path).absolute()
        self.request("save_tiff", timeout, title=title, path=str(target))
        return target

    def screenshot(self, title: str, path: PathLike, timeout: float | None = None) -> dict[str, Any]:
        """Capture the window showing ``title`` (GUI bridge only) as TIFF, or PNG for ``*.png``.

        Returns the reply: ``path``, ``window_title`` and ``bounds`` [x, y, w, h].
        """
        target = Path(path).absolute()
        return self.request("screenshot", timeout, title=title, path=str(target))

    def close_image(self, title: str, timeout: float | None = None) -> None:
        """Close the image ``title`` in ImageJ (the next frame for it starts afresh)."""
        self.request("close", timeout, title=title)

    def quit(self, timeout: float | None = None) -> None:
        """Ask the bridge to stop (a bridge started from the command line then exits)."""
        self.request("quit", timeout)

    def wait_for_stream(self, stream_id: str, last_seq: int, timeout: float = 10.0) -> dict[str, Any]:
        """Wait until the bridge has handled message ``last_seq`` of ``stream_id``; return status.

        "Handled" means placed, dropped (see ``last_error``) or replaced by a newer
        frame for the same image. The bridge answers as soon as that happens (no
        polling); raises :class:`FijiBridgeError` after ``timeout`` seconds.
        """
        return self.request(
            "wait",
            timeout + self.timeout,
            stream=stream_id,
            seq=int(last_seq),
            timeout_ms=int(timeout * 1000),
        )


def _control_endpoint(endpoint: str, control_port: int | None) -> str:
    """The control endpoint next to a ``tcp://host:port`` data endpoint."""
    if not endpoint.startswith("tcp://"):
        raise ValueError(f"the Fiji bridge listens on tcp:// endpoints only, got {endpoint!r}")
    host, _, port = endpoint[len("tcp://") :].rpartition(":")
    control = int(port) + 1 if control_port is None else int(control_port)
    return f"tcp://{host}:{control}"


# ----------------------------------------------------------------------------- backend


class FijiStreamingBackend(StreamingBackend):
    """Send images to Fiji/ImageJ running the polystore bridge.

    ``fm.save(img, "A01/site1.tif", backend="fiji")`` shows ``img`` in the
    image titled ``"A01/site1"`` (a later save to the same path replaces it).
    Frames with ``layer="series", index={"c": 1, "z": 4, "t": 0}`` land at that
    position of the hyperstack titled ``"series"``, which grows as needed; an
    N-D array with ``axes="tczyx"`` (or the default ``zyx``/``czyx``/``tczyx``)
    becomes a whole hyperstack. ``contrast_limits`` sets ImageJ's display range.

    ``save_batch(arrays, paths, layer=..., index=[{...}, ...])`` takes one
    index per array. With no bridge listening, ``save`` raises
    :class:`~polystore.streaming.errors.NoReceiverError` after ``send_timeout``.

    Parameters
    ----------
    port, host:
        The bridge's data endpoint ``tcp://host:port`` (default 127.0.0.1:5580).
    control_port:
        The bridge's control port (default ``port + 1``).
    endpoint:
        A full ``tcp://`` endpoint instead of ``host``/``port``.
    send_timeout:
        Seconds one message may wait for the bridge before raising.
    copy:
        ``False`` sends the array's memory without a copy: do not modify it
        until the bridge has it (see :meth:`flush`).
    """

    _backend_type: ClassVar[str] = "fiji"
    receiver_hint: ClassVar[str] = _START_HINT

    def __init__(
        self,
        port: int = DEFAULT_FIJI_PORT,
        host: str = "127.0.0.1",
        endpoint: str | None = None,
        *,
        control_port: int | None = None,
        send_timeout: float = DEFAULT_SEND_TIMEOUT,
        control_timeout: float = 5.0,
        copy: bool = False,
    ) -> None:
        super().__init__(
            "push",
            port=port,
            host=host,
            endpoint=endpoint,
            send_timeout=send_timeout,
            copy=copy,
        )
        self.control = FijiControl(_control_endpoint(self.endpoint, control_port), control_timeout)

    def save(self, data: Any, file_path: PathLike, **kwargs: Any) -> None:
        """Send ``data`` to the bridge as the image for ``file_path`` (see the class docstring)."""
        self.sender.send(_as_imagej_array(data), str(file_path), **self._options(kwargs))

    def save_batch(
        self, data_list: Sequence[Any], identifiers: Sequence[PathLike], **kwargs: Any
    ) -> None:
        """Send every array back to back; ``index`` may be a list with one mapping per array."""
        if len(data_list) != len(identifiers):
            raise ValueError(f"save_batch: {len(data_list)} data items but {len(identifiers)} paths")
        index = kwargs.pop("index", None)
        if index is None or isinstance(index, Mapping):
            indices: list[Any] = [index] * len(data_list)
        else:
            indices = list(index)
            if len(indices) != len(data_list):
                raise ValueError(f"save_batch: {len(data_list)} data items but {len(indices)} indices")
        options = self._options(kwargs)
        sender = self.sender
        for data, path, idx in zip(data_list, identifiers, indices):
            sender.send(_as_imagej_array(data), str(path), **{**options, "index": idx})

    def load(self, file_path: PathLike, **kwargs: Any) -> np.ndarray[Any, Any]:
        """Not available: images go into Fiji. Use :meth:`save_tiff` to get pixels back."""
        raise self._unsupported("load (images go into Fiji; ask it for a TIFF with save_tiff)", "fiji")

    def flush(self, timeout: float = 10.0) -> dict[str, Any]:
        """Wait until the bridge has placed every image this backend sent; return its status."""
        last = self.sender.next_seq - 1
        if last < 0:
            return self.control.status()
        return self.control.wait_for_stream(self.sender.stream_id, last, timeout)

    def ping(self) -> dict[str, Any]:
        """The bridge's ``ping`` reply (raises :class:`FijiBridgeError` if none)."""
        return self.control.ping()

    def status(self) -> dict[str, Any]:
        """The bridge's counters, streams and images."""
        return self.control.status()

    def save_tiff(self, title: str, path: PathLike, timeout: float = 10.0) -> Path:
        """Flush, then have ImageJ save the image ``title`` as TIFF at ``path``."""
        self.flush(timeout)
        return self.control.save_tiff(title, path)


# ----------------------------------------------------------------------------- launcher


def _source_build_dir() -> Path:
    return Path(__file__).resolve().parents[3] / "fiji_bridge" / "build"


def find_bridge_jar(jar: PathLike | None = None) -> Path:
    """Locate ``polystore_bridge.jar``: ``jar``, ``$POLYSTORE_FIJI_JAR``, or the source tree's build.

    Raises :class:`FijiBridgeError` explaining how to build it.
    """
    candidates = [Path(p) for p in (jar, os.environ.get(JAR_ENV)) if p]
    candidates.append(_source_build_dir() / "polystore_bridge.jar")
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise FijiBridgeError(
        f"the Fiji bridge jar was not found (looked at {', '.join(map(str, candidates))}); "
        f"build it with fiji_bridge/build.sh or set {JAR_ENV}"
    )


def bridge_classpath(jar: PathLike | None = None, extra: Sequence[PathLike] = ()) -> list[str]:
    """The classpath to run the bridge: its jar, then ImageJ and JeroMQ.

    ImageJ/JeroMQ come from ``extra``, ``$POLYSTORE_FIJI_CLASSPATH``, the
    ``classpath.txt`` the build script wrote next to the jar, or the Debian
    locations (``/usr/share/java``), in that order.
    """
    bridge = find_bridge_jar(jar)
    entries = [str(p) for p in extra]
    env = os.environ.get(CLASSPATH_ENV)
    if not entries and env:
        entries = [p for p in env.split(os.pathsep) if p]
    recorded = bridge.parent / "classpath.txt"
    if not entries and recorded.is_file():
        entries = [line.strip() for line in recorded.read_text().splitlines() if line.strip()]
    if not entries:
        entries = list(_DEBIAN_JARS)
    missing = [p for p in entries if not Path(p).exists()]
    if missing:
        raise FijiBridgeError(
            f"classpath entries for the Fiji bridge are missing: {missing}; install ImageJ and "
            "JeroMQ (Debian: apt-get install imagej libjeromq-java) or set " + CLASSPATH_ENV
        )
    return [str(bridge), *entries]


_started: list[FijiBridge] = []


class FijiBridge:
    """Start, query and stop a polystore Fiji bridge JVM.

    ``FijiBridge(port=5580).start()`` runs ``java ... polystore.fiji.BridgePlugin``
    headless, or with the ImageJ window when ``gui=True`` (default: when
    ``$DISPLAY`` is set), waits until it answers ``ping`` on the control port,
    and records its PID in :attr:`pid`. :meth:`stop` asks it to quit and, if it
    does not, signals that PID and no other process. A bridge started by this
    Python process is stopped when it exits unless ``detach=True``.

    Use as a context manager::

        with FijiBridge(port=5580) as bridge:
            fm.save(img, "a.tif", backend="fiji")
            bridge.control.save_tiff("a", "/tmp/a.tif")
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
        self.detach = detach
        self.endpoint = tcp_endpoint(self.port, host)
        self.control = FijiControl(tcp_endpoint(self.control_port, host))
        self.process: subprocess.Popen[bytes] | None = None
        self._pid: int | None = None

    @property
    def pid(self) -> int | None:
        """PID of the JVM this object started (None before :meth:`start`)."""
        return self._pid

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
            "--gui" if self.gui else "--headless",
        ]

    def start(self, timeout: float = 30.0) -> FijiBridge:
        """Start the JVM and wait until it answers ``ping``; raises :class:`FijiBridgeError`."""
        if self.process is not None and self.process.poll() is None:
            return self
        command = self.command()
        if shutil.which(command[0]) is None and not Path(command[0]).exists():
            raise FijiBridgeError(
                f"no java executable {command[0]!r}; install a JDK/JRE "
                "(Debian: apt-get install openjdk-17-jdk-headless) or pass java="
            )
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self._pid = self.process.pid
        if not self.detach:
            _started.append(self)
        deadline = time.monotonic() + timeout
        while True:
            code = self.process.poll()
            if code is not None:
                self.process = None
                raise FijiBridgeError(
                    f"the Fiji bridge exited with code {code} before listening on {self.endpoint}; "
                    f"log {self.log_path}:\n{self.log_tail()}"
                )
            try:
                reply = self.control.ping(timeout=0.25)
            except FijiBridgeError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise FijiBridgeError(
                        f"the Fiji bridge did not answer on {self.control.endpoint} within "
                        f"{timeout:g} s; log {self.log_path}:\n{self.log_tail()}"
                    ) from None
                time.sleep(0.05)
                continue
            if int(reply.get("pid", -1)) != self._pid:
                # Someone else answers on this port; ours most likely failed to bind.
                try:
                    code = self.process.wait(min(5.0, max(0.5, deadline - time.monotonic())))
                except subprocess.TimeoutExpired:
                    code = None
                tail = self.log_tail()
                self.stop()
                raise FijiBridgeError(
                    f"another process (pid {reply.get('pid')}) already answers on "
                    f"{self.control.endpoint}; stop it or choose other ports"
                    + (f". The new bridge exited with code {code}:\n{tail}" if code is not None else "")
                )
            return self

    def log_tail(self, lines: int = 20) -> str:
        """The last lines of the bridge's log."""
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def running(self) -> bool:
        """True while the JVM started by this object is alive."""
        return self.process is not None and self.process.poll() is None

    def stop(self, timeout: float = 10.0) -> None:
        """Ask the bridge to quit; signal its PID (TERM, then KILL) if it has not exited."""
        process, self.process = self.process, None
        if self in _started:
            _started.remove(self)
        if process is None or process.poll() is not None:
            return
        try:
            # Only ask it to quit if the control port really is ours (not another bridge's).
            if int(self.control.ping(timeout=min(1.0, timeout)).get("pid", -1)) == process.pid:
                self.control.quit(timeout=min(2.0, timeout))
                process.wait(timeout)
                return
        except (FijiBridgeError, subprocess.TimeoutExpired):
            pass
        _signal_pid(process.pid, process, timeout)

    def __enter__(self) -> FijiBridge:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"FijiBridge({self.endpoint!r}, control={self.control.endpoint!r}, pid={self._pid}, gui={self.gui})"


def _signal_pid(pid: int, process: subprocess.Popen[bytes] | None, timeout: float) -> None:
    """SIGTERM ``pid``, then SIGKILL after ``timeout`` s (this one PID only)."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process is not None:
                if process.poll() is not None:
                    return
            elif not _pid_is_bridge(pid):
                return
            time.sleep(0.05)


@atexit.register
def _stop_started_bridges() -> None:
    for bridge in list(_started):
        try:
            bridge.stop(timeout=3.0)
        except Exception:  # noqa: BLE001 - best effort at exit
            pass


# ----------------------------------------------------------------------------- CLI


def _pid_file(port: int) -> Path:
    return runtime_dir() / f"fiji-bridge-{port}.json"


def _pid_is_bridge(pid: int) -> bool:
    """True if ``pid`` is alive and runs the bridge class (guards against recycled PIDs)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        try:
            os.kill(pid, 0)
        except OSError:
            return False
        return True  # no /proc (macOS): trust the PID file
    return BRIDGE_MAIN_CLASS.encode() in cmdline


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m polystore.streaming.fiji`` command line; returns the exit code."""
    parser = argparse.ArgumentParser(
        prog="python -m polystore.streaming.fiji",
        description="Start, query and stop the polystore Fiji bridge (an ImageJ JVM receiving images).",
    )
    parser.add_argument("--port", type=int, default=DEFAULT_FIJI_PORT, help="data port (default %(default)s)")
    parser.add_argument("--control-port", type=int, default=None, help="control port (default: port + 1)")
    parser.add_argument("--host", default="127.0.0.1", help="interface (default: loopback only)")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, help_text in (
        ("start", "start a bridge in the background and record its PID"),
        ("run", "run a bridge in the foreground until Ctrl-C"),
    ):
        p = sub.add_parser(name, help=help_text)
        mode = p.add_mutually_exclusive_group()
        mode.add_argument("--gui", dest="gui", action="store_true", default=None, help="show the ImageJ window")
        mode.add_argument("--headless", dest="gui", action="store_false", help="no window")
        p.add_argument("--jar", default=None, help=f"bridge jar (default: ${JAR_ENV} or the source build)")
        p.add_argument("--java-option", action="append", default=[], help="extra JVM option, e.g. --java-option=-Xmx8g")
        p.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for it to listen")
    sub.add_parser("stop", help="stop the bridge recorded for this port (by its PID only)")
    sub.add_parser("ping", help="ask the bridge for pong")
    sub.add_parser("status", help="print the bridge's counters and images as JSON")
    save = sub.add_parser("save-tiff", help="have ImageJ save an image as TIFF")
    save.add_argument("title")
    save.add_argument("path")
    args = parser.parse_args(argv)
    control_port = args.port + 1 if args.control_port is None else args.control_port
    control = FijiControl(tcp_endpoint(control_port, args.host), timeout=5.0)
    try:
        if args.command in ("start", "run"):
            bridge = FijiBridge(
                args.port,
                control_port,
                args.host,
                gui=args.gui,
                jar=args.jar,
                java_options=args.java_option,
                detach=args.command == "start",
            )
            bridge.start(timeout=args.timeout)
            record = {"pid": bridge.pid, "port": args.port, "control_port": control_port, "host": args.host,
                      "log": str(bridge.log_path), "gui": bridge.gui}
            _pid_file(args.port).write_text(json.dumps(record))
            print(json.dumps(record))
            if args.command == "run":
                try:
                    assert bridge.process is not None
                    bridge.process.wait()
                except KeyboardInterrupt:
                    bridge.stop()
                _pid_file(args.port).unlink(missing_ok=True)
            return 0
        if args.command == "stop":
            return _cli_stop(args.port, control)
        if args.command == "ping":
            print(json.dumps(control.ping()))
            return 0
        if args.command == "status":
            print(json.dumps(control.status(), indent=2))
            return 0
        if args.command == "save-tiff":
            print(control.save_tiff(args.title, args.path))
            return 0
    except StorageError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 2


def _cli_stop(port: int, control: FijiControl) -> int:
    pid_file = _pid_file(port)
    if not pid_file.exists():
        print(f"error: no bridge was started for port {port} (no {pid_file})", file=sys.stderr)
        return 1
    pid = int(json.loads(pid_file.read_text())["pid"])
    if _pid_is_bridge(pid):
        try:
            control.quit(timeout=2.0)
        except FijiBridgeError:
            pass
        deadline = time.monotonic() + 5.0
        while _pid_is_bridge(pid) and time.monotonic() < deadline:
            time.sleep(0.05)
        if _pid_is_bridge(pid):
            _signal_pid(pid, None, 5.0)
    pid_file.unlink(missing_ok=True)
    print(f"stopped bridge pid {pid}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
