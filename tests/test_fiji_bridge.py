"""The Fiji bridge, headless: hyperstacks pixel-exact, control channel, launcher, faults.

Needs a JDK plus the Debian ``imagej`` and ``libjeromq-java`` packages; the jar
is built once per session with ``fiji_bridge/build.sh``.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import warnings
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tifffile

from fiji_testing import BUILD_SCRIPT, build_jar, free_ports, wait_until
from polystore import FileManager, StorageError
from polystore.exceptions import UnsupportedFormatError

zmq = pytest.importorskip("zmq")
from polystore.streaming.errors import NoReceiverError  # noqa: E402
from polystore.streaming.fiji import (  # noqa: E402
    FijiBridge,
    FijiBridgeError,
    FijiConversionWarning,
    FijiStreamingBackend,
    to_imagej_dtype,
)

pytestmark = pytest.mark.java


@pytest.fixture(scope="session")
def bridge_jar() -> Path:
    return build_jar()


@pytest.fixture(scope="module")
def bridge(bridge_jar: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[FijiBridge]:
    port, control = free_ports()
    out = tmp_path_factory.getbasetemp()  # every tmp_path lies inside: the bridge may write there
    with FijiBridge(port, control, gui=False, jar=bridge_jar, output_dir=out) as running:
        yield running
    assert not running.running()


@pytest.fixture
def backend(bridge: FijiBridge) -> Iterator[FijiStreamingBackend]:
    be = FijiStreamingBackend(bridge.port, control_port=bridge.control_port, send_timeout=5.0)
    yield be
    be.close()


def read_hyperstack(path: Path) -> tuple[np.ndarray[Any, Any], str, dict[str, Any]]:
    with tifffile.TiffFile(path) as tif:
        series = tif.series[0]
        return series.asarray(), series.axes, dict(tif.imagej_metadata or {})


def series_frames(data: np.ndarray[Any, Any]) -> tuple[list[Any], list[str], list[dict[str, int]]]:
    """Split a (t, c, z, y, x) array into frames, paths and indices (t outermost)."""
    frames, paths, indices = [], [], []
    for t in range(data.shape[0]):
        for c in range(data.shape[1]):
            for z in range(data.shape[2]):
                frames.append(data[t, c, z])
                paths.append(f"plate/A01/t{t}_c{c}_z{z}.tif")
                indices.append({"t": t, "c": c, "z": z})
    return frames, paths, indices


def test_save_batch_cxzxt_series_lands_pixel_exact(backend: FijiStreamingBackend, tmp_path: Path) -> None:
    fm = FileManager({"fiji": backend})
    data = np.random.default_rng(1).integers(0, 65536, (4, 2, 3, 24, 40), dtype=np.uint16)  # t c z y x
    frames, paths, indices = series_frames(data)
    order = np.random.default_rng(2).permutation(len(frames))  # arrival order must not matter
    fm.save_batch(
        [frames[i] for i in order], [paths[i] for i in order], backend="fiji",
        layer="series16", axes="tczyx", index=[indices[i] for i in order],
    )
    out = backend.save_tiff("series16", tmp_path / "series16.tif")
    pixels, axes, meta = read_hyperstack(out)
    assert axes == "TZCYX"
    assert (meta["channels"], meta["slices"], meta["frames"]) == (2, 3, 4)
    assert pixels.dtype == np.uint16
    np.testing.assert_array_equal(pixels, data.transpose(0, 2, 1, 3, 4))


@pytest.mark.parametrize("dtype", [np.uint8, np.float32])
def test_fm_save_frame_by_frame_keeps_dtype_and_pixels(
    backend: FijiStreamingBackend, tmp_path: Path, dtype: Any
) -> None:
    fm = FileManager({"fiji": backend})
    rng = np.random.default_rng(3)
    if dtype is np.uint8:
        data = rng.integers(0, 256, (2, 3, 2, 16, 20), dtype=np.uint8)
    else:
        data = rng.standard_normal((2, 3, 2, 16, 20)).astype(np.float32)
    layer = f"series_{np.dtype(dtype).name}"
    for frame, path, index in zip(*series_frames(data)):
        fm.save(frame, path, backend="fiji", layer=layer, index=index)
    pixels, axes, meta = read_hyperstack(backend.save_tiff(layer, tmp_path / f"{layer}.tif"))
    assert (meta["channels"], meta["slices"], meta["frames"]) == (3, 2, 2)
    assert pixels.dtype == np.dtype(dtype)
    np.testing.assert_array_equal(pixels, data.transpose(0, 2, 1, 3, 4))


def test_plain_save_replaces_one_image_titled_from_path(backend: FijiStreamingBackend, tmp_path: Path) -> None:
    first = np.full((10, 12), 7, dtype=np.uint16)
    second = np.arange(30 * 50, dtype=np.uint16).reshape(30, 50)
    backend.save(first, "/run/well_B2.tif")
    backend.save(second, "/run/well_B2.tif")  # new shape: replaces
    backend.save(second + 1, "/run/well_B2.tif")  # same shape: updated in place
    status = backend.flush()
    titles = [image["title"] for image in status["images"]]
    assert titles.count("run/well_B2") == 1
    pixels, _axes, _meta = read_hyperstack(backend.save_tiff("run/well_B2", tmp_path / "b2.tif"))
    np.testing.assert_array_equal(pixels, second + 1)


def test_whole_nd_array_becomes_a_hyperstack(backend: FijiStreamingBackend, tmp_path: Path) -> None:
    data = np.random.default_rng(4).integers(0, 256, (3, 5, 8, 9), dtype=np.uint8)  # c z y x
    backend.save(data, "stacks/czyx.tif", axes="czyx")
    pixels, axes, meta = read_hyperstack(backend.save_tiff("stacks/czyx", tmp_path / "czyx.tif"))
    assert (meta["channels"], meta["slices"]) == (3, 5)
    np.testing.assert_array_equal(pixels, data.transpose(1, 0, 2, 3))  # ImageJ order: z c y x


def test_indexed_frames_with_axes_of_their_own(backend: FijiStreamingBackend, tmp_path: Path) -> None:
    data = np.random.default_rng(7).integers(0, 65536, (3, 4, 10, 12), dtype=np.uint16)  # t z y x
    for t in (2, 0, 1):
        backend.save(data[t], f"zt/t{t}.tif", layer="zstacks", axes="tzyx", index={"t": t})
    pixels, axes, meta = read_hyperstack(backend.save_tiff("zstacks", tmp_path / "zstacks.tif"))
    assert (meta.get("channels", 1), meta["slices"], meta["frames"]) == (1, 4, 3)
    np.testing.assert_array_equal(pixels.reshape(data.shape), data)


def test_contrast_limits_and_big_endian_pixels(backend: FijiStreamingBackend, tmp_path: Path) -> None:
    image = np.arange(20 * 30, dtype=">u2").reshape(20, 30)
    backend.save(image, "display/be.tif", contrast_limits=(100, 400))
    pixels, _axes, meta = read_hyperstack(backend.save_tiff("display/be", tmp_path / "be.tif"))
    np.testing.assert_array_equal(pixels, image.astype(np.uint16))
    assert (meta["min"], meta["max"]) == (100.0, 400.0)


def test_other_dtypes_converted_by_the_documented_rule(backend: FijiStreamingBackend, tmp_path: Path) -> None:
    signed = np.arange(-60, 60, dtype=np.int16).reshape(10, 12)
    with pytest.warns(FijiConversionWarning, match="int16 converted to float32"):
        backend.save(signed, "conv/signed.tif")
    pixels, _axes, _meta = read_hyperstack(backend.save_tiff("conv/signed", tmp_path / "signed.tif"))
    assert pixels.dtype == np.float32
    np.testing.assert_array_equal(pixels, signed.astype(np.float32))
    assert to_imagej_dtype(np.zeros(3, bool))[0].dtype == np.uint8
    assert to_imagej_dtype(np.zeros(3, np.int64))[0].dtype == np.float32
    assert to_imagej_dtype(np.zeros(3, ">u2"))[1] is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        backend.save(np.zeros((4, 4), np.uint16), "conv/no_warning.tif")
    with pytest.raises(UnsupportedFormatError, match="complex"):
        backend.save(np.zeros((4, 4), np.complex64), "conv/complex.tif")


def test_unshowable_messages_are_dropped_and_reported(bridge: FijiBridge) -> None:
    ctx = zmq.Context.instance()
    push = ctx.socket(zmq.PUSH)
    push.setsockopt(zmq.LINGER, 1000)
    push.connect(bridge.endpoint)
    before = bridge.control.status()
    base = {"v": 1, "kind": "image", "stream": "drop-test", "path": "x.tif", "order": "C",
            "layer": None, "axes": None, "display": {}, "meta": {}, "sent": 0.0}
    payload = np.zeros((4, 4), np.int32)
    push.send_multipart([json.dumps({**base, "seq": 0, "dtype": "<i4", "shape": [4, 4], "nbytes": 64,
                                     "index": None}).encode(), payload.tobytes()])
    push.send_multipart([json.dumps({**base, "seq": 1, "dtype": "<u2", "shape": [4, 4], "nbytes": 32,
                                     "index": {"p": 2}}).encode(), payload.astype(np.uint16).tobytes()])
    push.close()
    status = wait_until(
        lambda: (s := bridge.control.status())["streams"].get("drop-test", {}).get("last_seq") == 1 and s,
        what="the bridge to handle both messages",
    )
    assert status["dropped"] == before["dropped"] + 2
    assert status["malformed"] == before["malformed"]
    assert "index axis 'p'" in status["last_error"]
    bridge.control.ping()


def test_fuzzed_messages_leave_the_bridge_alive(bridge: FijiBridge, backend: FijiStreamingBackend,
                                                tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    before = bridge.control.status()
    ctx = zmq.Context.instance()
    push = ctx.socket(zmq.PUSH)
    push.setsockopt(zmq.LINGER, 2000)
    push.connect(bridge.endpoint)
    good = {"v": 1, "kind": "image", "stream": "fuzz", "seq": 0, "path": "f.tif", "dtype": "<u2",
            "shape": [4, 4], "order": "C", "nbytes": 32, "layer": None, "axes": None, "index": None,
            "display": {}, "meta": {}, "sent": 0.0}
    bad_values: list[Any] = [None, -1, 2**63, 1.5, "x", [], {}, [1, -2], [2**40, 2**40], True, "\u0000"]
    messages: list[list[bytes]] = []
    for _ in range(120):  # valid JSON, invalid header
        header = dict(good)
        key = list(good)[int(rng.integers(len(good)))]
        if rng.random() < 0.3:
            del header[key]
        else:
            header[key] = bad_values[int(rng.integers(len(bad_values)))]
        messages.append([json.dumps(header).encode(), rng.bytes(int(rng.integers(0, 40)))])
    for _ in range(60):  # random bytes, wrong frame counts
        parts = [rng.bytes(int(rng.integers(0, 300))) for _ in range(int(rng.integers(1, 5)))]
        messages.append(parts)
    messages += [
        [b"[" * 100000, b""],  # deep nesting
        [b"\xff\xfe{}", b""],  # not UTF-8
        [b'{"v": 1e999}', b""],
        [json.dumps({**good, "shape": [2**31 - 1, 2**31 - 1], "nbytes": 0}).encode(), b""],
        [json.dumps(good).encode(), b"short"],
        [json.dumps(good).encode()],
        [json.dumps(good).encode(), bytes(32), b"extra"],
    ]
    for parts in messages:
        push.send_multipart(parts)
    # the control socket gets garbage too
    for raw in (b"", b"nope", b'{"cmd": 5}', b'{"cmd": "rm -rf"}', b'{"cmd": "save_tiff"}', b"\xff" * 50,
                json.dumps({"cmd": "save_tiff", "title": "fuzz/after", "path": str(tmp_path / "x.sh")}).encode(),
                json.dumps({"cmd": "save_tiff", "title": "nope", "path": "relative.tif"}).encode()):
        req = ctx.socket(zmq.REQ)
        req.setsockopt(zmq.LINGER, 0)
        req.connect(bridge.control.endpoint)
        req.send(raw)
        assert req.poll(5000), "the control socket stopped answering"
        assert json.loads(req.recv())["ok"] is False
        req.close()
    # afterwards a good frame still lands, pixel-exact
    image = np.arange(16, dtype=np.uint16).reshape(4, 4)
    backend.save(image, "fuzz/after.tif")
    backend.flush()

    def handled() -> dict[str, Any] | None:
        now = bridge.control.status()
        done = now["received"] + now["malformed"] - before["received"] - before["malformed"]
        return now if done >= len(messages) + 1 else None

    # the push socket stays open until the bridge took every message: closed earlier, its linger
    # would drop what the bridge (4 messages of receive queue) had not read yet on a loaded machine
    status = wait_until(handled, what="the bridge to handle every fuzzed message")
    push.close()
    assert bridge.running()
    # every message is counted exactly once, and the garbage ones as malformed
    assert status["received"] + status["malformed"] - before["received"] - before["malformed"] == len(messages) + 1
    assert status["malformed"] - before["malformed"] >= 60 + 7
    assert status["control_errors"] - before["control_errors"] == 8
    assert not (tmp_path / "x.sh").exists()
    pixels, _axes, _meta = read_hyperstack(backend.save_tiff("fuzz/after", tmp_path / "after.tif"))
    np.testing.assert_array_equal(pixels, image)


def test_no_bridge_gives_a_bounded_error_naming_the_endpoint() -> None:
    port, control = free_ports()
    be = FijiStreamingBackend(port, control_port=control, send_timeout=0.5, control_timeout=0.5)
    with pytest.raises(NoReceiverError, match=f"127.0.0.1:{port}") as info:
        be.save(np.zeros((8, 8), np.uint16), "nobody.tif")
    assert isinstance(info.value, StorageError)
    assert "polystore.streaming.fiji start" in str(info.value)
    with pytest.raises(FijiBridgeError, match=f"127.0.0.1:{control}"):
        be.ping()
    be.close()


def test_bridge_killed_mid_stream_does_not_hang_and_restart_recovers(bridge_jar: Path, tmp_path: Path) -> None:
    port, control = free_ports()
    running = FijiBridge(port, control, gui=False, jar=bridge_jar, output_dir=tmp_path).start()
    be = FijiStreamingBackend(port, control_port=control, send_timeout=1.0, control_timeout=1.0)
    frame = np.ones((256, 256), np.uint16)
    for i in range(20):
        be.save(frame, "live.tif")
    be.flush()
    assert running.pid is not None
    os.kill(running.pid, signal.SIGKILL)
    with pytest.raises(StorageError):  # NoReceiverError once ZeroMQ notices the peer is gone
        for i in range(10000):
            be.save(frame, "live.tif")
    with pytest.raises(FijiBridgeError):
        be.status()
    running.stop()
    # a bridge restarted on the same ports receives from the same sender again
    restarted = FijiBridge(port, control, gui=False, jar=bridge_jar, output_dir=tmp_path).start()
    try:
        image = np.arange(256 * 256, dtype=np.uint16).reshape(256, 256)
        be.save(image, "live.tif")
        pixels, _axes, _meta = read_hyperstack(be.save_tiff("live", tmp_path / "live.tif"))
        np.testing.assert_array_equal(pixels, image)
    finally:
        be.close()
        restarted.stop()
    assert not restarted.running()


def test_second_bridge_on_a_busy_port_is_refused(bridge: FijiBridge, bridge_jar: Path) -> None:
    with pytest.raises(FijiBridgeError, match="cannot bind|another Fiji bridge"):
        FijiBridge(bridge.port, bridge.control_port, gui=False, jar=bridge_jar).start(timeout=20)
    bridge.control.ping()  # the first one is untouched


def test_cli_start_status_save_stop(bridge_jar: Path, tmp_path: Path) -> None:
    port, control = free_ports()
    env = {**os.environ, "POLYSTORE_FIJI_JAR": str(bridge_jar), "XDG_RUNTIME_DIR": str(tmp_path)}
    cli = [sys.executable, "-m", "polystore.streaming.fiji", "--port", str(port), "--control-port", str(control)]

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([*cli, *args], capture_output=True, text=True, env=env, timeout=60)

    started = run("start", "--headless", "--output-dir", str(tmp_path))
    assert started.returncode == 0, started.stderr
    pid = json.loads(started.stdout)["pid"]
    try:
        assert json.loads(run("ping").stdout)["pid"] == pid
        be = FijiStreamingBackend(port, control_port=control, send_timeout=5.0)
        be.save(np.eye(6, dtype=np.uint8) * 9, "cli/eye.tif")
        be.flush()
        be.close()
        status = json.loads(run("status").stdout)
        assert status["images"][0]["title"] == "cli/eye"
        saved = run("save-tiff", "cli/eye", str(tmp_path / "eye.tif"))
        assert saved.returncode == 0, saved.stderr
        np.testing.assert_array_equal(tifffile.imread(tmp_path / "eye.tif"), np.eye(6, dtype=np.uint8) * 9)
    finally:
        stopped = run("stop")
    assert stopped.returncode == 0, stopped.stderr
    wait_until(lambda: not Path(f"/proc/{pid}").exists() or "Z" in Path(f"/proc/{pid}/stat").read_text().split()[2],
               what="the bridge process to exit")
    assert run("ping").returncode == 1


def test_build_against_a_fiji_app_folder_and_run_from_it(bridge_jar: Path, tmp_path: Path) -> None:
    fiji = tmp_path / "Fiji.app"
    (fiji / "jars").mkdir(parents=True)
    (fiji / "plugins").mkdir()
    shutil.copy("/usr/share/java/ij.jar", fiji / "jars" / "ij-1.53t.jar")  # as Fiji names them
    shutil.copy("/usr/share/java/jeromq.jar", fiji / "jars" / "jeromq-0.3.6.jar")
    shutil.copy("/usr/share/java/gson.jar", fiji / "jars" / "gson-2.10.jar")
    out = tmp_path / "build"
    built = subprocess.run(["sh", str(BUILD_SCRIPT), str(fiji)], capture_output=True, text=True,
                           env={**os.environ, "BUILD_DIR": str(out)}, timeout=120)
    assert built.returncode == 0, built.stderr
    assert (out / "classpath.txt").read_text().split() == [
        str(fiji / "jars" / "ij-1.53t.jar"), str(fiji / "jars" / "jeromq-0.3.6.jar"),
        str(fiji / "jars" / "gson-2.10.jar")]
    with zipfile.ZipFile(out / "polystore_bridge.jar") as jar:
        assert "plugins.config" in jar.namelist()  # ImageJ's menu entries
    port, control = free_ports()
    with FijiBridge(port, control, gui=False, jar=out / "polystore_bridge.jar") as running:
        assert str(fiji / "jars" / "jeromq-0.3.6.jar") in " ".join(running.command())
        be = FijiStreamingBackend(port, control_port=control)
        be.save(np.full((5, 7), 3, np.uint8), "fiji_app/check.tif")
        assert be.flush()["placed"] == 1
        be.close()
    bad = subprocess.run(["sh", str(BUILD_SCRIPT), str(tmp_path / "nowhere")], capture_output=True, text=True)
    assert bad.returncode == 2 and "not a Fiji.app folder" in bad.stderr
