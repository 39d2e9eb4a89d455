"""``polystore view`` and ``serve`` with real viewers and processes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

import screens
from cli_testing import run_cli, run_subprocess

pytest.importorskip("zarr")


# ----------------------------------------------------------------------------- view / serve (real viewers)


@pytest.mark.gui
def test_view_opens_a_store_through_the_plugin_reader(tmp_path: Path) -> None:
    pytest.importorskip("napari")
    result = screens.view_store_screenshot(tmp_path)
    assert result.returncode == 0, result.stderr
    # one layer named after the image, or one per channel (named from the OME channel labels)
    assert "layers A01" in result.stdout or "layers membrane, nucleus" in result.stdout, result.stdout
    screens.assert_drawn(screens.VIEW_PNG)


@pytest.mark.gui
def test_view_missing_path_fails_before_opening_a_window(tmp_path: Path) -> None:
    result = run_subprocess("view", "nothing.zarr", cwd=tmp_path, env=screens.gui_env())
    assert result.returncode == 1 and "no such" in result.stderr


@pytest.mark.gui
def test_serve_napari_receives_and_stops_its_viewer(tmp_path: Path) -> None:
    pytest.importorskip("napari")
    from fiji_testing import free_ports

    endpoint = f"tcp://127.0.0.1:{free_ports(1)[0]}"
    serve = subprocess.Popen([sys.executable, "-m", "polystore", "serve", "napari", "--endpoint", endpoint],
                             env=screens.gui_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert serve.stdout is not None
        first = serve.stdout.readline()
        assert f"listening on {endpoint}" in first, first + (serve.stderr.read() if serve.poll() is not None else "")
        viewer_pid = int(first.split("pid ")[1].split(")")[0])
        sender = textwrap.dedent(
            """
            import numpy as np
            from polystore import BackendRegistry, FileManager
            from polystore.streaming.napari import NapariStreamingBackend
            fm = FileManager(BackendRegistry(napari=NapariStreamingBackend(send_timeout=20)))
            fm.save(np.ones((16, 16), np.uint8), "A01/x.tif", backend="napari")
            fm.get_backend("napari").close()
            """
        )
        env = {**os.environ, "POLYSTORE_NAPARI_ENDPOINT": endpoint}
        sent = subprocess.run([sys.executable, "-c", sender], env=env, capture_output=True, text=True, timeout=60)
        assert sent.returncode == 0, sent.stderr
    finally:
        serve.send_signal(signal.SIGTERM)
        code = serve.wait(30)
    assert code == 0
    assert _gone_within(viewer_pid, 15), "the viewer started by serve is still running"


def _gone_within(pid: int, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and _alive(pid):
        time.sleep(0.1)
    return not _alive(pid)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is dead for our purpose
        return "Z" not in Path(f"/proc/{pid}/stat").read_text().split()[2]
    except OSError:
        return False


def test_serve_rejects_a_bad_endpoint(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(capsys, "serve", "fiji", "--endpoint", "ipc:///tmp/x")
    assert code == 2 and "tcp://HOST:PORT" in err


@pytest.mark.java
def test_serve_fiji_starts_a_bridge_and_stops_it(tmp_path: Path) -> None:
    from fiji_testing import build_jar, free_port_pair

    build_jar()
    port = free_port_pair()
    serve = subprocess.Popen([sys.executable, "-m", "polystore", "serve", "fiji", "--headless",
                              "--endpoint", f"tcp://127.0.0.1:{port}"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert serve.stdout is not None
        first = serve.stdout.readline()
        assert f"listening on tcp://127.0.0.1:{port}" in first, first + (serve.stderr.read() if serve.poll() is not None else "")
        bridge_pid = int(first.split("pid ")[1].split(")")[0])
        from polystore.streaming.fiji import FijiStreamingBackend

        backend = FijiStreamingBackend(port=port)
        backend.save(np.arange(64, dtype=np.uint16).reshape(8, 8), "A01/x.tif")
        assert backend.flush()["placed"] == 1
        backend.close()
    finally:
        serve.send_signal(signal.SIGTERM)
        code = serve.wait(30)
    assert code == 0
    assert _gone_within(bridge_pid, 15), "the bridge started by serve is still running"
