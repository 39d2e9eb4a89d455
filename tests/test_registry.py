"""Backends by name: registration by subclassing, lookup, errors."""

from __future__ import annotations

import enum
from typing import Any

import numpy as np
import pytest

from polystore import (
    BackendNotFoundError,
    BackendRegistry,
    DiskBackend,
    FileManager,
    MemoryBackend,
    StorageBackend,
    StorageError,
)
from polystore.config import Backend


class DictBackend(StorageBackend):
    """A user's backend exactly as the README shows: only save and load."""

    _backend_type = "test_dict_backend"
    supports_listing = False
    supports_directories = False

    def __init__(self) -> None:
        self.items: dict[str, Any] = {}

    def save(self, data: Any, file_path: Any, **kwargs: Any) -> None:
        self.items[str(file_path)] = data

    def load(self, file_path: Any, **kwargs: Any) -> Any:
        return self.items[str(file_path)]


def test_subclass_registers_and_is_usable_by_name() -> None:
    registry = BackendRegistry()
    assert "test_dict_backend" in registry.get_available_backends()
    fm = FileManager(registry)
    fm.save(np.array([1, 2]), "output.dat", backend="test_dict_backend")
    np.testing.assert_array_equal(fm.load("output.dat", backend="TEST_DICT_BACKEND"), [1, 2])
    assert isinstance(registry.get_backend("test_dict_backend"), DictBackend)


def test_capability_flags_give_clear_errors() -> None:
    fm = FileManager(BackendRegistry())
    with pytest.raises(StorageError, match="test_dict_backend.*listing"):
        fm.list_files(".", backend="test_dict_backend")
    with pytest.raises(StorageError, match="test_dict_backend"):
        fm.ensure_directory("x", backend="test_dict_backend")


def test_unknown_backend_lists_available() -> None:
    registry = BackendRegistry()
    with pytest.raises(BackendNotFoundError) as info:
        registry.get_backend("nope")
    message = str(info.value)
    assert "'nope'" in message and "disk" in message and "memory" in message


def test_lazy_instantiation_and_caching() -> None:
    registry = BackendRegistry()
    assert repr(registry).endswith("loaded=none)")
    disk = registry.get_backend("disk")
    assert isinstance(disk, DiskBackend)
    assert registry.get_backend("DISK") is disk
    assert registry["disk"] is disk
    assert "disk" in registry and "nope" not in registry


def test_enum_and_dict_registries() -> None:
    class MyBackends(enum.Enum):
        MEM = "memory"

    memory = MemoryBackend()
    fm = FileManager({"memory": memory})
    fm.save(np.zeros(2), "/a.npy", backend=MyBackends.MEM)
    assert fm.exists("/a.npy", Backend.MEMORY)
    assert memory.is_file("/a.npy")
    with pytest.raises(TypeError):
        fm.save(np.zeros(2), "/a.npy", backend=3)


def test_a_name_registered_again_reaches_the_new_instance_through_every_filemanager() -> None:
    registry = BackendRegistry()
    fm, other_fm = FileManager(registry), FileManager(registry)
    old, new = MemoryBackend(), MemoryBackend()
    registry.register("memory", old)
    fm.save(np.ones(2), "/a.npy", backend="memory")  # resolves and caches the old instance
    other_fm.load("/a.npy", backend="memory")
    fm.registry.register("memory", new)
    fm.save(np.zeros(2), "/b.npy", backend="memory")
    assert new.exists("/b.npy") and not old.exists("/b.npy")
    assert fm.get_backend("memory") is new and other_fm.get_backend("memory") is new
    with pytest.raises(FileNotFoundError):
        other_fm.load("/a.npy", backend="memory")
    registry["Memory"] = old  # the existing package's registry was a dict: item assignment registers
    assert other_fm.load("/a.npy", backend="memory").tolist() == [1.0, 1.0]


def test_a_filemanager_copied_by_pickle_still_follows_registrations() -> None:
    import pickle

    fm = FileManager(BackendRegistry(memory=MemoryBackend()))
    fm.save(np.ones(2), "/a.npy", backend="memory")
    copy = pickle.loads(pickle.dumps(fm))
    replacement = MemoryBackend()
    copy.registry.register("memory", replacement)
    copy.save(np.zeros(2), "/b.npy", backend="memory")
    assert replacement.exists("/b.npy")


def test_filemanagers_made_and_dropped_on_one_registry_do_not_pile_up_in_it() -> None:
    registry = BackendRegistry()
    for _ in range(5000):  # a FileManager per task, as the docs allow
        FileManager(registry).save(np.ones(1), "/x.npy", backend="memory")
    assert len(registry._watchers) < 200
    kept = FileManager(registry)
    replacement = MemoryBackend()
    registry.register("memory", replacement)
    kept.save(np.ones(1), "/y.npy", backend="memory")
    assert replacement.exists("/y.npy")
