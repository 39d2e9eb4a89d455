"""End to end: another process calls fm.save(..., backend="napari"); a real viewer shows it.

Runs a real napari Viewer (shown, so it draws) under Xvfb with the xcb Qt
platform; napari draws black canvases offscreen.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "xcb")

pytest.importorskip("napari")
pytest.importorskip("zmq")

from polystore_napari._widgets import StreamReceiverWidget  # noqa: E402

pytestmark = pytest.mark.gui

SENDER = textwrap.dedent(
    """
    import sys
    import numpy as np
    from polystore import BackendRegistry, FileManager

    fm = FileManager(BackendRegistry())
    image = np.zeros((64, 80), dtype=np.uint16)
    image[16:48, 20:60] = 4000
    image[0, 0] = 7
    fm.save(image, "A01/site1_c2.tif", backend="napari", colormap="gray", contrast_limits=[0, 4000])
    frames = [np.full((32, 40), 10 * t + c, dtype=np.uint8) for t in range(3) for c in range(2)]
    fm.save_batch(frames, [f"A01/t{t}_c{c}.tif" for t in range(3) for c in range(2)],
                  backend="napari", layer="stack", axes="tcyx",
                  index={"t": 0, "c": 0})  # one index for all: each frame replaces (0, 0)
    fm.save_batch(frames, [f"B01/t{t}_c{c}.tif" for t in range(3) for c in range(2)],
                  backend="napari", layer="B01", index=[{"t": t, "c": c} for t in range(3) for c in range(2)])
    for t in range(3):
        for c in range(2):
            fm.save(frames[t * 2 + c], f"A01/t{t}_c{c}.tif", backend="napari",
                    layer="A01", index={"t": t, "c": c})
    """
)


def _run_sender(endpoint: str, script: str = SENDER) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "POLYSTORE_NAPARI_ENDPOINT": endpoint}
    return subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60
    )


@pytest.fixture
def receiver(make_napari_viewer: Any, tmp_path: Path, qtbot: Any) -> tuple[Any, StreamReceiverWidget]:
    viewer = make_napari_viewer(show=True)
    # tcp, not ipc: libzmq drops an ipc connection's unread data when a sender
    # exits while the receiver is behind (see docs/streaming-protocol.md).
    widget = StreamReceiverWidget(viewer, endpoint="tcp://127.0.0.1:0")
    viewer.window.add_dock_widget(widget, name="Stream receiver")
    widget.start()
    yield viewer, widget
    widget.stop()


def test_save_from_another_process_shows_layers(receiver: tuple[Any, StreamReceiverWidget], qtbot: Any) -> None:
    viewer, widget = receiver
    result = _run_sender(widget.controller.endpoint)
    assert result.returncode == 0, result.stderr

    def arrived() -> None:
        assert all(name in viewer.layers for name in ("A01/site1_c2", "A01", "stack", "B01"))
        assert viewer.layers["A01"].data.shape == (3, 2, 32, 40)

    qtbot.waitUntil(arrived, timeout=20000)

    live = viewer.layers["A01/site1_c2"]
    expected = np.zeros((64, 80), dtype=np.uint16)
    expected[16:48, 20:60] = 4000
    expected[0, 0] = 7
    assert live.data.dtype == np.uint16
    np.testing.assert_array_equal(live.data, expected)
    assert list(live.contrast_limits) == [0, 4000]
    assert live.colormap.name == "gray"

    stack = viewer.layers["A01"]
    assert stack.data.dtype == np.uint8
    for t in range(3):
        for c in range(2):
            assert np.all(stack.data[t, c] == 10 * t + c), (t, c)
    assert tuple(stack.axis_labels) == ("t", "c", "y", "x")

    # save_batch with one index per frame fills the stack like the loop of saves did
    np.testing.assert_array_equal(viewer.layers["B01"].data, stack.data)
    # save_batch with one index for every frame: each replaced the same plane, all kept in order
    batch = viewer.layers["stack"]
    assert batch.data.shape == (1, 1, 32, 40)
    assert np.all(batch.data[0, 0] == 21)  # the last frame sent to (0, 0)

    status = widget.controller.status()
    assert status.received == 19 and status.malformed == 0 and status.gaps == 0

    # The image is on screen: the live layer alone, its bright square visible.
    for name in ("A01", "stack", "B01"):
        viewer.layers[name].visible = False
    viewer.reset_view()
    qtbot.wait(50)
    shot = viewer.screenshot(canvas_only=True, flash=False)
    assert shot.shape[-1] == 4
    rgb = shot[..., :3].astype(int)
    assert rgb.max() > 200, "screenshot is black"
    assert (rgb.sum(axis=-1) < 30).mean() > 0.1, "the dark background is missing"


def test_live_layer_replaced_by_later_save(receiver: tuple[Any, StreamReceiverWidget], qtbot: Any) -> None:
    viewer, widget = receiver
    script = textwrap.dedent(
        """
        import numpy as np
        from polystore.streaming.napari import NapariStreamingBackend
        backend = NapariStreamingBackend()
        for value in range(1, 51):
            backend.save(np.full((16, 16), value, dtype=np.float32), "live/cam.tif")
        backend.save(np.linspace(0, 10, 256).reshape(16, 16), "live/auto.tif", auto_contrast=True)
        backend.close()
        """
    )
    result = _run_sender(widget.controller.endpoint, script)
    assert result.returncode == 0, result.stderr
    try:
        qtbot.waitUntil(
            lambda: "live/cam" in viewer.layers and viewer.layers["live/cam"].data[0, 0] == 50, timeout=20000
        )
    except Exception as exc:
        raise AssertionError(str(widget.controller.status())) from exc
    status = widget.controller.status()
    assert [layer.name for layer in viewer.layers].count("live/cam") == 1
    # Flow control: frames the viewer would not show were replaced in the sender, not sent.
    assert 2 <= status.received <= 51 and status.gaps == 0 and status.malformed == 0
    assert viewer.layers["live/cam"].data.dtype == np.float32
    qtbot.waitUntil(lambda: "live/auto" in viewer.layers, timeout=5000)
    assert list(viewer.layers["live/auto"].contrast_limits) == [0, 10]
    brighter = script.split("for value")[0] + (
        "backend.save(np.linspace(0, 1000, 256).reshape(16, 16), 'live/auto.tif', auto_contrast=True)\n"
        "backend.close()\n"
    )
    assert _run_sender(widget.controller.endpoint, brighter).returncode == 0
    qtbot.waitUntil(lambda: viewer.layers["live/auto"].data.max() == 1000, timeout=20000)
    assert list(viewer.layers["live/auto"].contrast_limits) == [0, 1000]  # followed the data


def test_receiver_opened_from_plugins_menu_gets_a_viewer_proxy(
    make_napari_viewer: Any, tmp_path: Path, qtbot: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("POLYSTORE_NAPARI_ENDPOINT", "tcp://127.0.0.1:0")
    viewer = make_napari_viewer(show=True)
    _dock, widget = viewer.window.add_plugin_dock_widget("polystore", "Stream receiver")
    assert isinstance(widget, StreamReceiverWidget)
    # Opening the panel listens: no Start click needed.
    assert widget.controller.status().state in ("listening", "connected")
    assert widget.toggle_button.text() == "Stop"
    script = textwrap.dedent(
        """
        import numpy as np
        from polystore import BackendRegistry, FileManager
        fm = FileManager(BackendRegistry())
        for z in range(4):
            fm.save(np.full((8, 8), z + 1, np.int16), f"vol/z{z}.tif", backend="napari",
                    layer="vol", index={"z": z}, scale=[2.0, 0.5, 0.5])
        """
    )
    result = _run_sender(widget.controller.endpoint, script)
    assert result.returncode == 0, result.stderr
    qtbot.waitUntil(lambda: "vol" in viewer.layers and viewer.layers["vol"].data.shape == (4, 8, 8), timeout=20000)
    vol = viewer.layers["vol"]
    assert [int(vol.data[z, 0, 0]) for z in range(4)] == [1, 2, 3, 4]
    assert list(vol.scale) == [2.0, 0.5, 0.5]
    assert tuple(viewer.dims.axis_labels) == ("z", "y", "x")  # the slider is named
    widget.toggle()  # Stop
    assert widget.controller.status().state == "stopped"


def test_curve_protected_receiver_in_the_viewer(make_napari_viewer: Any, qtbot: Any) -> None:
    zmq = pytest.importorskip("zmq")
    if not zmq.has("curve"):
        pytest.skip("libzmq without CURVE")
    from polystore.streaming import NoReceiverError
    from polystore.streaming.napari import NapariStreamingBackend

    public, secret = zmq.curve_keypair()
    viewer = make_napari_viewer(show=False)
    widget = StreamReceiverWidget(viewer, endpoint="tcp://127.0.0.1:0", curve_secret_key=secret)
    qtbot.addWidget(widget)
    endpoint = widget.start()
    try:
        with pytest.raises(NoReceiverError):  # no key: the handshake never completes
            NapariStreamingBackend(endpoint=endpoint, send_timeout=0.3).save(np.ones((4, 4)), "plain.tif")
        keyed = NapariStreamingBackend(endpoint=endpoint, send_timeout=5, curve_server_key=public)
        keyed.save(np.full((4, 4), 3, np.uint8), "secret.tif")
        qtbot.waitUntil(lambda: "secret" in viewer.layers, timeout=10000)
        assert np.all(viewer.layers["secret"].data == 3) and "plain" not in viewer.layers
        keyed.close()
    finally:
        widget.stop()
