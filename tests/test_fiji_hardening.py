"""The Fiji bridge cannot be broken: the control channel always answers, writes stay in
their folder, RGB frames are RGB images, refused frames are reported to their sender.

Real JVM, real sockets, real files (the jar is built with ``fiji_bridge/build.sh``).
"""

from __future__ import annotations

import json
import os
import time
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tifffile

from fiji_testing import build_jar, free_ports

zmq = pytest.importorskip("zmq")
from polystore import FileManager  # noqa: E402
from polystore.streaming.fiji import FijiBridge, FijiBridgeError, FijiStreamingBackend  # noqa: E402
from polystore.streaming.rejections import RejectedFrameError, RejectedFrameWarning  # noqa: E402

pytestmark = pytest.mark.java


@pytest.fixture(scope="module")
def out_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("fiji-out")


@pytest.fixture(scope="module")
def bridge(out_dir: Path) -> Iterator[FijiBridge]:
    port, control = free_ports()
    with FijiBridge(port, control, gui=False, jar=build_jar(), output_dir=out_dir) as running:
        yield running


@pytest.fixture
def backend(bridge: FijiBridge) -> Iterator[FijiStreamingBackend]:
    be = FijiStreamingBackend(bridge.port, control_port=bridge.control_port, send_timeout=5.0, control_timeout=5.0)
    yield be
    be.close()


def raw_request(endpoint: str, *frames: bytes) -> dict[str, Any]:
    """One request on a fresh REQ socket; fails the test when no reply comes within 5 s."""
    sock = zmq.Context.instance().socket(zmq.REQ)
    sock.setsockopt(zmq.LINGER, 0)
    try:
        sock.connect(endpoint)
        sock.send_multipart(list(frames))
        assert sock.poll(5000), f"the control socket did not answer {frames[0][:60]!r}"
        reply: dict[str, Any] = json.loads(sock.recv())
        return reply
    finally:
        sock.close(0)


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_every_control_request_gets_a_reply_and_the_bridge_keeps_answering(
    bridge: FijiBridge, backend: FijiStreamingBackend, out_dir: Path
) -> None:
    fm = FileManager({"fiji": backend})
    fm.save(np.zeros((0, 0), np.uint16), "empty.tif", backend="fiji")
    with pytest.raises(FijiBridgeError, match="empty"):
        backend.save_tiff("empty", out_dir / "empty.tif")
    with pytest.warns(RejectedFrameWarning, match="0 x 0 pixels"):  # reported back to the sender
        fm.save(np.ones((2, 2), np.uint16), "warm.tif", backend="fiji")
    endpoint = bridge.control.endpoint
    failing = [
        (b"not json",),
        (b'{"cmd": "save_tiff", "title": "empty", "path": "/etc/polystore-test.tif"}',),
        (b'{"cmd": "save_tiff", "title": 3, "path": []}',),
        (b'{"cmd": "wait", "stream": "x", "seq": 1.5}',),
        (b'{"cmd": "nope"}',),
        (b'{"cmd": "ping"}', b"second frame"),
        (b"[" * 5000,),
        (json.dumps({"cmd": "status", "x": "y" * 70000}).encode(),),  # over the request size limit
    ]
    for frames in failing:
        reply = raw_request(endpoint, *frames)
        assert reply["ok"] is False and reply["error"], frames
    assert bridge.control.ping()["reply"] == "pong"
    assert bridge.control.status()["control_errors"] >= len(failing)
    image = np.arange(48, dtype=np.uint16).reshape(6, 8)
    fm.save(image, "after/ok.tif", backend="fiji")
    saved = backend.save_tiff("after/ok", out_dir / "after-ok.tif")
    np.testing.assert_array_equal(tifffile.imread(saved), image)
    # no thread is left spinning on a socket stuck in the wrong state
    assert bridge.pid is not None
    before = cpu_seconds(bridge.pid)
    time.sleep(2.0)
    assert cpu_seconds(bridge.pid) - before < 0.5


