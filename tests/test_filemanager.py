"""FileManager: batch semantics, progress, array helpers, cross-backend operations."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

from polystore import FileManager
from polystore.config import Backend


def test_quickstart(tmp_path: Path, fm: FileManager) -> None:
    os.chdir(tmp_path)
    data = np.array([[1, 2], [3, 4]])
    fm.save(data, "output.npy", backend="disk")
    np.testing.assert_array_equal(fm.load("output.npy", backend="disk"), data)
    fm.save(data, "test.npy", backend="memory")
    assert fm.load("test.npy", backend="memory") is data


def test_save_batch_mismatch_writes_nothing(tmp_path: Path, fm: FileManager) -> None:
    with pytest.raises(ValueError, match="2 data items but 3"):
        fm.save_batch([np.zeros(1), np.zeros(1)], [tmp_path / f"{i}.npy" for i in range(3)], backend="disk")
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("backend", ["disk", "memory"])
def test_batches_keep_order(tmp_path: Path, fm: FileManager, backend: str) -> None:
    data = [np.full((4, 4), i, np.float32) for i in range(50)]
    paths = [str(tmp_path / f"img_{i:03d}.npy") for i in range(50)]
    fm.save_batch(data, paths, backend=backend)
    shuffled = paths[::-1]
    loaded = fm.load_batch(shuffled, backend=backend)
    assert [int(x[0, 0]) for x in loaded] == list(range(49, -1, -1))


def test_progress_bar_only_when_asked(tmp_path: Path, fm: FileManager, capsys: pytest.CaptureFixture[str]) -> None:
    data = [np.zeros(2) for _ in range(300)]
    paths = [f"/p/{i}.npy" for i in range(300)]
    fm.save_batch(data, paths, backend="memory")  # stderr is not a terminal here
    assert "save memory" not in capsys.readouterr().err
    fm.save_batch(data, paths, backend="memory", progress=True)
    err = capsys.readouterr().err
    assert "save memory" in err and "300/300" in err
    assert len(fm.load_batch(paths, backend="memory", progress=True)) == 300
    assert "load memory" in capsys.readouterr().err


def test_array_helpers_seed_004(tmp_path: Path, fm: FileManager) -> None:
    array = np.random.default_rng(0).random((100, 100))
    fm.save_array(array, "/memory/temp_array", Backend.MEMORY.value)
    assert fm.load_array("/memory/temp_array", Backend.MEMORY.value) is array
    fm.save_array(array.astype(np.float32), tmp_path / "persistent_array.tif", Backend.DISK.value)
    np.testing.assert_array_equal(fm.load_array(tmp_path / "persistent_array.tif", "disk"), array.astype(np.float32))


def test_mirror_directory_structure(tmp_path: Path, fm: FileManager) -> None:
    for rel in ("a/b/c", "a/d", "e"):
        (tmp_path / "src" / rel).mkdir(parents=True)
    (tmp_path / "src/a/file.txt").write_text("x")
    created = fm.mirror_directory_structure(tmp_path / "src", tmp_path / "dst", backend="disk")
    rel = sorted(os.path.relpath(p, tmp_path / "dst") for p in created)
    assert rel == [".", "a", "a/b", "a/b/c", "a/d", "e"]
    assert not (tmp_path / "dst/a/file.txt").exists()
    shallow = fm.mirror_directory_structure(tmp_path / "src", "/mirror", backend="disk",
                                            recursive=False, target_backend="memory")
    assert sorted(shallow) == ["/mirror", "/mirror/a", "/mirror/e"]


def test_copy_and_move_across_backends(tmp_path: Path, fm: FileManager) -> None:
    fm.save(np.arange(4), tmp_path / "x.npy", backend="disk")
    fm.copy(tmp_path / "x.npy", "/cache/x.npy", backend="disk", dest_backend="memory")
    np.testing.assert_array_equal(fm.load("/cache/x.npy", "memory"), np.arange(4))
    fm.move("/cache/x.npy", tmp_path / "back.npy", backend="memory", dest_backend="disk")
    assert not fm.exists("/cache/x.npy", "memory")
    np.testing.assert_array_equal(fm.load(tmp_path / "back.npy", "disk"), np.arange(4))


def test_pathlike_and_case_insensitive(tmp_path: Path, fm: FileManager) -> None:
    fm.save(np.ones(2), tmp_path / "p.npy", backend="DiSk")
    assert fm.is_file(tmp_path / "p.npy", Backend.DISK)
    assert fm.ensure_directory(tmp_path / "new", "disk") == str(tmp_path / "new")


def test_progress_never_splits_a_zarr_batch(tmp_path: Path, fm: FileManager) -> None:
    pytest.importorskip("zarr")
    images = [np.full((16, 16), i, np.uint16) for i in range(10)]
    paths = [str(tmp_path / "p.zarr" / "A01" / f"img{i}") for i in range(10)]
    fm.save_batch(images, paths, backend="zarr", progress=True)
    import zarr

    stack = zarr.open_array(str(tmp_path / "p.zarr" / "A01"), mode="r")
    assert stack.shape == (10, 16, 16)  # one N-D array, not ten small ones
    assert [int(x[0, 0]) for x in fm.load_batch(paths, backend="zarr")] == list(range(10))
