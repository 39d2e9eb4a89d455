"""``polystore serve napari|fiji``: start a viewer with a receiver listening, print its endpoint."""

from __future__ import annotations

import signal
import sys
import time
from types import FrameType
from typing import Any
from urllib.parse import urlsplit

import click

__all__ = ["serve", "parse_tcp_endpoint"]


def parse_tcp_endpoint(endpoint: str) -> tuple[str, int]:
    """``"tcp://127.0.0.1:5580"`` -> ``("127.0.0.1", 5580)``; BadParameter otherwise."""
    parts = urlsplit(endpoint)
    try:
        port = parts.port
    except ValueError:
        port = None
    if parts.scheme != "tcp" or not parts.hostname or not port:
        raise click.BadParameter(f"{endpoint!r} is not tcp://HOST:PORT with a port number", param_hint="'--endpoint'")
    return parts.hostname, port


def _terminate_on_sigterm() -> None:
    def _raise(_signum: int, _frame: FrameType | None) -> None:
        raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, _raise)


def _wait(process: Any, what: str) -> int:
    """Block until ``process`` exits; Ctrl-C / SIGTERM raise KeyboardInterrupt."""
    while process.poll() is None:
        time.sleep(0.2)
    click.echo(f"{what} exited with code {process.returncode}", err=True)
    return 0 if process.returncode in (0, -signal.SIGTERM) else 1


@click.command("serve")
@click.argument("viewer", type=click.Choice(["napari", "fiji"]))
@click.option(
    "--endpoint", default=None,
    help="Where the receiver listens. napari: tcp://HOST:PORT or ipc://PATH (default "
    "$POLYSTORE_NAPARI_ENDPOINT or tcp://127.0.0.1:5570); fiji: tcp://HOST:PORT (default tcp://127.0.0.1:5580).",
)
@click.option("--timeout", type=float, default=120.0, show_default=True, help="Seconds to wait for the receiver.")
@click.option("--headless", is_flag=True, help="fiji: run the bridge without the ImageJ window; napari: hide the window.")
def serve(viewer: str, endpoint: str | None, timeout: float, headless: bool) -> int:
    """Start VIEWER (napari or fiji) with a receiver listening and print the endpoint.

    Runs until the viewer is closed, Ctrl-C, or SIGTERM (which stop the viewer
    this command started, by its PID). Then, from any process:

    \b
      fm.save(image, "A01/site1.tif", backend="napari")   # napari
      fm.save(image, "A01/site1.tif", backend="fiji")     # fiji
    """
    _terminate_on_sigterm()
    if viewer == "napari":
        from polystore.cli.view import require_display

        require_display(" (napari needs one even with --headless, which only hides the window)" if headless else "")
        return _serve_napari(endpoint, timeout, headless)
    return _serve_fiji(endpoint, timeout, headless)


def _serve_napari(endpoint: str | None, timeout: float, hidden: bool) -> int:
    from polystore.streaming.napari import ENDPOINT_ENV, NapariStreamingBackend

    if endpoint is not None and endpoint.startswith("tcp://"):
        parse_tcp_endpoint(endpoint)  # port 0 cannot be told to senders
    backend = NapariStreamingBackend(endpoint=endpoint)
    try:
        pid = backend.launch_viewer(timeout=timeout, show=not hidden)
        click.echo(f"napari viewer (pid {pid}) listening on {backend.endpoint}")
        click.echo(f'send with: fm.save(image, path, backend="napari")  [{ENDPOINT_ENV}={backend.endpoint}]')
        sys.stdout.flush()
        process = backend.viewer_process
        assert process is not None
        code = _wait(process, "napari viewer")
        if code:
            click.echo(backend.viewer_exit_reason(), err=True)
        return code
    except KeyboardInterrupt:
        click.echo("stopping the napari viewer", err=True)
        return 0
    finally:
        backend.stop_viewer()
        backend.close()


def _serve_fiji(endpoint: str | None, timeout: float, headless: bool) -> int:
    from polystore.streaming.fiji import DEFAULT_FIJI_PORT, FijiBridge

    host, port = ("127.0.0.1", DEFAULT_FIJI_PORT) if endpoint is None else parse_tcp_endpoint(endpoint)
    bridge = FijiBridge(port=port, host=host, gui=False if headless else None)
    try:
        bridge.start(timeout=timeout)
        click.echo(f"Fiji bridge (pid {bridge.pid}) listening on {bridge.endpoint} (control {bridge.control.endpoint})")
        if port == DEFAULT_FIJI_PORT:
            click.echo('send with: fm.save(image, path, backend="fiji")')
        else:
            click.echo(f'send with: FileManager(BackendRegistry(fiji=FijiStreamingBackend(port={port}))).save(...)')
        sys.stdout.flush()
        process = bridge.process
        assert process is not None
        return _wait(process, "Fiji bridge")
    except KeyboardInterrupt:
        click.echo("stopping the Fiji bridge", err=True)
        return 0
    finally:
        bridge.stop()
