"""Disk backend: formats, metadata, errors, atomic replacement, listing."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tifffile

from polystore import (
    DiskBackend,
    FileManager,
    ImageLoadError,
    ImageSaveError,
    PathNotFoundError,
    StorageError,
    UnsupportedFormatError,
)


@pytest.mark.parametrize("dtype", ["uint8", "uint16", "int32", "float32", "float64", "complex64", "bool"])
@pytest.mark.parametrize("shape", [(), (5,), (7, 9), (2, 3, 4, 5)])
def test_npy_roundtrip_matches_numpy(tmp_path: Path, dtype: str, shape: tuple[int, ...]) -> None:
    data = (np.arange(int(np.prod(shape)) or 1)[: int(np.prod(shape))] % 7).astype(dtype).reshape(shape)
    path = tmp_path / "a.npy"
    DiskBackend().save(data, path)
    np.testing.assert_array_equal(np.load(path), data)  # readable by numpy itself
    loaded = DiskBackend().load(path)
    assert loaded.dtype == data.dtype and loaded.shape == data.shape
    np.testing.assert_array_equal(loaded, data)
    assert loaded.flags.writeable


def test_npy_reads_numpy_written_files(tmp_path: Path) -> None:
    for data in (np.arange(12.0).reshape(3, 4), np.asfortranarray(np.arange(12).reshape(3, 4)),
                 np.zeros((2, 2), dtype=">u2"), np.zeros(3, dtype=[("a", "<i4"), ("b", "<f8")])):
        np.save(tmp_path / "x.npy", data)
        loaded = DiskBackend().load(tmp_path / "x.npy")
        assert loaded.dtype == data.dtype
        np.testing.assert_array_equal(loaded, data)
    fortran = np.asfortranarray(np.arange(12).reshape(3, 4))
    DiskBackend().save(fortran, tmp_path / "f.npy")
    np.testing.assert_array_equal(np.load(tmp_path / "f.npy"), fortran)
    np.testing.assert_array_equal(DiskBackend().load(tmp_path / "f.npy"), fortran)
    strided = np.arange(100).reshape(10, 10)[::2, 1::3]
    DiskBackend().save(strided, tmp_path / "s.npy")
    np.testing.assert_array_equal(np.load(tmp_path / "s.npy"), strided)


def test_npy_refuses_pickled_objects(tmp_path: Path) -> None:
    np.save(tmp_path / "obj.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(ImageLoadError, match="obj.npy"):
        DiskBackend().load(tmp_path / "obj.npy")
    with pytest.raises(UnsupportedFormatError):
        DiskBackend().save(np.array([{"a": 1}], dtype=object), tmp_path / "o2.npy")
    assert not (tmp_path / "o2.npy").exists()


def test_tiff_2d_and_stack(tmp_path: Path) -> None:
    disk = DiskBackend()
    image = np.random.default_rng(0).integers(0, 65535, (64, 48), dtype=np.uint16)
    disk.save(image, tmp_path / "img.tif")
    np.testing.assert_array_equal(tifffile.imread(tmp_path / "img.tif"), image)
    np.testing.assert_array_equal(disk.load(tmp_path / "img.tif"), image)
    stack = np.random.default_rng(1).random((3, 5, 16, 16)).astype(np.float64)
    disk.save(stack, tmp_path / "stack.TIFF")
    np.testing.assert_array_equal(disk.load(tmp_path / "stack.TIFF"), stack)


def test_tiff_imagej_hyperstack_with_axes(tmp_path: Path) -> None:
    data = np.arange(2 * 3 * 4 * 8 * 8, dtype=np.uint16).reshape(2, 3, 4, 8, 8)  # c z t y x
    path = tmp_path / "hyper.tif"
    DiskBackend().save(data, path, axes="czTyx", metadata={"objective": "20x", "pixel_um": 0.65})
    with tifffile.TiffFile(path) as tif:
        assert tif.is_imagej
        assert tif.imagej_metadata is not None
        assert tif.imagej_metadata["channels"] == 2
        assert tif.imagej_metadata["slices"] == 3
        assert tif.imagej_metadata["frames"] == 4
        assert tif.series[0].axes == "TZCYX"
        stored = tif.asarray()
    np.testing.assert_array_equal(stored, np.transpose(data, (2, 1, 0, 3, 4)))
    meta = DiskBackend().load_metadata(path)
    assert meta == {"objective": "20x", "pixel_um": 0.65, "axes": "TZCYX"}


def test_metadata_sidecar_for_other_formats(tmp_path: Path, fm: FileManager) -> None:
    path = tmp_path / "output.npy"
    fm.save(np.zeros(3), path, backend="disk", metadata={"key": "value"})
    assert fm.load_metadata(path, backend="disk") == {"key": "value"}
    assert fm.list_files(tmp_path, backend="disk") == [str(path)]  # sidecar hidden
    fm.save(np.zeros(3), path, backend="disk")  # re-save without metadata drops it
    assert fm.load_metadata(path, backend="disk") is None
    plain = tmp_path / "plain.tif"
    fm.save(np.zeros((4, 4), np.uint8), plain, backend="disk")
    assert fm.load_metadata(plain, backend="disk") in (None, {})


def test_other_formats_roundtrip(tmp_path: Path) -> None:
    pandas = pytest.importorskip("pandas")
    disk = DiskBackend()
    disk.save({"a": np.arange(3), "b": np.eye(2)}, tmp_path / "x.npz")
    loaded = disk.load(tmp_path / "x.npz")
    np.testing.assert_array_equal(loaded["b"], np.eye(2))
    disk.save(np.arange(4), tmp_path / "one.npz")
    np.testing.assert_array_equal(disk.load(tmp_path / "one.npz"), np.arange(4))
    disk.save(np.array([[1.5, 2.0], [3.0, 4.25]]), tmp_path / "m.csv")
    np.testing.assert_array_equal(disk.load(tmp_path / "m.csv"), [[1.5, 2.0], [3.0, 4.25]])
    frame = pandas.DataFrame({"cell": ["a", "b"], "area": [10.5, 3.0]})
    disk.save(frame, tmp_path / "t.csv")
    pandas.testing.assert_frame_equal(disk.load(tmp_path / "t.csv"), frame)
    disk.save({"k": [1, 2, {"n": None}]}, tmp_path / "c.json")
    assert disk.load(tmp_path / "c.json") == {"k": [1, 2, {"n": None}]}
    disk.save("héllo\nworld", tmp_path / "n.txt")
    assert disk.load(tmp_path / "n.txt") == "héllo\nworld"


def test_torch_file(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    disk = DiskBackend()
    tensor = torch.arange(6, dtype=torch.float32).reshape(2, 3)
    disk.save({"w": tensor}, tmp_path / "m.pt")
    assert torch.equal(disk.load(tmp_path / "m.pt")["w"], tensor)
    disk.save(np.ones(3), tmp_path / "n.pth")
    assert torch.equal(disk.load(tmp_path / "n.pth"), torch.ones(3, dtype=torch.float64))


def test_unsupported_extension_names_supported(tmp_path: Path) -> None:
    with pytest.raises(UnsupportedFormatError) as info:
        DiskBackend().save(np.zeros(2), tmp_path / "x.abc")
    assert ".abc" in str(info.value) and ".npy" in str(info.value) and ".tif" in str(info.value)
    with pytest.raises(UnsupportedFormatError):
        DiskBackend().save({"a": 1}, tmp_path / "x.npy")  # wrong data for the format
    with pytest.raises(UnsupportedFormatError):
        DiskBackend().save(np.zeros(2), tmp_path / "x.txt")


def test_missing_file(tmp_path: Path) -> None:
    path = tmp_path / "nope.npy"
    with pytest.raises(FileNotFoundError) as info:
        DiskBackend().load(path)
    assert isinstance(info.value, PathNotFoundError) and isinstance(info.value, StorageError)
    assert str(path) in str(info.value) and "disk" in str(info.value)


@pytest.mark.parametrize("name", ["bad.npy", "bad.tif", "bad.npz", "bad.json"])
def test_corrupt_and_truncated_files(tmp_path: Path, name: str) -> None:
    disk = DiskBackend()
    path = tmp_path / name
    good = np.arange(1000, dtype=np.uint16).reshape(10, 100)
    disk.save(good if not name.endswith("json") else {"a": list(range(100))}, path)
    raw = path.read_bytes()
    path.write_bytes(raw[: len(raw) // 2])  # truncated
    with pytest.raises(ImageLoadError) as info:
        disk.load(path)
    assert name in str(info.value)
    path.write_bytes(b"\x00garbage" * 50)  # corrupt
    with pytest.raises(ImageLoadError):
        disk.load(path)


def test_failed_save_keeps_previous_file(tmp_path: Path) -> None:
    disk = DiskBackend()
    path = tmp_path / "keep.tif"
    disk.save(np.ones((8, 8), np.uint8), path)
    before = path.read_bytes()
    with pytest.raises(ImageSaveError, match="keep.tif"):
        disk.save(np.ones((8, 8), np.uint8), path, axes="qq")  # tifffile/ImageJ rejects
    assert path.read_bytes() == before
    assert sorted(os.listdir(tmp_path)) == ["keep.tif"]  # no temp file left behind


def test_save_onto_a_directory_keeps_it(tmp_path: Path) -> None:
    (tmp_path / "img.npy").mkdir()
    (tmp_path / "img.npy" / "inside.txt").write_text("keep me")
    with pytest.raises(ImageSaveError, match="img.npy"):
        DiskBackend().save(np.zeros(3), tmp_path / "img.npy")
    assert (tmp_path / "img.npy" / "inside.txt").read_text() == "keep me"
    assert sorted(os.listdir(tmp_path)) == ["img.npy"]


def test_save_batch_overwrites_in_place_of_each_file(tmp_path: Path, fm: FileManager) -> None:
    paths = [tmp_path / d / f"{i}.npy" for d in ("a", "b") for i in range(5)]
    fm.save_batch([np.full(3, i) for i in range(10)], paths, backend="disk", metadata={"v": 1})
    fm.save_batch([np.full(4, 10 + i) for i in range(10)], paths, backend="disk")
    for i, path in enumerate(paths):
        np.testing.assert_array_equal(np.load(path), np.full(4, 10 + i))
        assert fm.load_metadata(path, backend="disk") is None  # stale sidecars removed
    for folder in ("a", "b"):  # nothing hidden left behind
        assert sorted(os.listdir(tmp_path / folder)) == [f"{i}.npy" for i in range(5)]


def test_save_batch_never_writes_through_a_hard_link(tmp_path: Path, fm: FileManager) -> None:
    paths = [tmp_path / f"{i}.npy" for i in range(3)]
    fm.save_batch([np.zeros(2), np.ones(2), np.full(2, 2.0)], paths, backend="disk")
    os.link(paths[0], tmp_path / "snapshot.npy")  # e.g. a hard-linked dataset cache
    fm.save_batch([np.full(2, 7.0)] * 3, paths, backend="disk")
    np.testing.assert_array_equal(np.load(tmp_path / "snapshot.npy"), np.zeros(2))
    assert all((np.load(p) == 7).all() for p in paths)


WRITER = """
import sys, numpy as np
from polystore import DiskBackend
disk = DiskBackend()
value = int(sys.argv[2])
print("ready", flush=True)
while True:
    disk.save(np.full((512, 1024), value, np.uint16), sys.argv[1])
    value += 1