def test_save_tiff_writes_only_inside_the_output_folder(
    bridge: FijiBridge, backend: FijiStreamingBackend, out_dir: Path, tmp_path: Path
) -> None:
    assert bridge.control.ping()["output_dir"] == str(out_dir)
    image = np.full((5, 7), 9, np.uint8)
    backend.save(image, "confined/img.tif")
    backend.flush()
    # a relative path lands inside the folder
    saved = backend.save_tiff("confined/img", "sub/rel.tif")
    assert saved == out_dir / "sub" / "rel.tif"
    np.testing.assert_array_equal(tifffile.imread(saved), image)
    # anywhere else is refused, and nothing is written there
    outside = tmp_path / "outside.tif"
    for path in (outside, out_dir / ".." / "escape.tif", "../escape.tif", "/tmp/polystore-escape.tif"):
        with pytest.raises(FijiBridgeError, match="outside|leaves"):
            backend.save_tiff("confined/img", path)
    assert not outside.exists() and not (out_dir.parent / "escape.tif").exists()
    # a symlink (to a file outside, or a folder outside) is never written through
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    (out_dir / "link.tif").symlink_to(victim)
    with pytest.raises(FijiBridgeError, match="symbolic link"):
        backend.save_tiff("confined/img", out_dir / "link.tif", overwrite=True)
    (out_dir / "linkdir").symlink_to(tmp_path, target_is_directory=True)
    with pytest.raises(FijiBridgeError, match="symbolic link"):
        backend.save_tiff("confined/img", out_dir / "linkdir" / "x.tif")
    assert victim.read_text() == "keep me" and not (tmp_path / "x.tif").exists()
    # an existing file is replaced only when asked
    with pytest.raises(FijiBridgeError, match="exists"):
        backend.save_tiff("confined/img", "sub/rel.tif")
    backend.save(image + 1, "confined/img.tif")
    backend.save_tiff("confined/img", "sub/rel.tif", overwrite=True)
    np.testing.assert_array_equal(tifffile.imread(saved), image + 1)
    assert sorted(p.name for p in (out_dir / "sub").iterdir()) == ["rel.tif"]  # no temporary left


def test_rgb_frames_become_imagej_rgb_images(backend: FijiStreamingBackend, out_dir: Path) -> None:
    rng = np.random.default_rng(11)
    rgb = rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)
    backend.save(rgb, "rgb/auto.tif")  # uint8 (H, W, 3): RGB by the documented auto-detection
    rgba = rng.integers(0, 256, (10, 14, 4), dtype=np.uint8)
    backend.save(rgba, "rgb/alpha.tif", axes="yxc")
    status = backend.flush()
    images = {i["title"]: i for i in status["images"]}
    assert (images["rgb/auto"]["bit_depth"], images["rgb/auto"]["width"], images["rgb/auto"]["height"]) == (24, 16, 12)
    assert images["rgb/alpha"]["bit_depth"] == 24 and images["rgb/alpha"]["slices"] == 1
    np.testing.assert_array_equal(tifffile.imread(backend.save_tiff("rgb/auto", out_dir / "auto.tif")), rgb)
    # ImageJ RGB holds no alpha: the colour channels are kept exactly
    np.testing.assert_array_equal(tifffile.imread(backend.save_tiff("rgb/alpha", out_dir / "alpha.tif")), rgba[..., :3])
    # an RGB time series: frames indexed by t
    for t in range(3):
        backend.save(rgb + t, f"rgb/t{t}.tif", layer="rgb/series", axes="tyxc", index={"t": t})
    series = tifffile.imread(backend.save_tiff("rgb/series", out_dir / "rgb-series.tif"))
    np.testing.assert_array_equal(series, np.stack([rgb + t for t in range(3)]))


def test_frames_the_hyperstack_cannot_take_are_reported_to_the_sender(
    bridge: FijiBridge, out_dir: Path
) -> None:
    be = FijiStreamingBackend(bridge.port, control_port=bridge.control_port)
    try:
        frame = np.ones((8, 8), np.uint16)
        be.save(frame, "series/t0.tif", layer="mixed", index={"t": 0})
        be.save(frame.astype(np.float32), "series/t1.tif", layer="mixed", index={"t": 1})  # dtype changes
        be.save(np.ones((4, 4, 3), np.uint16), "rgb16.tif", axes="yxc")  # RGB must be uint8
        status = be.flush()
        assert status["streams"][be.sender.stream_id]["rejected"] == 2
        with pytest.warns(RejectedFrameWarning, match=r"refused 2 frame.*series/t1\.tif.*'mixed'.*does not match") as seen:
            be.save(frame, "series/t2.tif", layer="mixed", index={"t": 2})
        assert seen[0].filename == __file__  # the warning points at the caller's line
        reasons = [r.reason for r in be.sender.rejections.recent]
        assert "RGB" in reasons[1] and "uint8" in reasons[1]
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # surfaced once: the next save is quiet
            be.save(frame, "series/t3.tif", layer="mixed", index={"t": 3})
        be.flush()
        pixels = tifffile.imread(be.save_tiff("mixed", out_dir / "mixed.tif"))
        assert pixels.shape == (4, 8, 8) and pixels.dtype == np.uint16  # the stack kept its type
    finally:
        be.close()
    strict = FijiStreamingBackend(bridge.port, control_port=bridge.control_port, on_rejected="raise")
    try:
        strict.save(np.ones((8, 8), np.uint8), "strict/t0.tif", layer="strict", index={"t": 0})
        strict.save(np.ones((9, 9), np.uint8), "strict/t1.tif", layer="strict", index={"t": 1})
        strict.flush()
        with pytest.raises(RejectedFrameError, match="strict/t1.tif") as info:
            strict.save(np.ones((8, 8), np.uint8), "strict/t2.tif", layer="strict", index={"t": 2})
        assert [f.seq for f in info.value.frames] == [1]
    finally:
        strict.close()
