"""``python -m polystore_napari``: open napari with the Stream receiver already listening.

Used by ``NapariStreamingBackend(launch=True)``. Writes ``--ready-file`` once
the socket is bound; stops cleanly on SIGTERM/SIGINT.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import sys


def main(argv: list[str] | None = None) -> int:
    """Run a viewer with a listening receiver until the window closes or a signal arrives."""
    parser = argparse.ArgumentParser(prog="python -m polystore_napari", description=__doc__)
    parser.add_argument("--endpoint", default=None, help="endpoint to bind (default: the napari default)")
    parser.add_argument("--ready-file", default=None, help="file written when the receiver listens")
    parser.add_argument("--hidden", action="store_true", help="do not show the window")
    parser.add_argument("--cleanup-dir", default=None, help="folder removed when the viewer stops (launchers' runtime dir)")
    parser.add_argument(
        "--allow-remote", action="store_true", help="allow binding a non-loopback address (use CURVE too)"
    )
    parser.add_argument(
        "--curve-secret-file",
        default=None,
        help="file holding the receiver's Z85 CURVE secret key; senders then need its public key",
    )
    args = parser.parse_args(argv)
    code = _run(args)
    if code == 0 and args.cleanup_dir:
        # On failure the launcher reads the log for the reason, then removes the folder.
        shutil.rmtree(args.cleanup_dir, ignore_errors=True)
    return code


def _run(args: argparse.Namespace) -> int:
    from polystore.streaming.napari import display_problem

    problem = display_problem()
    if problem:
        print(f"polystore_napari: cannot open a window: {problem}; run under Xvfb", file=sys.stderr, flush=True)
        return 2
    secret = None
    if args.curve_secret_file:
        with open(args.curve_secret_file, "rb") as key_file:
            secret = key_file.read().strip()

    import napari
    from qtpy.QtCore import QTimer

    from polystore_napari._widgets import StreamReceiverWidget

    viewer = napari.Viewer(show=not args.hidden, title="polystore stream")
    widget = StreamReceiverWidget(
        viewer, endpoint=args.endpoint, allow_remote=args.allow_remote, curve_secret_key=secret, listen=False
    )
    viewer.window.add_dock_widget(widget, name="Stream receiver", area="right")
    try:
        bound = widget.start()
    except Exception as exc:  # noqa: BLE001 - reported to the launcher through the exit code
        print(f"polystore_napari: cannot listen: {exc}", file=sys.stderr, flush=True)
        viewer.close()
        return 2

    def _quit() -> None:
        widget.stop()
        if args.cleanup_dir:  # asked to stop: nobody needs the log any more
            shutil.rmtree(args.cleanup_dir, ignore_errors=True)
        viewer.close()

    def _on_signal(*_args: object) -> None:
        # Python runs this handler between two bytecodes of whatever the GUI thread
        # was doing, e.g. inside the feedback socket's lock: stopping right here
        # deadlocked on that lock. Stop from the event loop instead.
        QTimer.singleShot(0, _quit)

    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)
    keepalive = QTimer()  # lets Python run signal handlers while Qt's loop spins
    keepalive.timeout.connect(lambda: None)
    keepalive.start(200)

    print(f"polystore_napari: listening on {bound} (pid {os.getpid()})", flush=True)
    if args.ready_file:
        tmp = f"{args.ready_file}.tmp"
        with open(tmp, "w") as fh:
            fh.write(f"{os.getpid()} {bound}\n")
        os.replace(tmp, args.ready_file)
    napari.run()
    widget.controller.stop()  # the widget itself may be gone with the window
    return 0


if __name__ == "__main__":
    sys.exit(main())