"""


def test_killed_writer_never_leaves_partial_file(tmp_path: Path) -> None:
    path = tmp_path / "frame.npy"
    DiskBackend().save(np.full((512, 1024), 7, np.uint16), path)
    rng = np.random.default_rng(42)
    for trial in range(8):
        proc = subprocess.Popen([sys.executable, "-c", WRITER, str(path), str(100 * trial)],
                                stdout=subprocess.PIPE)
        assert proc.stdout is not None and proc.stdout.readline().strip() == b"ready"
        time.sleep(float(rng.uniform(0.0, 0.15)))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        data = DiskBackend().load(path)  # always a complete file
        assert data.shape == (512, 1024) and (data == data[0, 0]).all()
    leftovers = [n for n in os.listdir(tmp_path) if n != "frame.npy"]
    # a killed writer may leave its hidden temp file, never a damaged target
    assert all(n.startswith(".frame.npy.") and n.endswith(".tmp") for n in leftovers)


def test_listing(tmp_path: Path, fm: FileManager) -> None:
    for rel in ("a/x1.tif", "a/x2.TIF", "a/y.npy", "a/sub/z.tif", "a/sub/deeper/w.npy", "a/notes.txt"):
        fm.save(np.zeros((2, 2), np.uint8) if not rel.endswith("txt") else "n", tmp_path / rel, backend="disk")
    root = tmp_path / "a"
    rel = lambda paths: [os.path.relpath(p, root) for p in paths]  # noqa: E731
    assert rel(fm.list_files(root, "disk")) == ["notes.txt", "x1.tif", "x2.TIF", "y.npy"]
    assert rel(fm.list_files(root, "disk", pattern="x*")) == ["x1.tif", "x2.TIF"]
    assert rel(fm.list_files(root, "disk", extensions={".tif"}, recursive=True)) == [
        "sub/z.tif", "x1.tif", "x2.TIF"]
    assert rel(fm.list_image_files(root, "disk", recursive=True)) == [
        "sub/deeper/w.npy", "sub/z.tif", "x1.tif", "x2.TIF", "y.npy"]
    assert fm.list_dir(root, "disk") == ["notes.txt", "sub", "x1.tif", "x2.TIF", "y.npy"]
    assert fm.is_dir(root / "sub", "disk") and fm.is_file(root / "y.npy", "disk")
    assert not fm.exists(root / "nope", "disk")
    with pytest.raises(PathNotFoundError):
        fm.list_files(tmp_path / "missing", "disk")


def test_listing_hides_temp_files_of_writers(tmp_path: Path, fm: FileManager) -> None:
    fm.save(np.zeros(2), tmp_path / "a.npy", backend="disk")
    (tmp_path / ".a.npy.4242-7.tmp").write_bytes(b"half")  # a killed writer's leftover
    assert fm.list_files(tmp_path, "disk") == [str(tmp_path / "a.npy")]
    assert fm.list_dir(tmp_path, "disk") == ["a.npy"]


def test_directory_operations(tmp_path: Path, fm: FileManager) -> None:
    created = fm.ensure_directory(tmp_path / "d" / "e", backend="disk")
    assert created == str(tmp_path / "d" / "e") and isinstance(created, str)
    fm.save(np.arange(3), tmp_path / "d/e/v.npy", backend="disk", metadata={"m": 1})
    fm.copy(tmp_path / "d/e/v.npy", tmp_path / "c/v.npy", backend="disk")
    assert fm.load_metadata(tmp_path / "c/v.npy", "disk") == {"m": 1}
    fm.move(tmp_path / "c/v.npy", tmp_path / "m/w.npy", backend="disk")
    assert not fm.exists(tmp_path / "c/v.npy", "disk")
    np.testing.assert_array_equal(fm.load(tmp_path / "m/w.npy", "disk"), np.arange(3))
    with pytest.raises(StorageError, match="not empty"):
        fm.delete(tmp_path / "d", backend="disk")
    fm.delete(tmp_path / "d", backend="disk", recursive=True)
    assert not (tmp_path / "d").exists()
    fm.delete(tmp_path / "m/w.npy", backend="disk")
    assert os.listdir(tmp_path / "m") == []
    with pytest.raises(PathNotFoundError):
        fm.delete(tmp_path / "m/w.npy", backend="disk")


def test_json_sidecar_is_valid_json(tmp_path: Path) -> None:
    DiskBackend().save(np.zeros(1), tmp_path / "s.npy", metadata={"a": [1, 2]})
    assert json.loads((tmp_path / "s.npy.meta.json").read_text()) == {"a": [1, 2]}
