"""The rest of the existing package's public API: FileManager tree methods, memory symlinks,
FileFormatRegistry, the modules users import, and the formats' text behaviour."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from polystore import BackendRegistry, FileManager
from polystore.exceptions import PathExistsError, StorageError


@pytest.fixture(params=["disk", "memory"])
def tree(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[FileManager, str, str]:
    """(fm, backend name, root) with root/src/{a.npy, img2.npy, img10.npy, sub/b.npy}."""
    fm = FileManager(BackendRegistry())
    root = str(tmp_path) if request.param == "disk" else "/t"
    for rel in ["src/a.npy", "src/img2.npy", "src/img10.npy", "src/sub/b.npy"]:
        fm.save(np.arange(3), f"{root}/{rel}", request.param)
    return fm, request.param, root


def test_listings_are_in_natural_order(tree: tuple[FileManager, str, str]) -> None:
    fm, name, root = tree
    assert [Path(p).name for p in fm.list_files(f"{root}/src", name)] == ["a.npy", "img2.npy", "img10.npy"]
    assert fm.list_dir(f"{root}/src", name) == ["a.npy", "img2.npy", "img10.npy", "sub"]


def test_collect_dirs_and_files_and_find(tree: tuple[FileManager, str, str]) -> None:
    fm, name, root = tree
    dirs, files = fm.collect_dirs_and_files(f"{root}/src", name)
    assert dirs == [f"{root}/src", f"{root}/src/sub"]
    assert files == [f"{root}/src/a.npy", f"{root}/src/img2.npy", f"{root}/src/img10.npy", f"{root}/src/sub/b.npy"]
    assert fm.collect_dirs_and_files(f"{root}/src", name, recursive=False)[1][-1] == f"{root}/src/img10.npy"
    assert fm.find_file_recursive(f"{root}/src", "b.npy", name) == f"{root}/src/sub/b.npy"
    assert fm.find_file_recursive(f"{root}/src", "none.npy", name) is None
    with pytest.raises(FileNotFoundError):
        fm.collect_dirs_and_files(f"{root}/nowhere", name)


def test_mirror_directory_with_symlinks(tree: tuple[FileManager, str, str]) -> None:
    fm, name, root = tree
    assert fm.mirror_directory_with_symlinks(f"{root}/src", f"{root}/mirror", name) == 4
    assert fm.is_symlink(f"{root}/mirror/sub/b.npy", name)
    np.testing.assert_array_equal(fm.load(f"{root}/mirror/sub/b.npy", name), np.arange(3))
    fm.save(np.arange(5), f"{root}/src/a.npy", name)  # links see the source's new content
    np.testing.assert_array_equal(fm.load(f"{root}/mirror/a.npy", name), np.arange(5))
    # a second mirror refuses before linking anything, unless symlinks may be replaced
    fm.delete(f"{root}/mirror/img2.npy", name)
    with pytest.raises(FileExistsError):
        fm.mirror_directory_with_symlinks(f"{root}/src", f"{root}/mirror", name)
    assert not fm.exists(f"{root}/mirror/img2.npy", name)  # nothing half-done
    assert fm.mirror_directory_with_symlinks(f"{root}/src", f"{root}/mirror", name, overwrite_symlinks_only=True) == 4


def test_create_symlink_overwrites_only_symlinks(tree: tuple[FileManager, str, str]) -> None:
    fm, name, root = tree
    assert fm.create_symlink(f"{root}/src/a.npy", f"{root}/link.npy", name) is True
    with pytest.raises(PathExistsError):
        fm.create_symlink(f"{root}/src/img2.npy", f"{root}/link.npy", name)
    fm.create_symlink(f"{root}/src/img2.npy", f"{root}/link.npy", name, overwrite_symlinks_only=True)
    assert fm.stat(f"{root}/link.npy", name)["target"].endswith("img2.npy")
    with pytest.raises(FileExistsError):  # a regular file is never replaced
        fm.create_symlink(f"{root}/src/a.npy", f"{root}/src/img10.npy", name, overwrite_symlinks_only=True)


def test_move_replace_symlinks_and_delete_all(tree: tuple[FileManager, str, str]) -> None:
    fm, name, root = tree
    fm.create_symlink(f"{root}/src/a.npy", f"{root}/link.npy", name)
    with pytest.raises(FileExistsError):
        fm.move(f"{root}/src/img2.npy", f"{root}/link.npy", name)
    fm.move(f"{root}/src/img2.npy", f"{root}/link.npy", name, replace_symlinks=True)
    assert not fm.is_symlink(f"{root}/link.npy", name) and not fm.exists(f"{root}/src/img2.npy", name)
    assert fm.delete_all(f"{root}/src", name) is True
    assert not fm.exists(f"{root}/src", name)


def test_copy_across_backends_never_overwrites(tmp_path: Path) -> None:
    fm = FileManager(BackendRegistry())
    fm.save(np.arange(3), f"{tmp_path}/a.npy", "disk")
    fm.save(np.arange(9), "/m/a.npy", "memory")
    with pytest.raises(FileExistsError):
        fm.copy(f"{tmp_path}/a.npy", "/m/a.npy", "disk", dest_backend="memory")
    np.testing.assert_array_equal(fm.load("/m/a.npy", "memory"), np.arange(9))


def test_memory_symlinks_and_clear_files_only() -> None:
    from polystore import MemoryBackend

    m = MemoryBackend()
    m.save(np.arange(3), "/d/a.npy")
    m.create_symlink("/d/a.npy", "/l/a.npy")
    m.create_symlink("/l/a.npy", "/l/chain.npy")  # a link to a link
    np.testing.assert_array_equal(m.load("/l/chain.npy"), np.arange(3))
    assert m.stat("/l/a.npy") == {"type": "symlink", "path": "/l/a.npy", "target": "/d/a.npy", "exists": True}
    m.clear_files_only()
    assert m.list_files("/", recursive=True) == [] and m.is_dir("/d") and m.is_dir("/l")


def test_memory_symlink_loop_is_an_error_not_a_hang() -> None:
    from polystore import MemoryBackend

    m = MemoryBackend()
    m.save(1, "/a")
    m.create_symlink("/a", "/b")
    m.create_symlink("/b", "/c")
    m.delete("/a")
    m.move("/c", "/a")  # the link moves as a link: /a -> /b -> /a
    with pytest.raises(StorageError, match="symbolic links"):
        m.load("/a")


def test_file_format_registry_adds_a_format(tmp_path: Path) -> None:
    from polystore.disk import DiskBackend, FileFormatRegistry

    def write(path: Path, data: Any, **kwargs: Any) -> None:
        with open(path, "wb") as handle:  # path ends in .dbl: the file the backend swaps in
            np.save(handle, np.asarray(data) * 2)

    def read(path: Path, **kwargs: Any) -> Any:
        with open(path, "rb") as handle:
            return np.load(handle) // 2

    disk = DiskBackend()
    assert isinstance(disk.format_registry, FileFormatRegistry)
    assert disk.format_registry.is_registered(".npy") and not disk.format_registry.is_registered(".dbl")
    disk.format_registry.register(".dbl", write, read)
    assert disk.format_registry.get_writer(".DBL") is write and disk.format_registry.get_reader(".dbl") is read
    fm = FileManager({"disk": disk})
    fm.save(np.arange(4), tmp_path / "x.dbl", "disk")
    np.testing.assert_array_equal(fm.load(tmp_path / "x.dbl", "disk"), np.arange(4))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["x.dbl"]  # no temp left, nothing appended
    builtin = disk.format_registry.get_writer(".npy")
    builtin(tmp_path / "y.npy", np.ones(2))
    np.testing.assert_array_equal(disk.format_registry.get_reader(".npy")(tmp_path / "y.npy"), np.ones(2))
    with pytest.raises(KeyError):
        disk.format_registry.get_writer(".nope")


def test_strings_to_csv_and_txt_are_written_as_text(tmp_path: Path) -> None:
    fm = FileManager(BackendRegistry())
    text = "a,b\n1,2\n3,4\n"
    fm.save(text, tmp_path / "table.csv", "disk")
    assert (tmp_path / "table.csv").read_text() == text
    fm.save("plain text", tmp_path / "note.txt", "disk")
    assert (tmp_path / "note.txt").read_text() == "plain text"
    fm.save({"a": 1, "b": 2}, tmp_path / "row.csv", "disk")
    assert fm.load(tmp_path / "row.csv", "disk", records=True) == [{"a": "1", "b": "2"}]


def test_modules_users_import() -> None:
    from polystore.base import BackendBase, ReadOnlyBackend, StorageBackend, VirtualBackend
    from polystore.config import CompressorConfig, ZarrCompressor, ZarrConfig
    from polystore.constants import DEFAULT_BACKEND, Backend, TransportMode
    from polystore.formats import DEFAULT_IMAGE_EXTENSIONS, FileFormat, get_format_from_extension
    from polystore.registry import AutoRegisterMeta
    from polystore.utils import natural_sort

    assert DEFAULT_BACKEND is Backend.MEMORY and TransportMode("ipc") is TransportMode.IPC
    assert FileFormat.TIFF.extensions == [".tif", ".tiff"] and get_format_from_extension("TIF") is FileFormat.TIFF
    assert ".npy" not in DEFAULT_IMAGE_EXTENSIONS
    assert ZarrConfig(compressor=CompressorConfig("zstd")).compressor is ZarrCompressor.ZSTD  # type: ignore[arg-type]
    assert natural_sort(["f10", "F2", "f1"]) == ["f1", "F2", "f10"]
    from polystore.lazy_imports import get_torch

    assert get_torch().__name__ == "torch"

    class Reader(ReadOnlyBackend):
        _backend_type = "dropin_readonly"

        def load(self, file_path: Any, **kwargs: Any) -> Any:
            return 1

    class Virtual(VirtualBackend):
        def save(self, data: Any, file_path: Any, **kwargs: Any) -> None: ...
        def load(self, file_path: Any, **kwargs: Any) -> Any: ...
        def list_files(self, directory: Any, pattern: Any = None, extensions: Any = None,
                       recursive: bool = False, **kwargs: Any) -> list[str]:
            return [f"{directory}/plate{kwargs['plate_id']}_v1"]

    assert isinstance(Reader(), BackendBase) and isinstance(Reader(), StorageBackend)
    assert Reader().requires_filesystem_validation is False and Virtual().requires_filesystem_validation is False
    assert FileManager(BackendRegistry()).get_backend("disk").requires_filesystem_validation is True
    # a virtual backend's context reaches it through FileManager.list_files
    assert FileManager({"virtual": Virtual()}).list_files("/p", "virtual", plate_id=7) == ["/p/plate7_v1"]
    fm = FileManager(BackendRegistry())
    assert fm.load("x", "dropin_readonly") == 1
    with pytest.raises(NotImplementedError, match="supports_writes"):
        fm.save(1, "x", "dropin_readonly")

    class Plugin(metaclass=AutoRegisterMeta):
        __registry_key__ = "name"

    class Tiff(Plugin):
        name = "tiff"

    assert Plugin.__registry__ == {"tiff": Tiff}  # type: ignore[attr-defined]


def test_spill_accounting_follows_copy_and_move(tmp_path: Path) -> None:
    pytest.importorskip("zarr")
    from polystore import MemoryBackend
    from polystore.config import VFSConfig

    m = MemoryBackend(vfs_config=VFSConfig(memory_limit_gb=10 / 1024, spill_path=str(tmp_path / "s.zarr")))
    spill = m.spill  # type: ignore[attr-defined]
    from polystore.spill import SpillStore

    # the spill-over is the backend's store (a mapping); no method is replaced at run time
    assert isinstance(m._store, SpillStore) and not {"save", "load", "delete"} & set(vars(m))
    mb = np.ones(1024 * 1024, dtype=np.uint8)
    m.save(mb, "/a.npy")
    m.move("/a.npy", "/b.npy")
    assert spill.resident_bytes == mb.nbytes and list(spill._resident) == ["/b.npy"]
    m.copy("/b.npy", "/c.npy")
    assert spill.resident_bytes == 2 * mb.nbytes
    m.clear_files_only()
    assert spill.resident_bytes == 0


def test_copy_tree_is_the_cp_engine_for_python_users(tmp_path: Path) -> None:
    pytest.importorskip("zarr")
    fm = FileManager(BackendRegistry())
    images = [np.full((8, 9), i, dtype=np.uint16) for i in range(3)]
    for i, image in enumerate(images):
        fm.save(image, tmp_path / "tiffs" / f"img{i}.tif", "disk")
    result = fm.copy_tree(tmp_path / "tiffs", tmp_path / "plate.zarr")
    assert (result.copied, result.skipped) == (3, 0)
    np.testing.assert_array_equal(np.asarray(fm.load(str(tmp_path / "plate.zarr" / "img2"), "zarr")), images[2])
    again = fm.copy_tree(tmp_path / "tiffs", tmp_path / "plate.zarr")  # resumable: nothing to redo
    assert (again.copied, again.skipped) == (0, 3)
    with pytest.raises(StorageError, match="--format applies to --to disk only"):
        fm.copy_tree(tmp_path / "tiffs", tmp_path / "other.zarr", fmt="npy")


def test_storage_backends_and_backendbase_registry_map_names_to_classes() -> None:
    from polystore import DiskBackend, MemoryBackend
    from polystore.backend_registry import STORAGE_BACKENDS
    from polystore.base import BackendBase, StorageBackend

    assert BackendBase.__registry__ is STORAGE_BACKENDS
    assert STORAGE_BACKENDS["disk"] is DiskBackend and STORAGE_BACKENDS["memory"] is MemoryBackend
    assert {"disk", "memory"} <= set(STORAGE_BACKENDS.keys()) and "disk" in STORAGE_BACKENDS
    with pytest.raises(KeyError):
        STORAGE_BACKENDS["no_such_backend"]

    class UserBackend(StorageBackend):
        _backend_type = "dropin_user_registry"

        def save(self, data: Any, path: Any, **kwargs: Any) -> None:
            """Discard."""

        def load(self, path: Any, **kwargs: Any) -> Any:
            return None

    assert BackendBase.__registry__["dropin_user_registry"] is UserBackend
    assert "dropin_user_registry" in STORAGE_BACKENDS
    # as the existing package: instantiate from the class registry by name
    assert isinstance(STORAGE_BACKENDS["dropin_user_registry"](), UserBackend)


def test_registered_cleanup_callbacks_run_on_cleanup() -> None:
    from polystore import backend_registry as br

    calls: list[str] = []

    def cb() -> None:
        calls.append("ran")

    br.register_cleanup_callback(cb)
    br.register_cleanup_callback(cb)  # registered once, however often given
    try:
        br.cleanup_backend_connections()  # connections only, as there
        assert calls == []
        br.cleanup_backend_connections(include_process_resources=True)
        assert calls == ["ran"]
        memory = br.get_backend_instance("memory")
        br.cleanup_all_backends()  # full shutdown runs them too and forgets the instances
        assert calls == ["ran", "ran"] and br.get_backend_instance("memory") is not memory
    finally:
        from polystore import shared_registry

        shared_registry._cleanup_callbacks.remove(cb)


def test_cleanup_callback_failure_does_not_stop_the_others() -> None:
    from polystore import cleanup_backend_connections, register_cleanup_callback, shared_registry

    calls: list[str] = []

    def bad() -> None:
        raise RuntimeError("socket already gone")

    def good() -> None:
        calls.append("good")

    register_cleanup_callback(bad)
    register_cleanup_callback(good)
    try:
        with pytest.raises(ExceptionGroup) as info:
            cleanup_backend_connections(include_process_resources=True)
        assert calls == ["good"] and "socket already gone" in str(info.value.exceptions[0])
    finally:
        shared_registry._cleanup_callbacks.remove(bad)
        shared_registry._cleanup_callbacks.remove(good)


def test_cleanup_backend_connections_closes_connections_and_keeps_instances() -> None:
    from polystore import cleanup_backend_connections, get_backend, shared_registry
    from polystore.base import StorageBackend

    class Connected(StorageBackend):
        _backend_type = "dropin_connected"

        def __init__(self) -> None:
            self.open_connections = 2

        def save(self, data: Any, path: Any, **kwargs: Any) -> None:
            """Discard."""

        def load(self, path: Any, **kwargs: Any) -> Any:
            return None

        def cleanup_connections(self) -> None:
            self.open_connections = 0

    backend = get_backend("dropin_connected")
    try:
        cleanup_backend_connections()
        assert backend.open_connections == 0  # type: ignore[attr-defined]
        assert get_backend("dropin_connected") is backend  # the instance stays usable
    finally:
        shared_registry.storage_registry._instances.pop("dropin_connected")
