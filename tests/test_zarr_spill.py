"""Memory -> zarr spill (seed 004 VFS): a small limit, LRU eviction, one namespace."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

zarr = pytest.importorskip("zarr")

from polystore import BackendRegistry, FileManager  # noqa: E402
from polystore.config import MaterializationBackend, VFSConfig  # noqa: E402
from polystore.exceptions import PathNotFoundError  # noqa: E402
from polystore.memory import MemoryBackend  # noqa: E402
from polystore.spill import SpilledArray, SpillManager, attach_spill  # noqa: E402

MIB = 1024 * 1024


def _limit(mib: float) -> float:
    return mib * MIB / 1024**3


def _arr(i: int) -> np.ndarray:
    return np.full((512, 1024), i, np.uint16)  # exactly 1 MiB


def _spilling(mib: float, spill_path: str | None = None) -> tuple[MemoryBackend, SpillManager]:
    backend = MemoryBackend()
    manager = attach_spill(backend, VFSConfig(memory_limit_gb=_limit(mib), spill_path=spill_path))
    return backend, manager


def test_arrays_beyond_the_limit_spill_least_recently_used_first(tmp_path: Path) -> None:
    backend, manager = _spilling(3, str(tmp_path / "spill.zarr"))
    for i in range(3):
        backend.save(_arr(i), f"/w/a{i}.npy")
    assert manager.spilled_count == 0 and manager.resident_bytes == 3 * MIB
    backend.load("/w/a0.npy")  # a0 is now more recent than a1
    backend.save(_arr(3), "/w/a3.npy")
    assert isinstance(backend._store.peek("/w/a1.npy"), SpilledArray)
    assert isinstance(backend._store.peek("/w/a0.npy"), np.ndarray)
    backend.save(_arr(4), "/w/a4.npy")
    assert isinstance(backend._store.peek("/w/a2.npy"), SpilledArray)
    assert manager.spilled_count == 2 and manager.resident_bytes <= 3 * MIB
    # one namespace: every path is listed, exists, and loads its own data
    assert backend.list_files("/w") == [f"/w/a{i}.npy" for i in range(5)]
    assert all(backend.exists(f"/w/a{i}.npy") and backend.is_file(f"/w/a{i}.npy") for i in range(5))
    for i in range(5):
        np.testing.assert_array_equal(backend.load(f"/w/a{i}.npy"), _arr(i))
    # the spilled arrays are ordinary zarr arrays in the spill store
    group = zarr.open_group(str(tmp_path / "spill.zarr"), mode="r")
    assert len(list(group.array_keys())) == 2


def test_delete_removes_the_zarr_copy(tmp_path: Path) -> None:
    backend, manager = _spilling(1, str(tmp_path / "spill.zarr"))
    backend.save(_arr(0), "/d/x.npy")
    backend.save(_arr(1), "/d/y.npy")  # x spills
    backend.save(_arr(2), "/d/sub/z.npy")  # y spills
    spill_dir = tmp_path / "spill.zarr"
    assert len([n for n in os.listdir(spill_dir) if n != "zarr.json"]) == 2
    backend.delete("/d/x.npy")
    assert not backend.exists("/d/x.npy")
    with pytest.raises(PathNotFoundError):
        backend.load("/d/x.npy")
    assert len([n for n in os.listdir(spill_dir) if n != "zarr.json"]) == 1
    backend.delete("/d", recursive=True)
    assert [n for n in os.listdir(spill_dir) if n != "zarr.json"] == []
    assert manager.resident_bytes == 0


def test_array_larger_than_the_limit_spills_at_once_and_objects_are_not_counted() -> None:
    backend, manager = _spilling(0.5)
    backend.save({"meta": 1}, "/m/info.json")
    backend.save("text", "/m/note.txt")
    assert manager.resident_bytes == 0
    backend.save(_arr(7), "/m/big.npy")
    assert isinstance(backend._store.peek("/m/big.npy"), SpilledArray)
    np.testing.assert_array_equal(backend.load("/m/big.npy"), _arr(7))
    assert backend.load("/m/info.json") == {"meta": 1}
    root = manager.spill_root
    assert os.path.isdir(root)
    manager.close()  # the temporary spill folder goes away
    assert not os.path.exists(root)


def test_overwrite_and_clear(tmp_path: Path) -> None:
    backend, manager = _spilling(2, str(tmp_path / "s.zarr"))
    backend.save(_arr(1), "/o/a.npy")
    backend.save(_arr(2), "/o/a.npy")  # replacing does not double count
    assert manager.resident_bytes == MIB
    backend.save(_arr(3), "/o/b.npy")
    backend.save(_arr(4), "/o/c.npy")
    np.testing.assert_array_equal(backend.load("/o/a.npy"), _arr(2))
    backend.clear()
    assert manager.resident_bytes == 0 and not backend.exists("/o/a.npy")
    assert not (tmp_path / "s.zarr").exists()


def test_through_filemanager(tmp_path: Path) -> None:
    memory = MemoryBackend()
    attach_spill(memory, VFSConfig(memory_limit_gb=_limit(2), spill_path=str(tmp_path / "sp.zarr")))
    fm = FileManager(BackendRegistry(memory=memory))
    images = [_arr(i) for i in range(4)]
    fm.save_batch(images, [f"/plate/img{i}.tif" for i in range(4)], "memory")
    assert fm.list_image_files("/plate", "memory") == [f"/plate/img{i}.tif" for i in range(4)]
    got = fm.load_batch([f"/plate/img{i}.tif" for i in range(4)], "memory")
    for g, want in zip(got, images):
        np.testing.assert_array_equal(g, want)


def test_spill_needs_zarr_materialization() -> None:
    with pytest.raises(ValueError, match="ZARR"):
        SpillManager({}, VFSConfig(memory_limit_gb=1, materialization_backend=MaterializationBackend.DISK))
    with pytest.raises(ValueError, match="memory_limit_gb"):
        SpillManager({}, VFSConfig())


def test_a_shared_dict_lets_another_backend_read_spilled_arrays(tmp_path: Path) -> None:
    shared: dict[str, object] = {}
    config = VFSConfig(memory_limit_gb=_limit(1), spill_path=str(tmp_path / "shared.zarr"))
    writer = MemoryBackend(shared_dict=shared)
    attach_spill(writer, config)
    reader = MemoryBackend(shared_dict=shared)
    attach_spill(reader, config)
    writer.save(_arr(1), "/s/a.npy")
    writer.save(_arr(2), "/s/b.npy")  # a spills
    assert isinstance(shared["/s/a.npy"], SpilledArray)
    np.testing.assert_array_equal(reader.load("/s/a.npy"), _arr(1))
    np.testing.assert_array_equal(reader.load("/s/b.npy"), _arr(2))


def test_memory_backend_with_a_vfs_limit_spills(tmp_path: Path) -> None:
    config = VFSConfig(memory_limit_gb=_limit(2), spill_path=str(tmp_path / "vfs.zarr"))
    backend = MemoryBackend(vfs_config=config)
    fm = FileManager(BackendRegistry(memory=backend))
    for i in range(4):
        fm.save_array(_arr(i), f"/vfs/a{i}", "memory")
    manager = backend.spill  # type: ignore[attr-defined]
    assert manager.spilled_count == 2 and manager.resident_bytes == 2 * MIB
    assert fm.list_files("/vfs", "memory") == [f"/vfs/a{i}" for i in range(4)]
    for i in range(4):
        np.testing.assert_array_equal(fm.load_array(f"/vfs/a{i}", "memory"), _arr(i))
    fm.delete("/vfs/a0", "memory")
    assert not fm.exists("/vfs/a0", "memory")


def test_memory_backend_without_a_limit_is_not_wrapped() -> None:
    for config in (None, VFSConfig()):
        backend = MemoryBackend(vfs_config=config)
        assert "save" not in vars(backend) and "load" not in vars(backend)
        assert not hasattr(backend, "spill")
        backend.save(_arr(0), "/x")
        assert backend.load("/x") is backend.load("/x")  # zero-copy as before
