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
from polystore.backend_registry import BackendRegistry
from polystore.base import DataSink, DataSource, StorageBackend
from polystore.disk import DiskBackend
from polystore.exceptions import (
    BackendNotFoundError,
    ImageLoadError,
    ImageSaveError,
    MissingDependencyError,
    PathNotFoundError,
    StorageError,
    StorageResolutionError,
    UnsupportedFormatError,
    UnsupportedOperationError,
)
from polystore.filemanager import FileManager
from polystore.memory import MemoryBackend

if TYPE_CHECKING:
    from polystore.streaming import StreamingBackend
    from polystore.zarr import ZarrBackend

__all__ = [
    "__version__",
    "FileManager",
    "BackendRegistry",
    "StorageBackend",
    "DataSink",
    "DataSource",
    "DiskBackend",
    "MemoryBackend",
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
    "PathNotFoundError",
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
}


def __getattr__(name: str) -> Any:
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
    return sorted([*__all__, *_LAZY_EXPORTS])
