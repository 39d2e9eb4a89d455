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
