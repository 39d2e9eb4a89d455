"""polystore: one storage API for scientific Python.

``fm.save(data, path, backend=...)`` writes to disk, memory, zarr/OME-Zarr, or
streams into a live napari or Fiji viewer. ``import polystore`` loads only
this module; each public name is imported on first use, optional backends
with an error naming their pip extra.
"""

from __future__ import annotations

import importlib

from polystore._version import __version__

TYPE_CHECKING = False  # not ``typing.TYPE_CHECKING``: ``import polystore`` stays free of typing
if TYPE_CHECKING:
    from typing import Any

    from polystore.atomic import atomic_update_json, atomic_write, atomic_write_json, file_lock
    from polystore.backend_registry import STORAGE_BACKENDS, BackendRegistry, create_storage_registry
    from polystore.base import (
        BackendBase,
        DataSink,
        DataSource,
        ReadOnlyBackend,
        StorageBackend,
        VirtualBackend,
    )
    from polystore.config import Backend
    from polystore.constants import TransportMode
    from polystore.disk import DiskBackend, DiskStorageBackend
    from polystore.exceptions import (
        BackendNotFoundError,
        DirectoryNotEmptyError,
        ImageLoadError,
        ImageSaveError,
        InvalidAnnotationError,
        MissingDependencyError,
        PathExistsError,
        PathIsADirectoryError,
        PathNotADirectoryError,
        PathNotFoundError,
        StorageError,
        StorageResolutionError,
        UnsupportedFormatError,
        UnsupportedOperationError,
    )
    from polystore.filemanager import FileManager
    from polystore.formats import DEFAULT_IMAGE_EXTENSIONS, FileFormat
    from polystore.memory import MemoryBackend, MemoryStorageBackend
    from polystore.shared_registry import (
        cleanup_all_backends,
        cleanup_backend_connections,
        ensure_storage_registry,
        get_backend,
        get_backend_instance,
        register_cleanup_callback,
        reset_memory_backend,
        storage_registry,
    )
    from polystore.streaming import StreamingBackend
    from polystore.zarr import ZarrBackend

__all__ = [
    "__version__",
    "FileManager",
    "BackendRegistry",
    "create_storage_registry",
    "StorageBackend",
    "ReadOnlyBackend",
    "VirtualBackend",
    "DataSink",
    "DataSource",
    "DiskBackend",
    "MemoryBackend",
    "DiskStorageBackend",
    "MemoryStorageBackend",
    "BackendBase",
    "Backend",
    "TransportMode",
    "FileFormat",
    "DEFAULT_IMAGE_EXTENSIONS",
    "storage_registry",
    "get_backend",
    "get_backend_instance",
    "ensure_storage_registry",
    "reset_memory_backend",
    "cleanup_all_backends",
    "cleanup_backend_connections",
    "register_cleanup_callback",
    "STORAGE_BACKENDS",
    "atomic_write",
    "atomic_write_json",
    "atomic_update_json",
    "file_lock",
    "StorageError",
    "StorageResolutionError",
    "BackendNotFoundError",
    "UnsupportedFormatError",
    "ImageLoadError",
    "ImageSaveError",
    "InvalidAnnotationError",
    "PathNotFoundError",
    "PathExistsError",
    "PathIsADirectoryError",
    "PathNotADirectoryError",
    "DirectoryNotEmptyError",
    "MissingDependencyError",
    "UnsupportedOperationError",
]

