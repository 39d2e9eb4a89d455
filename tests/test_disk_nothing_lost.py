"""Disk backend, nothing lost: replaced files, header cache, sidecar order, corrupt inputs."""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from polystore import DiskBackend, FileManager, ImageLoadError, StorageError, UnsupportedFormatError


def test_save_batch_never_rewrites_a_replaced_file(tmp_path: Path, fm: FileManager) -> None:
    """A reader holding the old file (memory-mapped) keeps its bytes while a batch replaces it."""
    paths = [tmp_path / f"{name}.npy" for name in "abc"]
    fm.save_batch([np.full(4096, i, np.int64) for i in (1, 2, 3)], paths, backend="disk")
    old_a = fm.load(paths[0], backend="disk", mmap_mode="r")
    old_b = fm.load(paths[1], backend="disk", mmap_mode="r")
    fm.save_batch([np.full(4096, i, np.int64) for i in (10, 20, 30)], paths, backend="disk")
    assert (old_a == 1).all() and (old_b == 2).all()
    assert [int(np.load(p)[0]) for p in paths] == [10, 20, 30]
    assert sorted(os.listdir(tmp_path)) == ["a.npy", "b.npy", "c.npy"]


def test_npy_header_cache_tells_structured_dtypes_apart(tmp_path: Path) -> None:
    disk = DiskBackend()
    counts = np.zeros(3, [("count", "<i4"), ("weight", "<f4")])
    points = np.zeros(3, [("x", "<f4"), ("y", "<f4")])
    points["x"] = [1.5, 2.5, 3.5]
    assert counts.dtype.str == points.dtype.str == "|V8"  # what the old cache keyed on
    disk.save(counts, tmp_path / "counts.npy")
    disk.save(points, tmp_path / "points.npy")
    loaded = disk.load(tmp_path / "points.npy")
    assert loaded.dtype.names == ("x", "y")
    np.testing.assert_array_equal(loaded["x"], [1.5, 2.5, 3.5])
    assert np.load(tmp_path / "points.npy").dtype == points.dtype


def _save_forever(path: str, start: int) -> None:
    disk = DiskBackend()
    value = start
    while True:
        disk.save(np.full(256 * 1024, value, np.int32), path, metadata={"n": value})
        value += 1


def test_killed_save_never_leaves_a_sidecar_of_other_data(tmp_path: Path) -> None:
    """Kill a saving process 30 times: the sidecar, if any, describes the data that is there."""
    path = tmp_path / "frame.npy"
    disk = DiskBackend()
    disk.save(np.full(256 * 1024, 0, np.int32), path, metadata={"n": 0})
    fork = multiprocessing.get_context("fork")
    rng = np.random.default_rng(7)
    for trial in range(30):
        proc = fork.Process(target=_save_forever, args=(str(path), 1000 * (trial + 1)))
        proc.start()
        time.sleep(float(rng.uniform(0.02, 0.12)))
        os.kill(proc.pid or 0, signal.SIGKILL)
        proc.join()
        value = int(disk.load(path)[0])
        meta = disk.load_metadata(path)
        assert meta is None or meta == {"n": value}, f"trial {trial}: data {value}, sidecar {meta}"
    assert disk.list_files(tmp_path) == [str(path)]
    leftovers = sorted(str(tmp_path / n) for n in os.listdir(tmp_path) if n.endswith(".tmp"))
    assert disk.cleanup(tmp_path) == leftovers  # temp files of the killed writers
    assert not [n for n in os.listdir(tmp_path) if n.endswith(".tmp")]


def _save_new_files(folder: str) -> None:
    disk = DiskBackend()
    for n in range(10**6):
        disk.save_batch([np.full(256 * 1024, n, np.int32)], [os.path.join(folder, f"{n:06d}.npy")])


def test_killed_save_of_new_files_leaves_only_complete_files_and_no_temp(tmp_path: Path) -> None:
    """Kill a process saving new .npy files 20 times: each file there is whole, no temp file is left."""
    fork = multiprocessing.get_context("fork")
    rng = np.random.default_rng(11)
    for trial in range(20):
        folder = tmp_path / str(trial)
        folder.mkdir()
        proc = fork.Process(target=_save_new_files, args=(str(folder),))
        proc.start()
        time.sleep(float(rng.uniform(0.05, 0.15)))
        os.kill(proc.pid or 0, signal.SIGKILL)
        proc.join()
        names = sorted(os.listdir(folder))
        assert all(name.endswith(".npy") for name in names), f"trial {trial}: {names}"
        for name in names:
            data = np.load(folder / name)
            assert data.shape == (256 * 1024,) and (data == int(name[:-4])).all(), name


def test_failed_save_leaves_no_temp_file_and_keeps_metadata(tmp_path: Path) -> None:
    disk = DiskBackend()
    path = tmp_path / "a.npy"
    disk.save(np.arange(3), path, metadata={"v": 1})
    with pytest.raises(UnsupportedFormatError, match="JSON"):
        disk.save(np.arange(4), path, metadata={"v": object()})
    with pytest.raises(UnsupportedFormatError):
        disk.save(np.array([object()]), path, metadata={"v": 2})
    assert sorted(os.listdir(tmp_path)) == ["a.npy", "a.npy.meta.json"]
    np.testing.assert_array_equal(disk.load(path), np.arange(3))
    assert disk.load_metadata(path) == {"v": 1}


def test_corrupt_tiff_raises_instead_of_loading_empty(tmp_path: Path) -> None:
    path = tmp_path / "broken.tif"
    path.write_bytes(b"II*\x00garbage")
    with pytest.raises(ImageLoadError, match="broken.tif"):
        DiskBackend().load(path)


