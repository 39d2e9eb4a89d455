"""polystore: one storage API for scientific Python.

``fm.save(data, path, backend=...)`` writes to disk, memory, zarr/OME-Zarr, or
streams into a live napari or Fiji viewer. Importing polystore imports NumPy
and nothing else heavy; optional backends load on first use.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from polystore._version import __version__
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

if TYPE_CHECKING:
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
    if name in _LAZY_ALIASES:
        return __getattr__(_LAZY_ALIASES[name])
    if name in _LAZY_EXPORTS:
        module_name, extra = _LAZY_EXPORTS[name]
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
    raise AttributeError(f"module 'polystore' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*__all__, *_LAZY_EXPORTS, *_LAZY_ALIASES])