# Every public name is imported on first access (PEP 562), so ``import polystore``
# loads only this module: the core modules below cost nothing until used.
_EXPORTS: dict[str, str] = {
    "atomic_update_json": "polystore.atomic",
    "atomic_write": "polystore.atomic",
    "atomic_write_json": "polystore.atomic",
    "file_lock": "polystore.atomic",
    "STORAGE_BACKENDS": "polystore.backend_registry",
    "BackendRegistry": "polystore.backend_registry",
    "create_storage_registry": "polystore.backend_registry",
    "BackendBase": "polystore.base",
    "DataSink": "polystore.base",
    "DataSource": "polystore.base",
    "ReadOnlyBackend": "polystore.base",
    "StorageBackend": "polystore.base",
    "VirtualBackend": "polystore.base",
    "Backend": "polystore.config",
    "TransportMode": "polystore.constants",
    "DiskBackend": "polystore.disk",
    "DiskStorageBackend": "polystore.disk",
    "BackendNotFoundError": "polystore.exceptions",
    "DirectoryNotEmptyError": "polystore.exceptions",
    "ImageLoadError": "polystore.exceptions",
    "ImageSaveError": "polystore.exceptions",
    "InvalidAnnotationError": "polystore.exceptions",
    "MissingDependencyError": "polystore.exceptions",
    "PathExistsError": "polystore.exceptions",
    "PathIsADirectoryError": "polystore.exceptions",
    "PathNotADirectoryError": "polystore.exceptions",
    "PathNotFoundError": "polystore.exceptions",
    "StorageError": "polystore.exceptions",
    "StorageResolutionError": "polystore.exceptions",
    "UnsupportedFormatError": "polystore.exceptions",
    "UnsupportedOperationError": "polystore.exceptions",
    "FileManager": "polystore.filemanager",
    "DEFAULT_IMAGE_EXTENSIONS": "polystore.formats",
    "FileFormat": "polystore.formats",
    "MemoryBackend": "polystore.memory",
    "MemoryStorageBackend": "polystore.memory",
    "cleanup_all_backends": "polystore.shared_registry",
    "cleanup_backend_connections": "polystore.shared_registry",
    "ensure_storage_registry": "polystore.shared_registry",
    "get_backend": "polystore.shared_registry",
    "get_backend_instance": "polystore.shared_registry",
    "register_cleanup_callback": "polystore.shared_registry",
    "reset_memory_backend": "polystore.shared_registry",
    "storage_registry": "polystore.shared_registry",
}

# Optional backends: imported on first attribute access, so ``import polystore``
# stays light. Left out of ``__all__`` so ``from polystore import *`` never needs
# their runtimes; ``from polystore import ZarrBackend`` raises
# MissingDependencyError naming the extra when zarr is not installed.
_LAZY_EXPORTS: dict[str, tuple[str, str]] = {
    "ZarrBackend": ("polystore.zarr", "zarr"),
    "StreamingBackend": ("polystore.streaming", "streaming"),
    "NapariStreamingBackend": ("polystore.streaming.napari", "streaming"),
    "FijiStreamingBackend": ("polystore.streaming.fiji", "fiji"),
}
#: Names the existing package's successor used for the same classes.
_LAZY_ALIASES: dict[str, str] = {"ZarrStorageBackend": "ZarrBackend"}


def __getattr__(name: str) -> Any:
    module_path = _EXPORTS.get(name)
    if module_path is not None:
        value = getattr(importlib.import_module(module_path), name)
        globals()[name] = value
        return value
    if name in _LAZY_ALIASES:
        return __getattr__(_LAZY_ALIASES[name])
    if name in _LAZY_EXPORTS:
        module_name, extra = _LAZY_EXPORTS[name]
        from polystore.exceptions import MissingDependencyError

        try:
            module = importlib.import_module(module_name)
        except MissingDependencyError:
            raise
        except ImportError as exc:
            if exc.name == module_name:
                raise
            raise MissingDependencyError(exc.name or module_name, extra, name) from exc
        value = getattr(module, name)
        globals()[name] = value
        return value
    if not name.startswith("_"):  # ``polystore.disk`` etc. after a bare ``import polystore``, as before
        try:
            return importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"{__name__}.{name}":
                raise
    raise AttributeError(f"module 'polystore' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*__all__, *_LAZY_EXPORTS, *_LAZY_ALIASES])
