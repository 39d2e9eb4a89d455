"""Chunk encoding into a reused per-thread buffer (the write path of local and cluster saves)."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

from polystore.zarr._codec import _Codec
from polystore.zarr._fs import _LocalFS


def _off_main(fn: Callable[[], Any]) -> Any:
    """``fn()`` run on a new thread (numcodecs uses Blosc's own threads on the main thread only)."""
    got: list[Any] = []
    failed: list[BaseException] = []

    def run() -> None:
        try:
            got.append(fn())
        except BaseException as exc:  # noqa: BLE001 - re-raised below
            failed.append(exc)

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    if failed:
        raise failed[0]
    return got[0]


@pytest.mark.parametrize("cname", ["lz4", "zstd"])
@pytest.mark.parametrize("shuffle", ["noshuffle", "shuffle", "bitshuffle"])
@pytest.mark.parametrize("dtype", ["uint8", "uint16", "float32", "bool"])
def test_frames_are_numcodecs_frames(cname: str, shuffle: str, dtype: str) -> None:
    rng = np.random.default_rng(1)
    block = np.ascontiguousarray((rng.integers(0, 50, size=(3, 64, 96)) + np.arange(96)).astype(dtype))
    codec = _Codec(cname, 1, shuffle)
    numcodec = codec.numcodec()
    assert numcodec is not None
    got, expected = _off_main(lambda: (bytes(codec.encode_chunk(block, numcodec)), bytes(numcodec.encode(block))))
    assert got == expected
    assert np.array_equal(np.frombuffer(numcodec.decode(got), dtype).reshape(block.shape), block)


def test_off_the_main_thread_the_frame_is_a_view_of_one_reused_buffer(monkeypatch: pytest.MonkeyPatch) -> None:
    import numcodecs.blosc

    monkeypatch.setattr(numcodecs.blosc, "use_threads", None)  # numcodecs' default (zarr sets False)
    block = np.arange(1 << 20, dtype=np.uint16).reshape(1024, 1024)
    codec = _Codec("lz4", 1, "shuffle")
    numcodec = codec.numcodec()

    assert numcodec is not None

    def twice() -> tuple[Any, Any, bytes, bytes]:
        first = codec.encode_chunk(block, numcodec)
        start = np.frombuffer(first, np.uint8).ctypes.data
        copy = bytes(first)
        second = codec.encode_chunk(block[::-1].copy(), numcodec)
        return start, np.frombuffer(second, np.uint8).ctypes.data, copy, bytes(numcodec.encode(block))

    first, second, frame, expected = _off_main(twice)
    assert first == second  # the same scratch buffer: no new allocation per chunk
    assert frame == expected  # what numcodecs makes on the same thread
    # where numcodecs would use Blosc's own threads (its default on the main thread), it does
    assert isinstance(codec.encode_chunk(block, numcodec), bytes)
    monkeypatch.setattr(numcodecs.blosc, "use_threads", True)
    assert isinstance(_off_main(lambda: codec.encode_chunk(block, numcodec)), bytes)


def test_raw_chunks_are_their_bytes() -> None:
    block = np.arange(24, dtype="<u2").reshape(2, 3, 4)
    assert bytes(_Codec(None).encode_chunk(block, None)) == block.tobytes()


def test_local_write_takes_views_and_makes_missing_folders(tmp_path: Any) -> None:
    fs = _LocalFS()
    data = np.arange(300_000, dtype=np.uint8)
    path = os.path.join(str(tmp_path), "a", "b", "c", "0")
    fs.write(path, memoryview(data)[10:])
    with open(path, "rb") as f:
        assert f.read() == data[10:].tobytes()
    fs.write(path, b"xy")  # rewritten: truncated to the new content
    with open(path, "rb") as f:
        assert f.read() == b"xy"
