"""The existing polystore package's README and its public-API tests, run against ours.

Written here as our test code, with the calls exactly as its README and test
suite make them. Where ours differs on purpose, the test asserts our
behaviour and names the section of docs/compatibility.md.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from polystore import BackendRegistry, FileManager, MemoryBackend, StorageBackend
from polystore.disk import DiskBackend
from polystore.exceptions import StorageResolutionError


@pytest.fixture
def file_manager() -> FileManager:
    return FileManager(BackendRegistry())


@pytest.fixture
def temp_dir() -> Iterator[str]:
    path = tempfile.mkdtemp()
    yield path
    shutil.rmtree(path, ignore_errors=True)


# -- README -----------------------------------------------------------------
def test_readme_quick_start(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    registry = BackendRegistry()
    fm = FileManager(registry)
    data = np.array([[1, 2], [3, 4]])
    fm.save(data, "output.npy", backend="disk")
    loaded = fm.load("output.npy", backend="disk")
    fm.save(data, "test.npy", backend="memory")
    cached = fm.load("test.npy", backend="memory")
    assert np.array_equal(loaded, data) and np.array_equal(cached, data)


def test_readme_custom_backend_and_batches(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    class MyBackend(StorageBackend):
        _backend_type = "my_backend_readme"  # Auto-registers

        def save(self, data: Any, file_path: Any, **kwargs: Any) -> None:
            pass

        def load(self, file_path: Any, **kwargs: Any) -> Any:
            pass

    fm = FileManager(BackendRegistry())
    assert "my_backend_readme" in fm.get_available_backends()
    fm.save(1, "x", backend="my_backend_readme")
    monkeypatch.chdir(tmp_path)
    data_list = [np.random.rand(100, 100) for _ in range(10)]
    paths = [f"image_{i}.npy" for i in range(10)]
    fm.save_batch(data_list, paths, backend="disk")
    loaded_list = fm.load_batch(paths, backend="disk")
    assert all(np.array_equal(a, b) for a, b in zip(data_list, loaded_list))


def test_readme_atomic_writes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from polystore import atomic_write, atomic_write_json

    monkeypatch.chdir(tmp_path)
    with atomic_write("output.txt") as f:
        f.write("data")
    atomic_write_json({"key": "value"}, "config.json")
    assert Path("output.txt").read_text() == "data"
    assert json.loads(Path("config.json").read_text()) == {"key": "value"}


# -- tests/test_basic.py ----------------------------------------------------
def test_basic_memory_backend() -> None:
    backend = MemoryBackend()
    backend.ensure_directory("/")
    data = np.array([1, 2, 3])
    backend.save(data, "/test.npy")
    assert np.array_equal(data, backend.load("/test.npy"))


def test_basic_file_manager(file_manager: FileManager) -> None:
    file_manager.ensure_directory("/", backend="memory")
    data = np.array([[1, 2], [3, 4]])
    file_manager.save(data, "/test.npy", backend="memory")
    assert np.array_equal(data, file_manager.load("/test.npy", backend="memory"))


# -- tests/test_filemanager_extended.py --------------------------------------
def test_backend_resolution(file_manager: FileManager) -> None:
    with pytest.raises(StorageResolutionError, match="not found in registry"):
        file_manager._get_backend("unknown_backend")
    assert file_manager._get_backend("disk") is file_manager._get_backend("DISK")
    assert file_manager._get_backend("Disk") is file_manager._get_backend("disk")
    assert file_manager._get_backend("memory")._backend_type == "memory"
    assert file_manager._get_backend("disk")._backend_type == "disk"


def test_invalid_backend_errors(file_manager: FileManager, temp_dir: str) -> None:
    test_file = Path(temp_dir) / "test.npy"
    paths = [str(Path(temp_dir) / f"test_{i}.npy") for i in range(3)]
    with pytest.raises(StorageResolutionError):
        file_manager.load(test_file, backend="invalid_backend")
    with pytest.raises(StorageResolutionError):
        file_manager.load_batch(paths, backend="invalid_backend")
    with pytest.raises(StorageResolutionError):
        file_manager.save(np.zeros((10, 10)), test_file, backend="invalid_backend")
    with pytest.raises(StorageResolutionError):
        file_manager.save_batch([np.zeros((10, 10))] * 3, paths, backend="invalid_backend")
    with pytest.raises(Exception):
        file_manager.load(Path(temp_dir) / "nonexistent.npy", backend="disk")


def test_directory_ops(file_manager: FileManager, temp_dir: str) -> None:
    test_file = Path(temp_dir) / "test.npy"
    file_manager.save(np.zeros((5, 5)), test_file, backend="disk")
    assert file_manager.exists(test_file, backend="disk")
    assert not file_manager.exists(Path(temp_dir) / "nonexistent.npy", backend="disk")
    assert file_manager.is_file(test_file, backend="disk")
    assert not file_manager.is_dir(test_file, backend="disk")
    test_dir = Path(temp_dir) / "subdir"
    file_manager.ensure_directory(test_dir, backend="disk")
    assert file_manager.exists(test_dir, backend="disk")
    assert file_manager.is_dir(test_dir, backend="disk")
    assert not file_manager.is_file(test_dir, backend="disk")
    new_dir = Path(temp_dir) / "level1" / "level2" / "level3"
    file_manager.ensure_directory(new_dir, backend="disk")
    assert new_dir.is_dir()
    file_manager.save(np.ones((5, 5)), Path(temp_dir) / "file2.npy", backend="disk")
    entries = file_manager.list_dir(temp_dir, backend="disk")
    assert "test.npy" in entries and "file2.npy" in entries and "subdir" in entries
    file_manager.delete(test_file, backend="disk")
    assert not test_file.exists()
    empty = Path(temp_dir) / "empty_dir"
    file_manager.ensure_directory(empty, backend="disk")
    file_manager.delete(empty, backend="disk")
    assert not empty.exists()


def test_symlink_and_find(file_manager: FileManager, temp_dir: str) -> None:
    source = Path(temp_dir) / "source.npy"
    file_manager.save(np.zeros((5, 5)), source, backend="disk")
    link = Path(temp_dir) / "link.npy"
    file_manager.create_symlink(source, link, backend="disk")
    assert link.exists()
    assert file_manager.is_symlink(link, backend="disk")
    file_manager.ensure_directory(Path(temp_dir) / "dir1", backend="disk")
    file_manager.ensure_directory(Path(temp_dir) / "dir2", backend="disk")
    file_manager.save(np.zeros((5, 5)), Path(temp_dir) / "dir1" / "target.npy", backend="disk")
    file_manager.save(np.ones((5, 5)), Path(temp_dir) / "dir2" / "other.npy", backend="disk")
    found = file_manager.find_file_recursive(temp_dir, "target.npy", backend="disk")
    assert found is not None and "target.npy" in str(found)


def test_memory_through_file_manager(file_manager: FileManager) -> None:
    file_manager.ensure_directory("/", backend="memory")
    data = np.random.rand(10, 10)
    file_manager.save(data, "/test_save_load.npy", backend="memory")
    np.testing.assert_array_equal(file_manager.load("/test_save_load.npy", backend="memory"), data)
    data_list = [np.random.rand(5, 5) for _ in range(3)]
    paths = [f"/batch_{i}.npy" for i in range(3)]
    file_manager.save_batch(data_list, paths, backend="memory")
    for original, loaded in zip(data_list, file_manager.load_batch(paths, backend="memory")):
        np.testing.assert_array_equal(loaded, original)
    assert not file_manager.exists("/test_exists.npy", backend="memory")
    file_manager.save(np.zeros((5, 5)), "/test_exists.npy", backend="memory")
    assert file_manager.exists("/test_exists.npy", backend="memory")


def test_list_image_files_natural_order(file_manager: FileManager, temp_dir: str) -> None:
    for i in [1, 2, 10, 20]:
        file_manager.save(np.zeros((10, 10)), Path(temp_dir) / f"image_{i}.tif", backend="disk")
    files = file_manager.list_image_files(temp_dir, backend="disk")
    assert [Path(f).name for f in files] == ["image_1.tif", "image_2.tif", "image_10.tif", "image_20.tif"]
    file_manager.save(np.ones((5, 5)), Path(temp_dir) / "data.npy", backend="disk")
    assert len(file_manager.list_image_files(temp_dir, backend="disk", extensions={".tif"})) == 4
    subdir = Path(temp_dir) / "subdir"
    file_manager.ensure_directory(subdir, backend="disk")
    file_manager.save(np.ones((5, 5)), subdir / "nested.tif", backend="disk")
    # "list_image_files counts .npy as an image" (docs/compatibility.md): data.npy is listed too
    assert len(file_manager.list_image_files(temp_dir, backend="disk", recursive=False)) == 4 + 1
    assert len(file_manager.list_image_files(temp_dir, backend="disk", recursive=True)) == 5 + 1


# -- tests/test_memory_backend.py -------------------------------------------
class TestMemoryBackend:
    def setup_method(self) -> None:
        self.backend = MemoryBackend()
        self.backend.ensure_directory("/test")
        self.backend.ensure_directory("/test/sub")

    def test_init(self) -> None:
        assert isinstance(MemoryBackend()._memory_store, dict)
        shared = {"existing": "data"}
        backend = MemoryBackend(shared_dict=shared)
        assert backend._memory_store is shared and "existing" in backend._memory_store

    def test_save_load_and_errors(self) -> None:
        data = np.array([1, 2, 3, 4, 5])
        self.backend.save(data, "/test/data.npy")
        np.testing.assert_array_equal(self.backend.load("/test/data.npy"), data)
        with pytest.raises(FileNotFoundError):
            self.backend.load("/test/missing.npy")
        with pytest.raises(IsADirectoryError):
            self.backend.load("/test")
        with pytest.raises(ValueError):
            self.backend.save_batch([np.array([1]), np.array([2])], ["/test/data1.npy"])

    def test_differences_listed_in_compatibility_md(self) -> None:
        # "Memory saves create missing parents" and "save replaces"
        self.backend.save(np.array([1]), "/nonexistent/data.npy")
        assert self.backend.is_dir("/nonexistent")
        self.backend.save(np.array([2]), "/nonexistent/data.npy")
        np.testing.assert_array_equal(self.backend.load("/nonexistent/data.npy"), [2])

    def test_directories_listing_delete(self) -> None:
        assert str(self.backend.ensure_directory("/new/nested/dir")) == "/new/nested/dir"
        assert self.backend.exists("/new/nested/dir") and self.backend.is_dir("/new/nested/dir")
        for i in range(3):
            self.backend.save(np.array([i]), f"/test/file{i}.npy")
        self.backend.save("text", "/test/data2.txt")
        assert len(self.backend.list_files("/test")) == 4
        assert len(self.backend.list_files("/test", extensions={".npy"})) == 3
        self.backend.save(np.array([2]), "/test/sub/file2.npy")
        assert len(self.backend.list_files("/test", recursive=True)) >= 5
        assert "file0.npy" in self.backend.list_dir("/test") and "sub" in self.backend.list_dir("/test")
        assert self.backend.exists("/test") and not self.backend.exists("/nonexistent")
        assert self.backend.is_file("/test/file0.npy") and not self.backend.is_file("/test")
        assert self.backend.is_dir("/test") and not self.backend.is_dir("/test/file0.npy")
        self.backend.delete("/test/file0.npy")
        assert not self.backend.exists("/test/file0.npy")
        with pytest.raises(FileNotFoundError):
            self.backend.delete("/test/missing.npy")
        with pytest.raises(IsADirectoryError):
            self.backend.delete("/test")
        self.backend.delete_all("/test")
        assert not self.backend.exists("/test")

    def test_different_data_types(self) -> None:
        self.backend.save("Hello, World!", "/test/text.txt")
        assert self.backend.load("/test/text.txt") == "Hello, World!"
        self.backend.save({"key": "value", "number": 42}, "/test/data.json")
        assert self.backend.load("/test/data.json") == {"key": "value", "number": 42}


# -- tests/test_disk_backend.py ---------------------------------------------
def test_disk_text_json_csv(tmp_path: Path) -> None:
    disk = DiskBackend()
    disk.ensure_directory(tmp_path)
    disk.save("hello", tmp_path / "a.txt")
    assert disk.load(tmp_path / "a.txt") == "hello"
    payload = {"x": 1, "y": "two"}
    disk.save(payload, tmp_path / "data.json")
    assert disk.load(tmp_path / "data.json") == payload
    rows = [{"a": "1", "b": "2"}, {"a": "3", "b": "4"}]
    disk.save(rows, tmp_path / "rows.csv")
    # "CSV with a header loads as a DataFrame": records=True gives their list of dicts
    loaded = disk.load(tmp_path / "rows.csv", records=True)
    assert isinstance(loaded, list) and loaded[0]["a"] == "1"


def test_disk_listing_and_symlinks(tmp_path: Path) -> None:
    disk = DiskBackend()
    base = tmp_path / "root"
    disk.ensure_directory(base)
    disk.save("a", base / "a.txt")
    disk.ensure_directory(base / "sub")
    disk.save("b", base / "sub" / "b.txt")
    assert any(str(f).endswith("a.txt") for f in disk.list_files(base, recursive=False))
    assert any(str(f).endswith("b.txt") for f in disk.list_files(base, recursive=True))
    assert all(str(f).endswith(".txt") for f in disk.list_files(base, extensions={".txt"}, recursive=True))
    link = tmp_path / "link" / "file.txt"
    disk.create_symlink(base / "a.txt", link)
    assert disk.is_symlink(link)
