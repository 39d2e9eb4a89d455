"""Memory backend: directory semantics like disk, zero-copy, sharing across processes."""

from __future__ import annotations

import multiprocessing
from pathlib import PurePosixPath
from typing import Any

import numpy as np
import pytest

from polystore import FileManager, MemoryBackend, PathNotFoundError, StorageError


def test_zero_copy_identity() -> None:
    backend = MemoryBackend()
    data = np.arange(5)
    backend.save(data, "/test/data.npy")
    assert backend.load("/test/data.npy") is data


def test_seed_example() -> None:
    backend = MemoryBackend()
    backend.ensure_directory("/test")
    data = np.array([1, 2, 3])
    backend.save(data, "/test/data.npy")
    np.testing.assert_array_equal(backend.load("/test/data.npy"), [1, 2, 3])


def test_paths_are_normalised() -> None:
    backend = MemoryBackend()
    backend.save(1, PurePosixPath("/a/b/../c//x.npy"))
    assert backend.load("/a/c/x.npy") == 1
    assert backend.load("\\a\\c\\x.npy") == 1
    assert backend.is_dir("/a") and backend.is_dir("/a/c") and not backend.is_dir("/a/b")
    backend.save(2, "rel/y.npy")
    assert backend.list_dir(".") == ["rel"] and backend.list_dir("/") == ["a"]


def test_listing_and_filters() -> None:
    backend = MemoryBackend()
    for path in ("/d/x1.tif", "/d/x2.TIF", "/d/y.npy", "/d/s/z.tif", "/d/s/t/w.npy"):
        backend.save(np.zeros(1), path)
    assert backend.list_files("/d") == ["/d/x1.tif", "/d/x2.TIF", "/d/y.npy"]
    assert backend.list_files("/d", pattern="x*") == ["/d/x1.tif", "/d/x2.TIF"]
    assert backend.list_files("/d", extensions={"tif"}, recursive=True) == [
        "/d/s/z.tif", "/d/x1.tif", "/d/x2.TIF"]
    assert backend.list_files("/d/", recursive=True)[-1] == "/d/y.npy"
    assert backend.list_dir("/d") == ["s", "x1.tif", "x2.TIF", "y.npy"]
    with pytest.raises(PathNotFoundError):
        backend.list_files("/nope")


def test_directory_errors_and_delete() -> None:
    backend = MemoryBackend()
    backend.save(1, "/f/file.npy")
    with pytest.raises(StorageError, match="is a file"):
        backend.save(2, "/f/file.npy/inner.npy")
    with pytest.raises(StorageError, match="directory"):
        backend.save(2, "/f")
    with pytest.raises(StorageError, match="not empty"):
        backend.delete("/f")
    backend.delete("/f", recursive=True)
    assert not backend.exists("/f") and not backend.exists("/f/file.npy")
    with pytest.raises(PathNotFoundError) as info:
        backend.load("/f/file.npy")
    assert isinstance(info.value, FileNotFoundError) and "/f/file.npy" in str(info.value)
    assert backend.ensure_directory("/e/g") == "/e/g"
    backend.delete("/e/g")
    assert backend.is_dir("/e") and not backend.is_dir("/e/g")


def test_copy_move_tree() -> None:
    backend = MemoryBackend()
    a = np.ones(2)
    backend.save(a, "/src/one.npy")
    backend.save(2, "/src/sub/two.npy")
    backend.ensure_directory("/src/empty")
    backend.copy("/src", "/dst")
    assert backend.list_files("/dst", recursive=True) == ["/dst/one.npy", "/dst/sub/two.npy"]
    assert backend.is_dir("/dst/empty")
    copied = backend.load("/dst/one.npy")
    assert copied is not a and np.array_equal(copied, a)  # a copy, as the existing package made
    backend.move("/dst", "/moved")
    assert not backend.exists("/dst") and backend.load("/moved/sub/two.npy") == 2
    backend.move("/moved/one.npy", "/single.npy")
    assert backend.load("/single.npy") is copied and not backend.exists("/moved/one.npy")


def _worker(shared_dict: Any) -> None:
    backend = MemoryBackend(shared_dict=shared_dict)
    backend.ensure_directory("/shared")
    backend.save(np.array([1, 2, 3]), "/shared/data.npy")


def test_multiprocessing_seed_example() -> None:
    # spawn, not fork: the test process may already run JAX's threads
    context = multiprocessing.get_context("spawn")
    manager = context.Manager()
    try:
        shared = manager.dict()
        p = context.Process(target=_worker, args=(shared,))
        p.start()
        p.join(60)
        assert p.exitcode == 0
        backend = MemoryBackend(shared_dict=shared)
        np.testing.assert_array_equal(backend.load("/shared/data.npy"), [1, 2, 3])
        assert backend.list_files("/shared") == ["/shared/data.npy"]
        fm = FileManager({"memory": backend})
        assert fm.is_dir("/shared", backend="memory")
    finally:
        manager.shutdown()
