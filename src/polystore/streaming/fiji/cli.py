"""``python -m polystore.streaming.fiji start|stop|status|ping|save-tiff|run``."""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from polystore.exceptions import StorageError
from polystore.streaming.endpoints import runtime_dir, tcp_endpoint
from polystore.streaming.fiji.backend import DEFAULT_FIJI_PORT
from polystore.streaming.fiji.control import FijiBridgeError, FijiControl
from polystore.streaming.fiji.jars import BRIDGE_MAIN_CLASS, JAR_ENV
from polystore.streaming.fiji.launcher import FijiBridge
from polystore.streaming.viewer_process import signal_pid

__all__ = ["main"]


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
        p.add_argument("--output-dir", default=None,
                       help="the only folder save-tiff may write into (default: ~/polystore-fiji)")
        p.add_argument("--timeout", type=float, default=30.0, help="seconds to wait for it to listen")
    sub.add_parser("stop", help="stop the bridge recorded for this port (by its PID only)")
    sub.add_parser("ping", help="ask the bridge for pong")
    sub.add_parser("status", help="print the bridge's counters and images as JSON")
    save = sub.add_parser("save-tiff", help="have ImageJ save an image as TIFF inside its output folder")
    save.add_argument("title")
    save.add_argument("path", help="relative to the bridge's output folder, or an absolute path inside it")
    save.add_argument("--overwrite", action="store_true", help="replace an existing file")
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
                output_dir=args.output_dir,
                detach=args.command == "start",
            )
            bridge.start(timeout=args.timeout)
            record = {"pid": bridge.pid, "port": args.port, "control_port": control_port, "host": args.host,
                      "log": str(bridge.log_path), "gui": bridge.gui}
            _pid_file(args.port).write_text(json.dumps(record))
            print(json.dumps(record))
            if args.command == "run":
                try:
                    process = bridge.process
                    assert process is not None
                    process.wait()
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
            print(control.save_tiff(args.title, args.path, overwrite=args.overwrite))
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
        signal_pid(pid, 5.0, lambda: _pid_is_bridge(pid))
    pid_file.unlink(missing_ok=True)
    print(f"stopped bridge pid {pid}")
    return 0
