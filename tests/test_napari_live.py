"""What a user sees in a real napari viewer while frames stream in (issue 11, napari part).

A real napari Viewer, shown under Xvfb with the xcb Qt platform, with the
Stream receiver docked; real ZeroMQ sockets; senders in this process (the
GUI keeps running through ``qtbot.waitUntil``).
"""

from __future__ import annotations

import os
import socket
from typing import Any

import numpy as np
import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "xcb")

pytest.importorskip("napari")
pytest.importorskip("zmq")

from polystore.streaming import StreamSender  # noqa: E402
from polystore.streaming.napari import NapariStreamingBackend  # noqa: E402
from polystore_napari._widgets import StreamReceiverWidget  # noqa: E402

pytestmark = pytest.mark.gui


@pytest.fixture
def docked(make_napari_viewer: Any, qtbot: Any) -> Any:
    """A shown viewer with the Stream receiver docked and listening on a free port."""
    viewer = make_napari_viewer(show=True)
    widget = StreamReceiverWidget(viewer, endpoint="tcp://127.0.0.1:0")
    viewer.window.add_dock_widget(widget, name="Stream receiver", area="right")
    widget.start()  # already listening: nothing changes
    yield viewer, widget
    widget.stop()


def _canvas(viewer: Any) -> Any:
    return viewer.window._qt_viewer.canvas


def test_docked_receiver_leaves_a_visible_canvas_that_draws(docked: Any, qtbot: Any) -> None:
    viewer, widget = docked
    native = _canvas(viewer).native
    qtbot.waitUntil(lambda: native.isVisible() and native.width() >= 800 and native.height() >= 600, timeout=10000)
    draws: list[int] = []
    _canvas(viewer)._scene_canvas.events.draw.connect(lambda _event: draws.append(1))
    backend = NapariStreamingBackend(endpoint=widget.controller.endpoint)
    frame = np.zeros((256, 256), np.uint16)
    for k in range(10):
        frame[:] = 1000 * k
        backend.save(frame.copy(), "live/canvas.tif", contrast_limits=[0, 10000])
        qtbot.wait(30)
    backend.close()
    qtbot.waitUntil(lambda: len(draws) >= 3, timeout=10000)
    assert native.width() >= 800 and native.height() >= 600  # still, with frames arriving