def test_npy_with_a_huge_header_is_refused_at_once(tmp_path: Path) -> None:
    """numpy refuses headers over 10000 bytes; an 11 MB header must not be parsed at all."""
    body = b"{'descr': '<f8', 'fortran_order': False, 'shape': (2,), " + b" " * (11 << 20) + b"}\n"
    path = tmp_path / "huge.npy"
    path.write_bytes(b"\x93NUMPY\x02\x00" + len(body).to_bytes(4, "little") + body + bytes(16))
    with pytest.raises(ImageLoadError, match="10000"):
        DiskBackend().load(path)
    with pytest.raises(ValueError):  # what numpy itself says
        np.load(path)


@pytest.mark.parametrize(
    "array",
    [np.zeros((0, 5), np.float32), np.zeros((3, 0)), np.array(["2024-01-02", "NaT"], "M8[ns]"),
     np.arange(4).astype("m8[s]").reshape(2, 2), np.zeros((), "M8[D]")],
    ids=["0x5", "3x0", "datetime", "timedelta", "0-d-datetime"],
)
def test_npy_holds_empty_and_datetime_arrays(tmp_path: Path, array: np.ndarray) -> None:
    disk = DiskBackend()
    disk.save(array, tmp_path / "x.npy")
    for loaded in (disk.load(tmp_path / "x.npy"), np.load(tmp_path / "x.npy")):
        assert loaded.dtype == array.dtype and loaded.shape == array.shape
        np.testing.assert_array_equal(loaded, array)


@pytest.mark.parametrize(
    "array",
    [np.zeros((2, 2), "M8[ns]"), np.zeros((2, 2), "U3"), np.zeros(2, [("a", "<i4")]), np.zeros((0,), bool)],
    ids=["datetime", "str", "structured", "empty-bool"],
)
def test_tiff_refuses_what_it_cannot_hold_naming_the_fix(tmp_path: Path, array: np.ndarray) -> None:
    path = tmp_path / "x.tif"
    with pytest.raises(UnsupportedFormatError, match=r"x\.tif.*save it as \.npy"):
        DiskBackend().save(array, path)
    assert os.listdir(tmp_path) == []


def test_nul_byte_in_a_path_is_a_polystore_error(tmp_path: Path, fm: FileManager) -> None:
    bad = str(tmp_path / "a\x00b.npy")
    for call in (lambda: fm.save(np.zeros(2), bad, "disk"), lambda: fm.load(bad, "disk"),
                 lambda: fm.save_batch([np.zeros(2)], [bad], "disk")):
        with pytest.raises(StorageError, match="NUL byte") as info:
            call()
        assert isinstance(info.value, ValueError)  # what open() raises for it
    assert not fm.exists(bad, "disk")
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("name", ["a.npy", "a.tif"])
def test_durable_saves_create_replace_and_leave_no_temp(tmp_path: Path, name: str) -> None:
    """``durable=True`` (fsync of file and folder) on the unnamed (.npy) and the temp-file (.tif) paths."""
    disk = DiskBackend(durable=True)
    path = tmp_path / "sub" / name
    disk.save(np.arange(6, dtype=np.uint16).reshape(2, 3), path)
    disk.save_batch([np.ones((2, 3), np.uint16)], [path], metadata={"v": 2})
    np.testing.assert_array_equal(disk.load(path), np.ones((2, 3), np.uint16))
    assert disk.load_metadata(path) == {"v": 2}
    assert not [n for n in os.listdir(tmp_path / "sub") if n.endswith(".tmp")]
    (tmp_path / "dir.npy").mkdir()
    with pytest.raises(StorageError, match="directory"):
        disk.save(np.arange(3), tmp_path / "dir.npy")
    assert sorted(os.listdir(tmp_path)) == ["dir.npy", "sub"]


def _link_in_child(decoy: int, folder: str, path: str) -> None:
    from polystore._unnamed import link_unnamed, open_unnamed

    fd = open_unnamed(folder)
    assert fd is not None
    os.write(fd, b"child")
    os.dup2(fd, decoy)  # the child's new file now has the number of the parent's decoy file
    os.close(fd)
    assert link_unnamed(decoy, path)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="unnamed files are Linux-only")
def test_forked_child_links_its_own_new_file_never_a_parent_file(tmp_path: Path) -> None:
    """New files are linked through this process's /proc fd folder: a forked child must not use its parent's."""
    DiskBackend().save(np.zeros(3), str(tmp_path / "first.npy"))  # the parent now holds its fd folder open
    decoy_path = tmp_path / "decoy.bin"
    decoy_path.write_bytes(b"parent")
    decoy = os.open(decoy_path, os.O_RDONLY)
    try:
        proc = multiprocessing.get_context("fork").Process(
            target=_link_in_child, args=(decoy, str(tmp_path), str(tmp_path / "child.bin"))
        )
        proc.start()
        proc.join()
    finally:
        os.close(decoy)
    assert proc.exitcode == 0
    assert (tmp_path / "child.bin").read_bytes() == b"child"
    assert decoy_path.read_bytes() == b"parent" and os.stat(decoy_path).st_nlink == 1


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="unnamed files are Linux-only")
def test_failed_link_of_an_unnamed_file_names_the_target(tmp_path: Path) -> None:
    from polystore._unnamed import link_unnamed, open_unnamed

    fd = open_unnamed(str(tmp_path))
    assert fd is not None
    try:
        target = str(tmp_path / "missing" / "a.npy")
        with pytest.raises(FileNotFoundError) as caught:
            link_unnamed(fd, target)
        assert caught.value.filename == target
        os.write(fd, b"x")
        assert link_unnamed(fd, str(tmp_path / "a.npy")) and not link_unnamed(fd, str(tmp_path / "a.npy"))
    finally:
        os.close(fd)
    assert os.listdir(tmp_path) == ["a.npy"]
