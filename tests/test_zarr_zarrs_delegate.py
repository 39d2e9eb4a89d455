"""Whole-array loads and new-array writes delegated to zarrs' codec pipeline (issue 9's rule).

The real zarrs runs in every test; a counting wrapper around its pipeline
class only records that it was called. The guarantees of the own path must
hold on the delegated one: same values (fill values of missing chunks
included), chunk keys from polystore's validated metadata, a damaged chunk
named, no process-wide zarr setting changed, one version per load, the own
path where zarrs is absent or unusable.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("zarr")
pytest.importorskip("zarrs")

import zarr  # noqa: E402

import polystore.zarr._zarrs_delegate as zd  # noqa: E402
from polystore.config import ZarrCompressor, ZarrConfig  # noqa: E402
from polystore.exceptions import ImageLoadError  # noqa: E402
from polystore.zarr import ZarrBackend  # noqa: E402


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, int]]:
    """Counts of zarrs pipeline reads and writes (the real zarrs does the work)."""
    hook = zd._hook()
    assert hook is not None, "zarrs is installed but its pipeline hook was not found"
    impl_type, chunk_item, store_type = hook
    seen = {"read": 0, "write": 0, "built": 0}

    class Counting:
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            seen["built"] += 1
            self.impl = impl_type(*args, **kwargs)

        def retrieve_chunks_and_apply_index(self, items: Any, out: Any) -> None:
            seen["read"] += 1
            self.impl.retrieve_chunks_and_apply_index(items, out)

        def store_chunks_with_indices(self, items: Any, value: Any, write_empty: bool) -> None:
            seen["write"] += 1
            self.impl.store_chunks_with_indices(items, value, write_empty)

    monkeypatch.setattr(zd, "_hook", lambda: (Counting, chunk_item, store_type))
    yield seen


DTYPES = ["bool", "int8", "uint16", "int64", "float16", "float32", "float64", "complex64", "complex128"]


@pytest.mark.parametrize("fmt", [2, 3])
@pytest.mark.parametrize("dtype", DTYPES)
def test_whole_loads_and_new_saves_go_through_zarrs(
    tmp_path: Path, calls: dict[str, int], fmt: int, dtype: str
) -> None:
    backend = ZarrBackend(root=tmp_path, config=ZarrConfig(zarr_format=fmt))
    own = ZarrBackend(root=tmp_path, config=ZarrConfig(zarr_format=fmt, use_zarrs=False))
    rng = np.random.default_rng(1)
    for shape, chunks in (((), None), ((7,), (3,)), ((5, 9, 11), (2, 4, 5)), ((3, 70, 90), (1, 32, 32))):
        data = (rng.standard_normal(shape) * 50).astype(dtype)
        before = dict(calls)
        backend.save(data, f"a{len(shape)}.zarr", chunks=chunks)
        assert calls["write"] == before["write"] + 1
        got = backend.load(f"a{len(shape)}.zarr")
        assert calls["read"] == before["read"] + 1
        assert got.dtype == data.dtype and got.shape == data.shape
        np.testing.assert_array_equal(got, data)
        np.testing.assert_array_equal(own.load(f"a{len(shape)}.zarr"), data)  # the own reader agrees
        np.testing.assert_array_equal(zarr.open_array(str(tmp_path / f"a{len(shape)}.zarr"), mode="r")[...], data)


def test_batch_replaces_and_appends_stay_own_and_member_loads_go_through_zarrs(
    tmp_path: Path, calls: dict[str, int]
) -> None:
    backend = ZarrBackend(root=tmp_path)
    frames = [np.full((64, 64), i, np.uint16) for i in range(4)]
    backend.save_batch(frames, [f"b.zarr/f{i}" for i in range(4)], chunks=(1, 32, 32))
    written = calls["write"]  # a new batch is a new array: zarrs writes it
    assert written == 1
    backend.save_batch([np.full((64, 64), 9, np.uint16)], ["b.zarr/f1"])  # replace: staged member, own path
    backend.save_batch([np.full((64, 64), 7, np.uint16)], ["b.zarr/f4"])  # append: past the end, own path
    assert calls["write"] == written
    reads = calls["read"]
    assert int(backend.load("b.zarr/f1").max()) == 9 and int(backend.load("b.zarr/f4").min()) == 7
    assert calls["read"] == reads + 2  # one image of a batch: zarrs decodes that region
    whole = backend.load("b.zarr")
    assert calls["read"] == reads + 3
    np.testing.assert_array_equal(whole[:, 0, 0], [0, 9, 2, 3, 7])
    own = ZarrBackend(root=tmp_path, config=ZarrConfig(use_zarrs=False))
    for i in range(5):
        np.testing.assert_array_equal(backend.load(f"b.zarr/f{i}"), own.load(f"b.zarr/f{i}"))


def test_a_member_region_with_edge_chunks_and_missing_chunks_matches_the_own_reader(
    tmp_path: Path, calls: dict[str, int]
) -> None:
    backend = ZarrBackend(root=tmp_path)
    own = ZarrBackend(root=tmp_path, config=ZarrConfig(use_zarrs=False))
    rng = np.random.default_rng(3)
    frames = [rng.integers(0, 9, (50, 70)).astype(np.float32) for _ in range(3)]
    frames[1][:32, :32] = 0  # an all-fill chunk: not written, reads as the fill value
    backend.save_batch(frames, [f"e.zarr/f{i}" for i in range(3)], chunks=(1, 32, 32))
    for i in range(3):
        got = backend.load(f"e.zarr/f{i}")
        np.testing.assert_array_equal(got, frames[i])
        np.testing.assert_array_equal(got, own.load(f"e.zarr/f{i}"))
    assert calls["read"] == 3


def test_a_damaged_chunk_of_a_member_is_named_after_zarrs_fails(tmp_path: Path, calls: dict[str, int]) -> None:
    backend = ZarrBackend(root=tmp_path)
    frames = [(1000 + np.arange(64 * 64).reshape(64, 64) % 97).astype(np.uint16) for _ in range(3)]
    backend.save_batch(frames, [f"d.zarr/f{i}" for i in range(3)], chunks=(1, 32, 32))
    chunk = tmp_path / "d.zarr" / "c" / "1" / "1" / "0"
    chunk.write_bytes(chunk.read_bytes()[:17])
    with pytest.raises(ImageLoadError, match=r"corrupted chunk 'c/1/1/0'"):
        backend.load("d.zarr/f1")
    assert calls["read"] == 1
    np.testing.assert_array_equal(backend.load("d.zarr/f2"), frames[2])


def test_a_member_load_reuses_the_arrays_pipeline_until_its_metadata_changes(
    tmp_path: Path, calls: dict[str, int]
) -> None:
    backend = ZarrBackend(root=tmp_path)
    frames = [np.full((64, 64), i, np.uint16) for i in range(3)]
    backend.save_batch(frames, [f"b.zarr/f{i}" for i in range(3)], chunks=(1, 32, 32))
    built = calls["built"]  # the write pipeline of the new batch
    for _ in range(3):
        for i in range(3):
            assert int(backend.load(f"b.zarr/f{i}").max()) == i
    backend.load_batch(["b.zarr/f0", "b.zarr/f2"])
    assert calls["built"] == built + 1 and calls["read"] == 10  # one read pipeline for all ten loads
    backend.save_batch([np.full((64, 64), 9, np.uint16)], ["b.zarr/f1"])  # replace: same metadata
    assert int(backend.load("b.zarr/f1").min()) == 9 and calls["built"] == built + 1
    backend.save_batch([np.full((64, 64), 7, np.uint16)], ["b.zarr/f3"])  # append: the shape changes
    assert int(backend.load("b.zarr/f3").min()) == 7 and calls["built"] == built + 2
    np.testing.assert_array_equal(backend.load("b.zarr")[:, 0, 0], [0, 9, 2, 7])
    wrong: list[Any] = []

    def loads() -> None:  # three threads share the cached pipeline
        for i in range(20):
            got = backend.load(f"b.zarr/f{i % 4}")
            if int(got.min()) != [0, 9, 2, 7][i % 4] or int(got.max()) != [0, 9, 2, 7][i % 4]:
                wrong.append((i, np.unique(got)))

    threads = [threading.Thread(target=loads) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert wrong == [] and calls["built"] == built + 2
    backend.save(np.full((4, 64, 64), 0.5, np.float32), "b.zarr", chunks=(1, 32, 32))  # same folder, new dtype
    got = backend.load("b.zarr")
    assert got.dtype == np.float32 and float(got.min()) == float(got.max()) == 0.5 and calls["built"] == built + 4


def test_lazy_blocks_stay_on_the_own_reader(tmp_path: Path, calls: dict[str, int]) -> None:
    """A dask block is one chunk: the own reader decodes it in place, zarrs would copy it (performance.md)."""
    backend = ZarrBackend(root=tmp_path)
    rng = np.random.default_rng(5)
    data = rng.integers(0, 500, (3, 50, 70)).astype(np.uint16)
    data[1, :32, :32] = 0  # an all-fill chunk: not written, reads as the fill value
    backend.save_batch(list(data), [f"l.zarr/f{i}" for i in range(3)], chunks=(1, 32, 32))
    reads = calls["read"]
    lazy = backend.load("l.zarr", lazy=True)
    np.testing.assert_array_equal(lazy[1].compute(), data[1])
    np.testing.assert_array_equal(lazy[:, 10:40, 20:60].compute(), data[:, 10:40, 20:60])
    np.testing.assert_array_equal(backend.load("l.zarr/f2", lazy=True).compute(), data[2])
    assert calls["read"] == reads


def test_the_pipeline_cache_keeps_at_most_its_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(zd._ReadPipelines, "LIMIT", 3)
    zd._READERS.clear()
    backend = ZarrBackend(root=tmp_path)
    for i in range(5):
        backend.save(np.full((4, 8), i, np.int32), f"a{i}.zarr")
        assert int(backend.load(f"a{i}.zarr").max()) == i
    assert len(zd._READERS) == 3


@pytest.mark.parametrize(
    ("dtype", "fill", "expected"),
    [
        ("float32", "NaN", np.float32("nan")),
        ("float32", "0x7fc00001", np.frombuffer(bytes.fromhex("7fc00001"), ">f4")[0]),
        ("float64", "-Infinity", -np.inf),
        ("complex64", ["NaN", 0.5], complex(np.nan, 0.5)),
        ("int16", -7, -7),
        ("bool", True, True),
    ],
)
def test_missing_chunks_read_as_the_spec_fill_value(
    tmp_path: Path, calls: dict[str, int], dtype: str, fill: Any, expected: Any
) -> None:
    z = zarr.create_array(str(tmp_path / "f.zarr"), shape=(4, 6), chunks=(2, 3), dtype=dtype, compressors=None)
    z[:2, :3] = np.ones((2, 3), dtype)
    doc = json.loads((tmp_path / "f.zarr" / "zarr.json").read_text())
    doc["fill_value"] = fill  # as the spec writes it (zarr-python's create_array takes numbers)
    (tmp_path / "f.zarr" / "zarr.json").write_text(json.dumps(doc))
    got = ZarrBackend(root=tmp_path).load("f.zarr")
    assert calls["read"] == 1
    want = np.full((4, 6), expected, dtype)
    want[:2, :3] = 1
    assert got.tobytes() == want.tobytes()  # bit for bit: NaN payloads too


@pytest.mark.parametrize("cut", [0, 15, 17, "half", -1])
@pytest.mark.parametrize("compressor", [ZarrCompressor.LZ4, ZarrCompressor.NONE])
def test_a_damaged_chunk_is_named_after_zarrs_fails(
    tmp_path: Path, calls: dict[str, int], cut: Any, compressor: ZarrCompressor
) -> None:
    backend = ZarrBackend(root=tmp_path, config=ZarrConfig(compressor=compressor))
    rng = np.random.default_rng(0)
    backend.save((1000 + rng.integers(0, 64, (3, 64, 64))).astype(np.uint16), "t.zarr", chunks=(1, 32, 32))
    chunk = tmp_path / "t.zarr" / "c" / "2" / "1" / "0"
    raw = chunk.read_bytes()
    n = len(raw) // 2 if cut == "half" else len(raw) + cut if cut < 0 else cut
    chunk.write_bytes(raw[:n])
    with pytest.raises(ImageLoadError, match=r"corrupted chunk 'c/2/1/0' of array .*t\.zarr"):
        backend.load("t.zarr")
    assert calls["read"] == 1  # zarrs refused it first; the own reader named the key


def test_no_process_wide_zarr_setting_changes(tmp_path: Path, calls: dict[str, int]) -> None:
    path_before = zarr.config.get("codec_pipeline.path")
    backend = ZarrBackend(root=tmp_path)
    errors: list[BaseException] = []

    def work(i: int) -> None:
        try:
            for j in range(5):
                backend.save(np.full((4, 64, 64), i * 10 + j, np.uint16), f"c{i}.zarr", chunks=(1, 32, 32))
                assert int(backend.load(f"c{i}.zarr").max()) == i * 10 + j
                assert zarr.config.get("codec_pipeline.path") == path_before
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(i,)) for i in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    assert calls["read"] == 15 and calls["write"] == 15
    assert zarr.config.get("codec_pipeline.path") == path_before
    # an array zarr-python opens meanwhile keeps its own pipeline
    z = zarr.open_array(str(tmp_path / "c0.zarr"), mode="r")
    assert type(z._async_array.codec_pipeline).__name__ == "BatchedCodecPipeline"


def test_without_zarrs_the_own_path_runs(tmp_path: Path) -> None:
    code = textwrap.dedent(
        """
        import sys
        sys.modules["zarrs"] = None  # not installed
        import numpy as np
        import polystore.zarr._zarrs_delegate as zd
        from polystore.zarr import ZarrBackend
        assert not zd.available()
        backend = ZarrBackend(root=sys.argv[1])
        data = np.arange(3 * 40 * 40, dtype=np.uint16).reshape(3, 40, 40)
        backend.save(data, "n.zarr", chunks=(1, 16, 16))
        assert np.array_equal(backend.load("n.zarr"), data)
        print("ok")
        """
    )
    result = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "ok"


def test_a_child_forked_after_zarrs_ran_uses_the_own_path(tmp_path: Path) -> None:
    code = textwrap.dedent(
        """
        import os, sys
        import numpy as np
        import polystore.zarr._zarrs_delegate as zd
        from polystore.zarr import ZarrBackend
        backend = ZarrBackend(root=sys.argv[1])
        data = np.arange(2 * 64 * 64, dtype=np.uint16).reshape(2, 64, 64)
        backend.save(data, "p.zarr", chunks=(1, 32, 32))
        assert np.array_equal(backend.load("p.zarr"), data) and zd.available()
        backend.save_batch(list(data), ["b.zarr/f0", "b.zarr/f1"], chunks=(1, 32, 32))
        assert np.array_equal(backend.load("b.zarr/f1"), data[1]) and len(zd._READERS) == 2
        pid = os.fork()
        if pid == 0:
            ok = not zd.available() and len(zd._READERS) == 0 and np.array_equal(backend.load("p.zarr"), data)
            ok = ok and np.array_equal(backend.load("b.zarr/f1"), data[1]) and len(zd._READERS) == 0
            backend.save(data + 1, "q.zarr", chunks=(1, 32, 32))
            os._exit(0 if ok and np.array_equal(backend.load("q.zarr"), data + 1) else 3)
        _, status = os.waitpid(pid, 0)
        print("child", os.waitstatus_to_exitcode(status))
        """
    )
    result = subprocess.run([sys.executable, "-c", code, str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "child 0"


_REPLACER = textwrap.dedent(
    """
    import sys
    import numpy as np
    from polystore.zarr import ZarrBackend

    backend = ZarrBackend(root=sys.argv[1])
    for version in range(1, 1_000_000):
        backend.save_batch([np.full((128, 128), version, np.uint16)], ["b.zarr/f1"])
        if version == 1:
            print("ready", flush=True)
    """
)


def test_a_whole_batch_load_during_member_replaces_sees_one_version(tmp_path: Path, calls: dict[str, int]) -> None:
    backend = ZarrBackend(root=tmp_path)
    frames = [np.zeros((128, 128), np.uint16) for _ in range(3)]
    backend.save_batch(frames, ["b.zarr/f0", "b.zarr/f1", "b.zarr/f2"], chunks=(1, 32, 32))
    writer = subprocess.Popen(
        [sys.executable, "-c", _REPLACER, str(tmp_path)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    try:
        assert writer.stdout is not None and writer.stdout.readline().strip() == "ready"
        versions = set()
        deadline = time.monotonic() + 6
        loads = 0
        while time.monotonic() < deadline or loads < 20:
            got = backend.load("b.zarr")
            loads += 1
            assert not got[0].any() and not got[2].any()
            assert got[1].min() == got[1].max(), f"mixed versions in one image: {np.unique(got[1])}"
            versions.add(int(got[1, 0, 0]))
        assert len(versions) > 1, "the writer did not run meanwhile"
        assert calls["read"] >= loads
    finally:
        writer.kill()
        writer.wait()