def test_receiver_panel_listens_when_opened_and_closing_frees_the_port(
    make_napari_viewer: Any, qtbot: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    endpoint = f"tcp://127.0.0.1:{port}"
    monkeypatch.setenv("POLYSTORE_NAPARI_ENDPOINT", endpoint)
    viewer = make_napari_viewer(show=True)
    dock, widget = viewer.window.add_plugin_dock_widget("polystore", "Stream receiver")
    assert widget.controller.listening  # no Start click needed
    backend = NapariStreamingBackend(send_timeout=5)
    backend.save(np.ones((4, 4), np.uint8), "first.tif")
    qtbot.waitUntil(lambda: "first" in viewer.layers, timeout=10000)
    backend.close()

    dock.destroyOnClose()  # the dock's close button
    assert not widget.controller.listening
    with socket.socket() as again:  # the port is free at once
        again.bind(("127.0.0.1", port))

    # A second panel on a busy endpoint keeps its error on screen.
    with socket.socket() as squatter:
        squatter.bind(("127.0.0.1", port))
        squatter.listen()
        _dock2, busy = viewer.window.add_plugin_dock_widget("polystore", "Stream receiver")
        assert not busy.controller.listening
        assert "Address already in use" in busy.error_label.text()
        qtbot.wait(1200)  # two status refreshes later
        assert "Address already in use" in busy.error_label.text()
    busy.toggle()  # Start again, now that the port is free: the error goes with the state change
    assert busy.controller.listening and busy.error_label.text() == ""
    busy.stop()


def test_rgb_frames_become_rgb_layers(docked: Any, qtbot: Any) -> None:
    viewer, widget = docked
    rgb = np.zeros((32, 48, 3), np.uint8)
    rgb[..., 0] = 200  # red
    rgba = np.zeros((32, 48, 4), np.uint16)
    rgba[..., 2] = 900
    with StreamSender(widget.controller.endpoint) as sender:
        sender.send(rgb, "colour/auto.png")  # uint8 (H, W, 3): detected
        sender.send(rgba, "colour/axes.tif", axes="yxc")  # axes end in c
        sender.send(rgb // 2, "colour/series.tif", layer="series", axes="tyxc", index={"t": 1})
    qtbot.waitUntil(lambda: all(n in viewer.layers for n in ("colour/auto", "colour/axes", "series")), timeout=10000)
    auto, axes = viewer.layers["colour/auto"], viewer.layers["colour/axes"]
    assert auto.rgb and auto.data.shape == (32, 48, 3) and auto.ndim == 2
    assert axes.rgb and axes.data.shape == (32, 48, 4)
    np.testing.assert_array_equal(auto.data, rgb)
    series = viewer.layers["series"]  # an RGB stack: t is a slider, colour is not
    assert series.rgb and series.data.shape == (2, 32, 48, 3) and tuple(series.axis_labels) == ("t", "y", "x")


def test_mixed_stacks_keep_their_own_axes(docked: Any, qtbot: Any) -> None:
    viewer, widget = docked
    with StreamSender(widget.controller.endpoint) as sender:
        for c in range(2):
            for z in range(3):
                sender.send(np.full((16, 16), 10 * c + z, np.uint8), f"vol/c{c}z{z}.tif", layer="vol",
                            axes="czyx", index={"c": c, "z": z})
        for t in range(5):
            sender.send(np.full((16, 16), 100 + t, np.uint8), f"series/t{t}.tif", layer="series",
                        axes="tyx", index={"t": t})
    qtbot.waitUntil(lambda: "series" in viewer.layers and viewer.layers["series"].data.shape[0] == 5, timeout=10000)
    labels = tuple(viewer.dims.axis_labels)
    assert labels == ("t", "c", "z", "y", "x")
    vol, series = viewer.layers["vol"], viewer.layers["series"]
    assert vol.data.shape == (1, 2, 3, 16, 16) and series.data.shape == (5, 1, 1, 16, 16)
    # Each slider moves one named axis: t has the series' 5 steps, c and z the volume's 2 and 3.
    steps = dict(zip(labels, viewer.dims.nsteps))
    assert (steps["t"], steps["c"], steps["z"]) == (5, 2, 3)
    assert series.data[3, 0, 0, 0, 0] == 103 and vol.data[0, 1, 2, 0, 0] == 12


def test_rejected_frames_are_counted_shown_and_reported_to_the_sender(docked: Any, qtbot: Any) -> None:
    from polystore.streaming import RejectedFrameWarning

    viewer, widget = docked
    backend = NapariStreamingBackend(endpoint=widget.controller.endpoint)
    backend.save(np.zeros((8, 8), np.uint16), "stack/t0.tif", layer="stack", index={"t": 0})
    backend.save(np.zeros((8, 8), np.float32), "stack/t1.tif", layer="stack", index={"t": 1})  # other dtype
    backend.save(np.zeros((9, 8), np.uint16), "stack/t2.tif", layer="stack", index={"t": 2})  # other shape
    qtbot.waitUntil(lambda: widget.controller.status().rejected == 2, timeout=10000)
    widget.refresh_status()
    assert "rejected 2" in widget.counters_label.text()
    assert "does not match" in widget.error_label.text()
    # The sender hears about it on its next save.

    def heard() -> bool:
        backend.sender.check_feedback()  # what every save does first
        return backend.sender.rejections.total == 2

    qtbot.waitUntil(heard, timeout=10000)
    with pytest.warns(RejectedFrameWarning, match="refused 2 frame"):
        backend.save(np.zeros((8, 8), np.uint16), "stack/t3.tif", layer="stack", index={"t": 3})
    backend.close()


def test_an_odd_frame_does_not_drop_the_other_frames_of_its_tick(make_napari_viewer: Any, qtbot: Any) -> None:
    from polystore_napari._controller import StreamController

    viewer = make_napari_viewer(show=True)
    controller = StreamController(viewer, "tcp://127.0.0.1:0")  # no wake-up: we tick by hand
    controller.start()
    try:
        with StreamSender(controller.endpoint) as sender:
            odd = np.zeros((0, 0), np.float64)
            sender.send(odd, "odd.tif", layer="odd", index={"t": 2**31 - 1, "z": 2**31 - 1})
            sender.send(np.full((4, 4), 7, np.uint8), "good.tif", layer="good", index={"t": 0})
            sender.send(np.full((4, 4), 9, np.uint8), "live.tif")
        receiver = controller.receiver
        assert receiver is not None
        qtbot.waitUntil(lambda: receiver.stats().received == 3, timeout=10000)
        controller.tick()  # all three in one tick
        assert "good" in viewer.layers and "live" in viewer.layers and "odd" not in viewer.layers
        assert controller.status().rejected == 1
    finally:
        controller.stop()


def test_unpaced_live_frames_are_not_sent_in_vain_while_stacks_keep_every_frame(
    make_napari_viewer: Any, qtbot: Any
) -> None:
    from polystore_napari import StreamController

    viewer = make_napari_viewer(show=True)
    controller = StreamController(viewer, "tcp://127.0.0.1:0")  # ticked by hand: a slow viewer
    controller.start()
    receiver = controller.receiver
    assert receiver is not None
    backend = NapariStreamingBackend(endpoint=controller.endpoint, send_timeout=5)
    try:
        frames = [np.full((128, 128), k, np.uint16) for k in range(400)]
        ticks = 0
        for k, frame in enumerate(frames):
            backend.save(frame, "live/unpaced.tif")  # never blocks on the slow viewer
            if k % 10 == 0:
                backend.save(frame[:8, :8], f"stack/t{k}.tif", layer="stack", index={"t": k // 10})
            if k % 40 == 0:
                qtbot.wait(20)
                ticks += controller.tick() > 0
        assert backend.sender.flush(10)
        qtbot.waitUntil(lambda: controller.tick() >= 0 and viewer.layers["live/unpaced"].data[0, 0] == 399,
                        timeout=10000)
        qtbot.waitUntil(lambda: controller.tick() >= 0 and viewer.layers["stack"].data.shape[0] == 40,
                        timeout=10000)
        stats = receiver.stats()
        live_received = stats.received - 40
        # Only frames the viewer would show crossed the socket: a handful per tick, not 400.
        assert live_received <= 4 * (ticks + 2), (live_received, ticks)
        assert backend.sender.conflated >= 300
        stack = viewer.layers["stack"].data
        assert [int(stack[t, 0, 0]) for t in range(40)] == [10 * t for t in range(40)]  # every indexed frame
    finally:
        backend.close()
        controller.stop()


def test_live_frames_of_one_shape_are_copied_into_the_layer_and_never_into_a_users_array(
    make_napari_viewer: Any, qtbot: Any
) -> None:
    from polystore.streaming.placement import LayerUpdate
    from polystore_napari._layers import apply_update

    viewer = make_napari_viewer()

    def live(value: int, shape: tuple[int, ...] = (8, 8)) -> LayerUpdate:
        frame = np.full(shape, value, np.uint16)
        frame.flags.writeable = False  # as received: a read-only view of the message
        return LayerUpdate("live", frame, False, ("y", "x"), True, display={"contrast_limits": [0.0, 9.0]})

    layer = apply_update(viewer, live(1))
    buffer = layer.data
    assert buffer.flags.writeable  # the layer's own copy, not the message's memory
    apply_update(viewer, live(2))
    assert layer.data is buffer and int(buffer[0, 0]) == 2  # copied in place, shown
    qtbot.waitUntil(lambda: int(viewer.layers["live"]._slice.image.view[0, 0]) == 2, timeout=5000)
    apply_update(viewer, live(3, (4, 8)))  # another shape: the data is replaced
    assert layer.data.shape == (4, 8) and int(layer.data[0, 0]) == 3
    users = np.zeros((4, 8), np.uint16)
    layer.data = users  # the user puts their own array in the layer
    apply_update(viewer, live(4, (4, 8)))
    assert not users.any() and int(layer.data[0, 0]) == 4  # never written to


def test_a_live_frame_copied_in_place_is_drawn_and_its_thumbnail_catches_up(
    make_napari_viewer: Any, qtbot: Any
) -> None:
    """Live 2D frames skip napari's full refresh (the texture is uploaded again): the canvas still shows
    each new frame, and the thumbnail follows once stale thumbnails are refreshed."""
    from polystore.streaming.placement import LayerUpdate
    from polystore_napari._layers import apply_update
    from polystore_napari._redraw import redraw_in_place, refresh_stale_thumbnails

    viewer = make_napari_viewer(show=True)

    def live(value: int) -> LayerUpdate:
        return LayerUpdate("live", np.full((64, 64), value, np.uint16), False, ("y", "x"), True,
                           display={"contrast_limits": [0.0, 60000.0]})

    def centre() -> int:
        shot = viewer.screenshot(canvas_only=True, flash=False)
        return int(shot[shot.shape[0] // 2, shot.shape[1] // 2, :3].mean())

    layer = apply_update(viewer, live(0))
    assert centre() < 10
    for value, bright in ((60000, True), (0, False), (60000, True)):
        apply_update(viewer, live(value))
        assert (centre() > 245) is bright and (centre() < 10) is not bright  # what the user sees
    assert redraw_in_place(viewer, layer)  # the path taken: no napari refresh
    apply_update(viewer, live(0))
    refresh_stale_thumbnails(0.0)
    assert int(layer.thumbnail[16, 16, :3].max()) < 10  # the thumbnail shows the last frame
    layer.contrast_limits = [0.0, 1.0]  # changes through napari still apply
    apply_update(viewer, LayerUpdate("live", np.ones((64, 64), np.uint16), False, ("y", "x"), True))
    assert centre() > 245


def test_a_viewer_slow_to_create_its_first_layer_is_not_flooded(
    docked: Any, qtbot: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The first frame of a stream is answered before its (slow) first layer is created: a sender
    waiting longer than FIRST_FEEDBACK_TIMEOUT for that answer took the viewer for one that never
    answers and sent every later frame, which the viewer then dropped (coalesced). Seen in
    `bench stream` under load: the first 2048x2048 layer took 3.5-5 s to create."""
    import threading
    import time

    from polystore.streaming import flow

    viewer, widget = docked
    monkeypatch.setattr(flow, "FIRST_FEEDBACK_TIMEOUT", 1.0)
    controller = widget.controller
    apply = controller._apply
    slow = [True]

    def slow_first_apply(update: Any) -> bool:
        if slow[0]:
            slow[0] = False
            time.sleep(3.0)  # the GUI thread busy creating the first layer (a loaded machine)
        return apply(update)

    monkeypatch.setattr(controller, "_apply", slow_first_apply)
    backend = NapariStreamingBackend(endpoint=controller.endpoint)

    def unpaced() -> None:
        for k in range(1, 701):
            backend.save(np.full((64, 64), k, np.uint16), "live/slow.tif", contrast_limits=[0, 700])
            time.sleep(0.005)

    sender = threading.Thread(target=unpaced)
    sender.start()
    qtbot.waitUntil(lambda: not sender.is_alive(), timeout=60000)
    backend.sender.flush(10)
    qtbot.waitUntil(lambda: "live/slow" in viewer.layers and viewer.layers["live/slow"].data[0, 0] == 700,
                    timeout=20000)
    status = controller.status()
    backend.close()
    assert backend.sender.conflated > 0  # the sender held frames back while the layer was created
    # and sent none that the viewer had to drop (the old code sent ~all of them: hundreds)
    assert status.coalesced <= 2, status.summary()
