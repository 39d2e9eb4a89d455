"""StreamingBackend and the Qt-free receiver over real ZeroMQ sockets."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

zmq = pytest.importorskip("zmq")

from polystore import BackendRegistry, FileManager, StorageError  # noqa: E402
from polystore.streaming import (  # noqa: E402
    NoReceiverError,
    ReceiveTimeoutError,
    StreamingBackend,
    StreamReceiver,
    StreamSender,
)
from polystore.streaming.endpoints import RemoteBindError, ipc_endpoint, runtime_dir  # noqa: E402
from polystore.streaming.napari import NapariStreamingBackend, default_napari_endpoint  # noqa: E402
from polystore.streaming.sender import DEFAULT_SEND_TIMEOUT  # noqa: E402


@pytest.fixture(params=["tcp", "ipc"])
def endpoint(request: Any, tmp_path: Path) -> str:
    return "tcp://127.0.0.1:0" if request.param == "tcp" else f"ipc://{tmp_path}/s.sock"


def test_push_pull_round_trip(endpoint: str) -> None:
    with StreamingBackend(mode="pull", endpoint=endpoint) as pull:
        with StreamingBackend(mode="push", endpoint=pull.endpoint) as push:
            images = {
                "a.tif": np.arange(12, dtype=">u2").reshape(3, 4),
                "b.npy": np.linspace(0, 1, 30, dtype=np.float64).reshape(2, 3, 5)[:, ::2],
                "c": np.array(7, dtype=np.int32),
            }
            for path, image in images.items():
                push.save(image, path, metadata={"who": path})
            # load() by path picks the matching message even when others came first
            for path in ("c", "a.tif", "b.npy"):
                out = pull.load(path, timeout=10)
                assert out.dtype == images[path].dtype and out.shape == images[path].shape
                np.testing.assert_array_equal(out, images[path])
            with pytest.raises(ReceiveTimeoutError):
                pull.load("never", timeout=0.1)


def test_each_load_keeps_its_own_timeout(endpoint: str) -> None:
    """A short timeout after long ones still ends in time (the socket's timeout is reused, not stale)."""
    with StreamingBackend(mode="pull", endpoint=endpoint) as pull:
        with StreamingBackend(mode="push", endpoint=pull.endpoint) as push:
            for i in range(3):
                push.save(np.full(4, i, np.uint8), "x")
                assert pull.load("*", timeout=60)[0] == i
            start = time.monotonic()
            with pytest.raises(ReceiveTimeoutError):
                pull.load("*", timeout=0.2)
            assert time.monotonic() - start < 30  # not the 60 s of the earlier loads
            push.save(np.full(4, 9, np.uint8), "x")
            assert pull.load("*", timeout=None)[0] == 9
            with pytest.raises(ReceiveTimeoutError):
                pull.load("*", timeout=0.05)


def test_seed_example_with_port_and_file_manager() -> None:
    pull = StreamingBackend(mode="pull", port=_free_port())
    try:
        port = int(pull.endpoint.rsplit(":", 1)[1])
        fm = FileManager(BackendRegistry(streaming=StreamingBackend(mode="push", port=port)))
        fm.save(np.array([1, 2, 3]), "stream", backend="streaming")
        fm.save_batch([np.ones(2), np.zeros(2)], ["s/0", "s/1"], backend="streaming")
        np.testing.assert_array_equal(pull.load("stream"), [1, 2, 3])
        frame = pull.receive("s/1")
        assert frame.header.seq == 2
        np.testing.assert_array_equal(frame.data, np.zeros(2))
        with pytest.raises(TypeError, match="colour"):
            fm.save(np.ones(2), "x", backend="streaming", colour="red")
    finally:
        pull.close()


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_no_receiver_raises_bounded_storage_error(tmp_path: Path) -> None:
    assert DEFAULT_SEND_TIMEOUT <= 5
    endpoint = f"ipc://{tmp_path}/nobody.sock"
    backend = NapariStreamingBackend(endpoint=endpoint, send_timeout=0.3)
    with pytest.raises(StorageError) as info:
        backend.save(np.zeros((4, 4)), "x.tif")
    assert isinstance(info.value, NoReceiverError)
    assert endpoint in str(info.value) and "Stream receiver" in str(info.value)
    assert backend.sender.next_seq == 0  # nothing counted as sent
    backend.close()


def test_receiver_killed_and_restarted_mid_stream(tmp_path: Path) -> None:
    endpoint = f"ipc://{tmp_path}/restart.sock"
    script = textwrap.dedent(
        f"""
        import sys
        from polystore.streaming import StreamingBackend
        pull = StreamingBackend(mode="pull", endpoint={endpoint!r})
        print("ready", flush=True)
        while True:
            frame = pull.receive(timeout=None)
            print(frame.header.path, int(frame.data.sum()), flush=True)
        """
    )

    def start() -> subprocess.Popen[str]:
        proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        return proc

    sender = StreamSender(endpoint, send_timeout=0.5)
    first = start()
    try:
        for i in range(5):
            sender.send(np.full(10, i, np.int64), f"f{i}")
        assert first.stdout is not None
        assert [first.stdout.readline().split() for _ in range(5)] == [[f"f{i}", str(10 * i)] for i in range(5)]
    finally:
        first.kill()
        first.wait()
    # While nobody listens a save is queued (until ZeroMQ notices the dead peer; those
    # messages are lost) or fails within the timeout naming the endpoint: never hangs.
    failed = None
    for i in range(100):
        try:
            sender.send(np.full(10, 100, np.int64), f"down{i}")
        except NoReceiverError as exc:
            failed = exc
            break
        time.sleep(0.05)
    assert failed is not None and endpoint in str(failed)
    second = start()
    try:
        delivered = False
        for _ in range(40):  # ZeroMQ reconnects by itself within its reconnect interval
            try:
                sender.send(np.full(10, 7, np.int64), "after")
                delivered = True
                break
            except NoReceiverError:
                continue
        assert delivered
        assert second.stdout is not None
        assert second.stdout.readline().split() == ["after", "70"]
    finally:
        second.kill()
        second.wait()
        sender.close(0)


def test_slow_consumer_bounds_memory_and_backpressures_sender(endpoint: str) -> None:
    frame = np.zeros(256 * 1024, np.uint8)
    receiver = StreamReceiver(endpoint, max_queued_bytes=1024 * 1024, rcvhwm=2).start()
    sender = StreamSender(receiver.endpoint, send_timeout=0.3, sndhwm=2)
    try:
        sent = 0
        with pytest.raises(NoReceiverError):
            for t in range(1000):  # every frame indexed: none may be coalesced away
                sender.send(frame, "stack", index={"t": t})
                sent += 1
        stats = receiver.stats()
        assert stats.queued_bytes <= 1024 * 1024 + frame.nbytes
        assert stats.backpressure_waits >= 1
        assert sent < 1000
        # The consumer catches up: everything sent arrives, in order, and sending works again.
        received: list[int] = []
        while len(received) < sent:
            received += [f.header.index["t"] for f in receiver.take() if f.header.index]
            if len(received) < sent:
                received += [receiver.get(timeout=5).header.index["t"]]  # type: ignore[index]
        assert received == list(range(sent))
        sender.send(frame, "stack", index={"t": sent})
        assert receiver.get(timeout=5).header.index == {"t": sent}
        assert receiver.stats().gaps == 0
    finally:
        sender.close(0)
        receiver.stop()


def test_gaps_in_sequence_numbers_are_counted(endpoint: str) -> None:
    with StreamReceiver(endpoint, coalesce=False) as receiver:
        sender = StreamSender(receiver.endpoint, send_timeout=2)
        sender.send(np.zeros(2), "a")
        sender._seq += 3  # three messages "lost"
        sender.send(np.zeros(2), "b")
        other = StreamSender(receiver.endpoint, send_timeout=2)  # another stream: own numbering
        other.send(np.zeros(2), "c")
        for _ in range(3):
            receiver.get(timeout=5)
        stats = receiver.stats()
        assert stats.received == 3 and stats.gaps == 3 and stats.malformed == 0
        sender.close(0)
        other.close(0)


def test_oversized_frame_is_refused_and_stream_continues(endpoint: str) -> None:
    with StreamReceiver(endpoint, coalesce=False, max_frame_bytes=100_000) as receiver:
        sender = StreamSender(receiver.endpoint, send_timeout=0.5)
        try:
            sender.send(np.zeros(1_000_000, np.uint8), "huge")
        except NoReceiverError:
            pass
        arrived = None
        for i in range(40):
            try:
                sender.send(np.full(4, i, np.uint8), "small")
            except NoReceiverError:
                continue
            try:
                arrived = receiver.get("small", timeout=0.25)
                break
            except ReceiveTimeoutError:
                continue
        assert arrived is not None
        assert receiver.stats().received >= 1
        with pytest.raises(ReceiveTimeoutError):
            receiver.get("huge", timeout=0.05)
        sender.close(0)


@pytest.mark.skipif(not zmq.has("curve"), reason="libzmq without CURVE")
def test_curve_encrypted_stream_and_unauthenticated_sender_refused() -> None:
    server_public, server_secret = zmq.curve_keypair()
    with StreamReceiver(
        "tcp://127.0.0.1:0", coalesce=False, curve_secret_key=server_secret, curve_public_key=server_public
    ) as receiver:
        good = StreamSender(receiver.endpoint, send_timeout=2, curve_server_key=server_public)
        good.send(np.arange(5), "secret")
        np.testing.assert_array_equal(receiver.get(timeout=5).data, np.arange(5))
        plain = StreamSender(receiver.endpoint, send_timeout=0.3)
        with pytest.raises(NoReceiverError):
            plain.send(np.arange(5), "plain")
        assert receiver.stats().received == 1
        good.close(0)
        plain.close(0)


def test_non_loopback_bind_needs_allow_remote() -> None:
    with pytest.raises(RemoteBindError):
        StreamReceiver("tcp://0.0.0.0:0")
    with pytest.raises(RemoteBindError):
        StreamingBackend(mode="pull", host="0.0.0.0", port=_free_port())
    with StreamReceiver("tcp://0.0.0.0:0", allow_remote=True) as receiver:
        assert receiver.listening


def test_bind_failure_names_the_endpoint(endpoint: str) -> None:
    with StreamReceiver(endpoint) as first:
        with pytest.raises(StorageError, match="cannot listen on"):
            StreamReceiver(first.endpoint).start()  # ipc: libzmq alone would steal the path
        with pytest.raises(StorageError, match="cannot listen on"):
            StreamingBackend(mode="pull", endpoint=first.endpoint)
    with StreamReceiver(endpoint.replace(":0", f":{_free_port()}")) as again:  # free again after stop
        assert again.listening


def test_default_endpoints_are_loopback_or_private_ipc(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("POLYSTORE_NAPARI_ENDPOINT", raising=False)
    assert default_napari_endpoint() == "tcp://127.0.0.1:5570"
    assert NapariStreamingBackend().endpoint == "tcp://127.0.0.1:5570"
    assert StreamingBackend().endpoint == "tcp://127.0.0.1:5555"
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    endpoint = ipc_endpoint("napari")
    assert endpoint == f"ipc://{tmp_path}/polystore/napari.sock"
    assert stat.S_IMODE(os.stat(runtime_dir()).st_mode) == 0o700
    monkeypatch.setenv("POLYSTORE_NAPARI_ENDPOINT", endpoint)
    with StreamReceiver(endpoint) as receiver:
        sender = NapariStreamingBackend(send_timeout=2)
        sender.save(np.ones((2, 2)), "x.tif")
        assert receiver.get(timeout=5).layer == "x"
        sender.close()


def test_import_polystore_does_not_import_zmq_and_missing_zmq_names_extra() -> None:
    code = textwrap.dedent(
        """
        import sys
        import polystore
        assert "zmq" not in sys.modules and "qtpy" not in sys.modules and "napari" not in sys.modules
        sys.modules["zmq"] = None
        try:
            import polystore.streaming
        except polystore.MissingDependencyError as exc:
            assert exc.extra == "streaming", exc
            print("ok")
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "ok", out.stderr


def test_sender_works_in_forked_children() -> None:
    import multiprocessing

    with StreamReceiver("tcp://127.0.0.1:0", coalesce=False) as receiver:
        backend = StreamingBackend(endpoint=receiver.endpoint, send_timeout=5)
        backend.save(np.zeros(3), "parent/0")  # the parent's socket exists before the fork
        ctx = multiprocessing.get_context("fork")
        children = [ctx.Process(target=_child_save, args=(backend, i)) for i in range(2)]
        for child in children:
            child.start()
        for child in children:
            child.join(30)
            assert child.exitcode == 0
        backend.save(np.ones(3), "parent/1")
        paths = sorted(receiver.get(timeout=10).header.path for _ in range(4))
        assert paths == ["child/0", "child/1", "parent/0", "parent/1"]
        stats = receiver.stats()
        assert stats.malformed == 0 and stats.gaps == 0 and stats.out_of_order == 0
        backend.close()


def _child_save(backend: StreamingBackend, i: int) -> None:
    backend.save(np.full(3, i), f"child/{i}")
    backend.close()


def test_a_receiver_that_could_not_bind_leaves_nothing_that_blocks_exit(tmp_path: Path) -> None:
    # A failed bind on an ipc path in use used to leave its socket open; the
    # context's garbage collection then blocked the process for ever.
    code = textwrap.dedent(
        f"""
        import gc
        from polystore.exceptions import StorageError
        from polystore.streaming import StreamReceiver
        endpoint = "ipc://{tmp_path}/busy.sock"
        with StreamReceiver(endpoint):
            second = StreamReceiver(endpoint)
            try:
                second.start()
            except StorageError:
                pass
            del second
            gc.collect()
        print("exited")
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.stdout.strip() == "exited", out.stderr
