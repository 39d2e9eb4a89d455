"""``polystore view`` / ``serve napari`` and the launcher, as a user runs them (real processes)."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("napari")
pytest.importorskip("zarr")

pytestmark = pytest.mark.gui


def _env(**extra: str) -> dict[str, str]:
    if not os.environ.get("DISPLAY"):
        pytest.skip("needs a display (pytest-xvfb provides one)")
    return {**os.environ, "QT_QPA_PLATFORM": "xcb", **extra}


def _polystore(*args: str, env: dict[str, str], cwd: Path, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "polystore", *args], env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=timeout)


def test_view_opens_a_batch_member_that_ls_lists(tmp_path: Path) -> None:
    from polystore import FileManager

    planes = [np.full((24, 32), 40 * i, np.uint16) for i in range(5)]
    FileManager().save_batch(planes, [tmp_path / "plate.zarr" / "B02" / f"t{i}.tif" for i in range(5)], backend="zarr")
    env = _env()
    listed = _polystore("ls", "-r", "plate.zarr", env=env, cwd=tmp_path)
    assert "t3.tif" in listed.stdout, listed.stdout + listed.stderr
    shown = _polystore("view", "plate.zarr/B02/t3.tif", "--screenshot", str(tmp_path / "t3.png"), env=env, cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert "layers t3" in shown.stdout and (tmp_path / "t3.png").is_file()


def test_serve_napari_says_why_the_viewer_did_not_start(tmp_path: Path) -> None:
    env = _env()
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = _polystore("serve", "napari", "--endpoint", f"tcp://127.0.0.1:{port}", env=env, cwd=tmp_path)
    assert result.returncode == 1
    assert "Address already in use" in result.stderr.splitlines()[-1], result.stderr

    remote = _polystore("serve", "napari", "--endpoint", "tcp://0.0.0.0:5599", env=env, cwd=tmp_path)
    assert remote.returncode == 1
    assert "allow_remote" in remote.stderr.splitlines()[-1] or "loopback" in remote.stderr.splitlines()[-1], remote.stderr


def test_a_non_loopback_endpoint_is_refused_before_a_viewer_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from polystore.streaming.errors import StreamingError
    from polystore.streaming.napari import NapariStreamingBackend

    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    monkeypatch.delenv("DISPLAY", raising=False)  # the endpoint is judged first, even with no display
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    backend = NapariStreamingBackend(endpoint="tcp://0.0.0.0:5599")
    try:
        with pytest.raises(StreamingError, match="not a loopback.*allow_remote"):
            backend.launch_viewer(timeout=60)
        assert backend.viewer_process is None and not list(tmp_path.rglob("viewer-*"))
    finally:
        backend.close()


def test_serve_napari_headless_without_display_is_a_clear_error(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k not in ("DISPLAY", "WAYLAND_DISPLAY")}
    env["QT_QPA_PLATFORM"] = "xcb"
    result = _polystore("serve", "napari", "--headless", "--endpoint", "tcp://127.0.0.1:5598", env=env, cwd=tmp_path,
                        timeout=60)
    assert result.returncode == 1, (result.returncode, result.stderr)  # not -6 (SIGABRT)
    assert "no display" in result.stderr and "--headless" in result.stderr


def test_each_launch_removes_its_runtime_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from polystore.streaming.napari import NapariStreamingBackend

    _env()
    runtime = tmp_path / "run"
    runtime.mkdir(mode=0o700)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime))
    monkeypatch.setenv("QT_QPA_PLATFORM", "xcb")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    backend = NapariStreamingBackend(endpoint=f"tcp://127.0.0.1:{port}")
    backend.launch_viewer(timeout=120, show=False)
    process = backend.viewer_process
    assert process is not None and list((runtime / "polystore").glob("viewer-*"))
    backend.save(np.ones((8, 8), np.uint8), "x.tif")
    backend.close()
    process.terminate()  # the viewer stops on its own, not through stop_viewer()
    process.wait(60)
    assert not list((runtime / "polystore").glob("viewer-*"))


def test_examples_use_only_public_napari_api() -> None:
    examples = Path(__file__).resolve().parents[1] / "examples"
    for script in examples.glob("*.py"):
        assert "polystore_napari._" not in script.read_text(), f"{script.name} imports a private module"
