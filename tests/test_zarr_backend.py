"""The zarr backend on local stores: seed examples, paths, listing, batches, lazy loads, config."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

zarr = pytest.importorskip("zarr")

from polystore import BackendRegistry, FileManager  # noqa: E402
from polystore.config import Backend, ZarrChunkStrategy, ZarrCompressor, ZarrConfig  # noqa: E402
from polystore.exceptions import PathNotFoundError, UnsupportedFormatError  # noqa: E402
from polystore.zarr import ZarrBackend, ZarrStorageBackend, adaptive_chunks, resolve_chunks  # noqa: E402


@pytest.fixture
def backend(tmp_path: Path) -> ZarrBackend:
    return ZarrBackend(root=tmp_path)


def _image(shape: tuple[int, ...], dtype: str = "uint16", seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.integers(0, 4000, size=shape).astype(dtype)


def test_alias_and_registry() -> None:
    assert ZarrStorageBackend is ZarrBackend
    assert ZarrBackend._backend_type == "zarr"
    assert isinstance(BackendRegistry().get_backend("zarr"), ZarrBackend)


def test_seed_001_example(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    backend = ZarrBackend()
    large_data = np.random.rand(120, 130, 90)
    backend.save(large_data, "data.zarr", chunks=(100, 100, 100))
    loaded = backend.load("data.zarr")
    np.testing.assert_array_equal(loaded, large_data)
    # chunks larger than the array are clipped to it
    z = zarr.open_array(str(tmp_path / "data.zarr"), mode="r")
    assert z.chunks == (100, 100, 90)
    np.testing.assert_array_equal(z[:], large_data)


def test_seed_004_save_array_load_array(tmp_path: Path) -> None:
    fm = FileManager(BackendRegistry(zarr=ZarrBackend(root=tmp_path)))
    large_array = np.random.rand(300, 200)
    fm.save_array(large_array, "/zarr/large_dataset", Backend.ZARR.value)
    np.testing.assert_array_equal(fm.load_array("/zarr/large_dataset", Backend.ZARR.value), large_array)
    # a path without ".zarr" is a store of its own; an existing one is found again
    assert (tmp_path / "zarr" / "large_dataset" / "zarr.json").is_file()
    from polystore.exceptions import ImageSaveError

    with pytest.raises(ImageSaveError, match="is an array, not a group"):
        fm.save_array(large_array[:10], "/zarr/large_dataset/part", "zarr")
    assert fm.is_file("/zarr/large_dataset", "zarr")


def test_filesystem_like_paths(backend: ZarrBackend, tmp_path: Path) -> None:
    img = _image((64, 80))
    backend.save(img, "plate.zarr/A01/site1")
    backend.save(img + 1, "plate.zarr/A01/site2")
    backend.save(img + 2, "plate.zarr/B02/site1")
    np.testing.assert_array_equal(backend.load("plate.zarr/A01/site2"), img + 1)
    assert backend.list_dir("plate.zarr") == ["A01", "B02"]
    assert backend.list_dir("plate.zarr/A01") == ["site1", "site2"]
    assert backend.list_files("plate.zarr/A01") == ["plate.zarr/A01/site1", "plate.zarr/A01/site2"]
    assert backend.list_files("plate.zarr") == []
    assert backend.list_files("plate.zarr", recursive=True) == [
        "plate.zarr/A01/site1",
        "plate.zarr/A01/site2",
        "plate.zarr/B02/site1",
    ]
    assert backend.list_files("plate.zarr", pattern="site1", recursive=True) == [
        "plate.zarr/A01/site1",
        "plate.zarr/B02/site1",
    ]
    assert backend.is_dir("plate.zarr/A01") and not backend.is_file("plate.zarr/A01")
    assert backend.is_file("plate.zarr/A01/site1") and not backend.is_dir("plate.zarr/A01/site1")
    assert backend.exists("plate.zarr") and not backend.exists("plate.zarr/C03")
    # the directory holding stores lists them as files
    assert backend.list_files(".") == []
    assert backend.list_dir(".") == ["plate.zarr"]
    # zarr-python sees the same hierarchy
    root = zarr.open_group(str(tmp_path / "plate.zarr"), mode="r")
    np.testing.assert_array_equal(root["B02/site1"][:], img + 2)

    backend.delete("plate.zarr/A01/site1")
    assert backend.list_dir("plate.zarr/A01") == ["site2"]
    with pytest.raises(OSError):
        backend.delete("plate.zarr/A01")  # not empty
    backend.delete("plate.zarr/A01", recursive=True)
    assert backend.list_dir("plate.zarr") == ["B02"]
    with pytest.raises(PathNotFoundError):
        backend.load("plate.zarr/A01/site2")
    with pytest.raises(PathNotFoundError):
        backend.delete("plate.zarr/nothing")


def test_copy_move_ensure_directory(backend: ZarrBackend) -> None:
    img = _image((32, 32))
    assert backend.ensure_directory("s.zarr/g/h") == "s.zarr/g/h"
    assert backend.is_dir("s.zarr/g/h") and backend.list_dir("s.zarr/g/h") == []
    backend.save(img, "s.zarr/g/a")
    backend.copy("s.zarr/g/a", "s.zarr/other/b")
    backend.move("s.zarr/g/a", "s.zarr/g/h/c")
    assert not backend.exists("s.zarr/g/a")
    np.testing.assert_array_equal(backend.load("s.zarr/other/b"), img)
    np.testing.assert_array_equal(backend.load("s.zarr/g/h/c"), img)


def test_overwrite_replaces_and_overwrite_false_refuses(backend: ZarrBackend, tmp_path: Path) -> None:
    backend.save(_image((10, 10)), "o.zarr/a")
    backend.save(_image((4, 5, 6), "float32"), "o.zarr/a")
    assert backend.load("o.zarr/a").shape == (4, 5, 6)
    leftovers = [n for n in os.listdir(tmp_path / "o.zarr") if n.startswith(".")]
    assert leftovers == []
    from polystore.exceptions import ImageSaveError

    with pytest.raises(ImageSaveError, match="already exists"):
        backend.save(_image((2, 2)), "o.zarr/a", overwrite=False)


def test_save_batch_is_one_nd_array(backend: ZarrBackend, tmp_path: Path) -> None:
    frames = [_image((48, 64), seed=i) for i in range(6)]
    paths = [f"stack.zarr/frame_{i:03d}.tif" for i in range(6)]
    backend.save_batch(frames, paths)
    meta = json.loads((tmp_path / "stack.zarr" / "zarr.json").read_text())
    assert meta["node_type"] == "array" and meta["shape"] == [6, 48, 64]
    assert meta["chunk_grid"]["configuration"]["chunk_shape"][0] == 1
    assert not (tmp_path / "stack.zarr" / "frame_000.tif").exists()  # no per-image arrays
    # names are listed like files, in order, with extension filtering
    assert backend.list_files("stack.zarr", extensions={".tif"}) == sorted(paths)
    assert backend.list_files("stack.zarr", extensions={".png"}) == []
    assert backend.is_file(paths[2]) and backend.is_dir("stack.zarr")
    got = backend.load_batch([paths[4], paths[1], paths[5]])
    for g, i in zip(got, (4, 1, 5)):
        np.testing.assert_array_equal(g, frames[i])
    np.testing.assert_array_equal(backend.load("stack.zarr"), np.stack(frames))
    # deleting a member hides it
    backend.delete(paths[0])
    assert not backend.exists(paths[0]) and backend.exists(paths[1])


def test_load_of_one_batch_member_reads_only_its_chunks(backend: ZarrBackend, tmp_path: Path) -> None:
    frames = [_image((40, 40), seed=i) for i in range(4)]
    backend.save_batch(frames, [f"b.zarr/f{i}" for i in range(4)])
    # remove every chunk of frames 0, 1 and 3: frame 2 still loads
    for i in (0, 1, 3):
        for chunk in (tmp_path / "b.zarr" / "c" / str(i)).rglob("*"):
            if chunk.is_file():
                chunk.unlink()
    np.testing.assert_array_equal(backend.load("b.zarr/f2"), frames[2])
    # missing chunks read as the fill value (zarr spec), even in polystore's own arrays
    np.testing.assert_array_equal(backend.load("b.zarr/f1"), np.zeros_like(frames[1]))


def test_batches_with_mixed_shapes_and_parents_fall_back(backend: ZarrBackend) -> None:
    a, b, c = _image((8, 8)), _image((9, 9)), _image((8, 8), seed=3)
    backend.save_batch([a, b, c], ["m.zarr/x/a", "m.zarr/x/b", "m.zarr/y/c"])
    np.testing.assert_array_equal(backend.load("m.zarr/x/a"), a)
    np.testing.assert_array_equal(backend.load("m.zarr/x/b"), b)
    np.testing.assert_array_equal(backend.load("m.zarr/y/c"), c)
    with pytest.raises(ValueError):
        backend.save_batch([a], ["m.zarr/q", "m.zarr/r"])


def test_filemanager_batch_roundtrip(tmp_path: Path) -> None:
    fm = FileManager(BackendRegistry(zarr=ZarrBackend(root=tmp_path)))
    frames = [_image((16, 16), seed=i) for i in range(3)]
    fm.save_batch(frames, ["/out/run.zarr/a", "/out/run.zarr/b", "/out/run.zarr/c"], "zarr")
    assert fm.list_image_files("/out/run.zarr", "zarr", extensions=None) == []  # no image extensions
    assert fm.list_files("/out/run.zarr", "zarr") == ["/out/run.zarr/a", "/out/run.zarr/b", "/out/run.zarr/c"]
    loaded = fm.load_batch(["/out/run.zarr/c", "/out/run.zarr/a"], "zarr")
    np.testing.assert_array_equal(loaded[0], frames[2])
    np.testing.assert_array_equal(loaded[1], frames[0])


def test_lazy_load_reads_only_touched_chunks(backend: ZarrBackend, tmp_path: Path) -> None:
    da = pytest.importorskip("dask.array")
    data = _image((4, 64, 64))
    backend.save(data, "lazy.zarr", chunks=(1, 32, 32))
    # damage a chunk that the slice below does not touch
    (tmp_path / "lazy.zarr" / "c" / "3" / "1" / "1").write_bytes(b"garbage")
    lazy = backend.load("lazy.zarr", lazy=True)
    assert isinstance(lazy, da.Array)
    assert lazy.shape == data.shape and lazy.dtype == data.dtype
    assert lazy.chunksize == (4, 64, 64)  # whole chunks, merged up to ZarrConfig.lazy_block_bytes
    np.testing.assert_array_equal(lazy[1, 10:50, 5:60].compute(), data[1, 10:50, 5:60])
    np.testing.assert_array_equal(lazy[3, :32].compute(), data[3, :32])
    from polystore.exceptions import ImageLoadError

    with pytest.raises(ImageLoadError, match=r"c/3/1/1"):
        lazy[3].compute()


def test_adaptive_chunk_rule() -> None:
    assert adaptive_chunks((64, 2048, 2048), np.uint16) == (1, 1024, 1024)
    assert adaptive_chunks((2, 3, 512, 512), np.uint16) == (1, 1, 512, 512)
    assert adaptive_chunks((4096, 1024), np.float64) == (512, 512)
    assert adaptive_chunks((10,), np.uint8) == (10,)
    assert adaptive_chunks((), np.uint8) == ()
    cfg = ZarrConfig()
    assert resolve_chunks((10, 20, 30), np.dtype("u1"), (100, 100, 100), cfg) == (10, 20, 30)
    assert resolve_chunks((10, 20, 30), np.dtype("u1"), (5, 7), cfg) == (1, 5, 7)
    assert resolve_chunks((10, 20), np.dtype("u1"), (-1, 4), cfg) == (10, 4)
    single = ZarrConfig(chunk_strategy=ZarrChunkStrategy.SINGLE)
    assert resolve_chunks((10, 20), np.dtype("u1"), None, single) == (10, 20)
    fixed = ZarrConfig(chunk_strategy=ZarrChunkStrategy.FIXED, chunks=(8, 8))
    assert resolve_chunks((3, 10, 20), np.dtype("u1"), None, fixed) == (1, 8, 8)
    with pytest.raises(ValueError):
        resolve_chunks((10, 20), np.dtype("u1"), (1, 2, 3), cfg)


@pytest.mark.parametrize("compressor", list(ZarrCompressor))
def test_every_compressor_roundtrips_and_zarr_python_reads_it(tmp_path: Path, compressor: ZarrCompressor) -> None:
    backend = ZarrBackend(root=tmp_path, config=ZarrConfig(compressor=compressor, compression_level=3))
    data = _image((3, 50, 70))
    backend.save(data, "c.zarr")
    np.testing.assert_array_equal(backend.load("c.zarr"), data)
    z = zarr.open_array(str(tmp_path / "c.zarr"), mode="r")
    np.testing.assert_array_equal(z[:], data)
    codecs = [c["name"] for c in json.loads((tmp_path / "c.zarr" / "zarr.json").read_text())["codecs"]]
    assert codecs == (["bytes"] if compressor == ZarrCompressor.NONE else ["bytes", "blosc"])


@pytest.mark.parametrize(
    "dtype", ["bool", "int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64",
              "float16", "float32", "float64", "complex64", "complex128", ">u2", ">f8"]
)
def test_dtypes_roundtrip_both_ways(tmp_path: Path, dtype: str) -> None:
    backend = ZarrBackend(root=tmp_path)
    data = (np.arange(7 * 9 * 5) % 7).astype(dtype).reshape(7, 9, 5)
    backend.save(data, "d.zarr", chunks=(4, 4, 4))  # edge chunks are padded
    got = backend.load("d.zarr")
    assert got.dtype == data.dtype.newbyteorder("<")
    np.testing.assert_array_equal(got, data)
    np.testing.assert_array_equal(zarr.open_array(str(tmp_path / "d.zarr"), mode="r")[:], data)
    # and an array written by zarr-python with its own defaults loads through polystore
    z = zarr.create_array(str(tmp_path / "z.zarr"), shape=data.shape, dtype=data.dtype.newbyteorder("<"), chunks=(3, 4, 5))
    z[:] = data
    np.testing.assert_array_equal(backend.load("z.zarr"), data)


def test_zarr_v2_store_is_readable(backend: ZarrBackend, tmp_path: Path) -> None:
    data = _image((20, 30))
    z = zarr.create_array(str(tmp_path / "v2.zarr"), shape=data.shape, dtype=data.dtype, chunks=(7, 7), zarr_format=2)
    z[:] = data
    np.testing.assert_array_equal(backend.load("v2.zarr"), data)
    assert backend.is_file("v2.zarr")
    np.testing.assert_array_equal(backend.load("v2.zarr", lazy=True).compute(), data)


def test_unsupported_dtypes_are_refused(backend: ZarrBackend) -> None:
    for bad in (np.array(["a", "b"]), np.array([object(), 1], dtype=object),
                np.array(["2020-01-01"], dtype="datetime64[D]")):
        with pytest.raises(UnsupportedFormatError, match="supported dtypes"):
            backend.save(bad, "bad.zarr")
    with pytest.raises(UnsupportedFormatError):
        backend.save({"not": "an array"}, "bad.zarr")


def test_metadata_and_framework_kwargs(backend: ZarrBackend) -> None:
    data = _image((8, 8))
    backend.save(data, "m.zarr/img", metadata={"exposure_ms": np.float32(12.5), "well": "A01"})
    assert backend.load_metadata("m.zarr/img") == {"exposure_ms": 12.5, "well": "A01"}
    assert backend.info("m.zarr/img")["shape"] == (8, 8)
    fm = FileManager(BackendRegistry(zarr=backend))
    assert fm.load_metadata("m.zarr/img", "zarr") == {"exposure_ms": 12.5, "well": "A01"}
    assert backend.load("m.zarr/img", framework="numpy").dtype == np.uint16
    with pytest.raises(TypeError):
        backend.save(data, "m.zarr/x", not_a_keyword=1)


def test_torch_tensor_saves(backend: ZarrBackend) -> None:
    torch = pytest.importorskip("torch")
    t = torch.arange(12, dtype=torch.float32).reshape(3, 4)
    backend.save(t, "t.zarr")
    np.testing.assert_array_equal(backend.load("t.zarr"), t.numpy())
    assert isinstance(backend.load("t.zarr", framework="torch"), torch.Tensor)


def test_relative_paths_without_root(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    backend = ZarrBackend()
    backend.save(_image((5, 5)), str(tmp_path / "abs.zarr" / "x"))
    assert backend.list_files("abs.zarr") == ["abs.zarr/x"]
    assert backend.list_files(str(tmp_path / "abs.zarr")) == [str(tmp_path / "abs.zarr" / "x")]


def test_saving_one_member_of_a_batch_replaces_it_in_place(backend: ZarrBackend) -> None:
    frames = [_image((16, 24), seed=i) for i in range(3)]
    backend.save_batch(frames, ["b.zarr/a", "b.zarr/b", "b.zarr/c"])
    new = _image((16, 24), seed=99)
    backend.save(new, "b.zarr/b")
    np.testing.assert_array_equal(backend.load("b.zarr/b"), new)
    np.testing.assert_array_equal(backend.load("b.zarr/c"), frames[2])
    from polystore.exceptions import ImageSaveError

    with pytest.raises(ImageSaveError, match="shape"):
        backend.save(_image((5, 5)), "b.zarr/a")


def test_save_never_deletes_unrelated_content(backend: ZarrBackend, tmp_path: Path) -> None:
    from polystore.exceptions import ImageSaveError

    (tmp_path / "folder").mkdir()
    (tmp_path / "folder" / "precious.txt").write_text("keep me")
    with pytest.raises(ImageSaveError, match="not a zarr array or group"):
        backend.save(_image((4, 4)), "folder")
    assert (tmp_path / "folder" / "precious.txt").read_text() == "keep me"
    backend.save(_image((4, 4)), "g.zarr/grp/a")
    with pytest.raises(ImageSaveError, match="group with content"):
        backend.save(_image((4, 4)), "g.zarr/grp")
    assert backend.exists("g.zarr/grp/a")
    # a batch whose parent holds other arrays keeps them: the images are saved one by one
    backend.save_batch([_image((4, 4)), _image((4, 4), seed=1)], ["g.zarr/grp/b", "g.zarr/grp/c"])
    assert backend.list_files("g.zarr/grp") == ["g.zarr/grp/a", "g.zarr/grp/b", "g.zarr/grp/c"]


def test_dask_arrays_are_written_slab_by_slab(tmp_path: Path) -> None:
    da = pytest.importorskip("dask.array")
    from polystore.config import ZarrConfig

    backend = ZarrBackend(root=tmp_path, config=ZarrConfig(slab_bytes=3 * 40 * 50 * 2))  # three planes per slab
    data = _image((10, 40, 50))
    lazy = da.from_array(data, chunks=(4, 40, 25))
    backend.save(lazy, "d.zarr", chunks=(1, 16, 16))
    np.testing.assert_array_equal(backend.load("d.zarr"), data)
    backend.save(lazy.astype(">u2"), "img.zarr", axes="zyx", chunks=(2, 40, 50))  # slabs of two planes
    np.testing.assert_array_equal(backend.load("img.zarr"), data)
    # a lazy load -> compute -> save pipeline never materialises the whole stack
    backend.save(backend.load("d.zarr", lazy=True) + 1, "plus.zarr")
    np.testing.assert_array_equal(backend.load("plus.zarr"), data + 1)


def test_filemanager_path_operations_on_groups_and_arrays(tmp_path: Path) -> None:
    fm = FileManager(BackendRegistry(zarr=ZarrBackend(root=tmp_path)))
    img = _image((24, 24))
    fm.save(img, "plate.zarr/A01/site1", backend="zarr")
    fm.save(img, "plate.zarr/A01/site2", backend="zarr", axes="yx")
    assert fm.list_files("plate.zarr/A01", "zarr") == ["plate.zarr/A01/site1", "plate.zarr/A01/site2"]
    assert fm.list_dir("plate.zarr", "zarr") == ["A01"]
    assert fm.exists("plate.zarr/A01", "zarr") and fm.is_dir("plate.zarr/A01", "zarr")
    assert fm.is_file("plate.zarr/A01/site2", "zarr") and not fm.is_dir("plate.zarr/A01/site2", "zarr")
    fm.delete("plate.zarr/A01/site2", "zarr")
    assert fm.list_files("plate.zarr", "zarr", recursive=True) == ["plate.zarr/A01/site1"]
    np.testing.assert_array_equal(fm.load("plate.zarr/A01/site1", "zarr"), img)


def test_backend_pickles_for_process_pools(backend: ZarrBackend) -> None:
    import pickle

    backend.save(_image((6, 6)), "p.zarr")
    clone = pickle.loads(pickle.dumps(backend))
    assert clone.root == backend.root and clone.config == backend.config
    np.testing.assert_array_equal(clone.load("p.zarr"), backend.load("p.zarr"))


def test_listing_outside_stores_shows_stores_and_folders_only(backend: ZarrBackend, tmp_path: Path) -> None:
    (tmp_path / "runs" / "day1").mkdir(parents=True)
    (tmp_path / "runs" / "notes.txt").write_text("not zarr")
    (tmp_path / "runs" / "frame.tif").write_bytes(b"II*\x00")
    backend.save(_image((4, 4)), "runs/a.zarr")
    backend.save(_image((4, 4)), "runs/day1/b.zarr/img")
    assert backend.list_dir("runs") == ["a.zarr", "day1"]
    assert backend.list_files("runs") == ["runs/a.zarr"]
    assert backend.list_files("runs", recursive=True) == ["runs/a.zarr", "runs/day1/b.zarr/img"]
    assert not backend.is_file("runs/notes.txt")


def test_write_empty_chunks_false_leaves_fill_value_chunks_out(tmp_path: Path) -> None:
    backend = ZarrBackend(root=tmp_path, config=ZarrConfig(write_empty_chunks=False))
    data = np.zeros((4, 32, 32), np.uint16)
    data[1, 3, 4] = 7
    backend.save(data, "sparse.zarr", chunks=(1, 16, 16))
    chunk_files = [p for p in (tmp_path / "sparse.zarr" / "c").rglob("*") if p.is_file()]
    assert [p.relative_to(tmp_path / "sparse.zarr").as_posix() for p in chunk_files] == ["c/1/0/0"]
    np.testing.assert_array_equal(backend.load("sparse.zarr"), data)
    np.testing.assert_array_equal(zarr.open_array(str(tmp_path / "sparse.zarr"), mode="r")[:], data)
    # the default writes every chunk
    ZarrBackend(root=tmp_path).save(data, "dense.zarr", chunks=(1, 16, 16))
    assert len([p for p in (tmp_path / "dense.zarr" / "c").rglob("*") if p.is_file()]) == 16


def test_importing_the_module_without_zarr_names_the_extra() -> None:
    import subprocess
    import sys

    code = (
        "import sys; sys.modules['zarr'] = None\n"
        "import polystore\n"
        "assert 'zarr' not in [m for m in sys.modules if sys.modules[m] is not None]\n"
        "try:\n"
        "    import polystore.zarr\n"
        "except ImportError as exc:\n"
        "    print(type(exc).__name__, exc)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("MissingDependencyError")
    assert 'pip install "polystore[zarr]"' in result.stdout


def _child_roundtrip(root: str, queue: object) -> None:
    backend = ZarrBackend(root=root)
    data = np.arange(4 * 64 * 64, dtype=np.uint16).reshape(4, 64, 64)
    backend.save(data, "child.zarr", chunks=(1, 32, 32))
    queue.put(bool(np.array_equal(backend.load("child.zarr"), data)))  # type: ignore[attr-defined]


def test_forked_children_get_their_own_worker_threads(backend: ZarrBackend, tmp_path: Path) -> None:
    import multiprocessing

    backend.save(_image((4, 64, 64)), "parent.zarr", chunks=(1, 32, 32))  # the parent's pools exist
    backend.load("parent.zarr")
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_child_roundtrip, args=(str(tmp_path), queue))
    child.start()
    child.join(60)
    assert child.exitcode == 0, "the forked child hung or failed"
    assert queue.get(timeout=5) is True


def test_a_relative_root_is_fixed_at_creation(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    backend = ZarrBackend(root="data")
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    backend.save(_image((4, 4)), "a.zarr")
    assert (tmp_path / "data" / "a.zarr" / "zarr.json").is_file()
    assert ZarrBackend(root="/").root == ""  # "/" itself: paths stay absolute


def test_batches_into_an_existing_batch_merge_like_a_folder(backend: ZarrBackend, tmp_path: Path) -> None:
    frames = [_image((16, 24), seed=i) for i in range(6)]
    backend.save_batch(frames[:3], [f"run.zarr/f{i}" for i in range(3)])
    backend.save_batch(frames[3:5], ["run.zarr/f3", "run.zarr/f4"])  # a second chunk of a pipeline
    backend.save(frames[5], "run.zarr/f5")  # and one more image
    assert backend.list_files("run.zarr") == [f"run.zarr/f{i}" for i in range(6)]
    for i in range(6):
        np.testing.assert_array_equal(backend.load(f"run.zarr/f{i}"), frames[i])
    assert json.loads((tmp_path / "run.zarr" / "zarr.json").read_text())["shape"] == [6, 16, 24]
    # names already there are replaced in place
    backend.save_batch([frames[0], frames[1]], ["run.zarr/f4", "run.zarr/f1"])
    np.testing.assert_array_equal(backend.load("run.zarr/f4"), frames[0])
    np.testing.assert_array_equal(backend.load("run.zarr/f2"), frames[2])
    np.testing.assert_array_equal(backend.load("run.zarr"), np.stack([frames[i] for i in (0, 1, 2, 3, 0, 5)]))
    from polystore.exceptions import ImageSaveError

    with pytest.raises(ImageSaveError, match="shape"):
        backend.save_batch([_image((8, 8)), _image((8, 8))], ["run.zarr/x", "run.zarr/y"])
    with pytest.raises(ImageSaveError, match="float32"):
        backend.save(frames[0].astype(np.float32), "run.zarr/z")
    assert backend.list_files("run.zarr") == [f"run.zarr/f{i}" for i in range(6)]


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_appending_to_an_ome_batch(tmp_path: Path, zarr_format: int) -> None:
    backend = ZarrBackend(root=tmp_path, config=ZarrConfig(zarr_format=zarr_format))
    planes = [np.full((8, 10), i, np.uint8) for i in range(4)]
    backend.save_batch(planes[:2], ["z.zarr/p0", "z.zarr/p1"], axes="zyx")
    backend.save_batch(planes[2:], ["z.zarr/p2", "z.zarr/p3"], axes="zyx")
    assert backend.list_files("z.zarr") == [f"z.zarr/p{i}" for i in range(4)]
    assert backend.info("z.zarr")["shape"] == (4, 8, 10)
    np.testing.assert_array_equal(backend.load("z.zarr/p3"), planes[3])
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Reader

    node = list(Reader(parse_url(str(tmp_path / "z.zarr")))())[0]
    np.testing.assert_array_equal(np.asarray(node.data[0]), np.stack(planes))


def test_a_lone_image_in_a_batch_is_saved_as_itself(backend: ZarrBackend) -> None:
    backend.save_batch([_image((8, 8))], ["p.zarr/A01/site1"])
    assert backend.is_dir("p.zarr/A01") and backend.is_file("p.zarr/A01/site1")
    backend.save(_image((5, 7)), "p.zarr/A01/site2")  # a different shape next to it is fine
    assert backend.list_files("p.zarr/A01") == ["p.zarr/A01/site1", "p.zarr/A01/site2"]


def test_filemanager_progress_batches_add_up(tmp_path: Path) -> None:
    fm = FileManager(BackendRegistry(zarr=ZarrBackend(root=tmp_path)))
    frames = [np.full((4, 4), i, np.uint16) for i in range(300)]
    paths = [f"big.zarr/f{i:03d}" for i in range(300)]
    fm.save_batch(frames, paths, "zarr", progress=True)  # the bar saves 3 images per call
    assert fm.list_files("big.zarr", "zarr") == paths
    np.testing.assert_array_equal(fm.load("big.zarr", "zarr"), np.stack(frames))  # still one array
    small = [np.full((4, 4), i, np.uint16) for i in range(20)]
    fm.save_batch(small, [f"small.zarr/f{i:02d}" for i in range(20)], "zarr", progress=True)  # 1 per call
    assert fm.list_files("small.zarr", "zarr") == [f"small.zarr/f{i:02d}" for i in range(20)]
    np.testing.assert_array_equal(fm.load("small.zarr/f07", "zarr"), small[7])
