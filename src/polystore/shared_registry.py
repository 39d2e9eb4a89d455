"""One process-wide backend registry, as the existing package and its successor kept.

``storage_registry`` is a :class:`~polystore.backend_registry.BackendRegistry`
shared by everything in the process that uses it (so ``get_backend("memory")``
returns the same memory backend everywhere). New code can pass a registry to
:class:`~polystore.FileManager` instead; this module is for code written
against the existing package (docs/compatibility.md).
"""

from __future__ import annotations

from typing import Any

from polystore.backend_registry import BackendRegistry
from polystore.base import StorageBackend

__all__ = [
    "storage_registry",
    "get_backend",
    "get_backend_instance",
    "ensure_storage_registry",
    "reset_memory_backend",
    "cleanup_all_backends",
]

#: The process-wide registry; backends are created on first use.
storage_registry: BackendRegistry = BackendRegistry()


def get_backend(backend_type: Any) -> StorageBackend:
    """The shared instance of a backend (``"disk"``, ``"memory"``, ``Backend.ZARR``)."""
    return storage_registry.get_backend(backend_type)


#: The existing package's other name for :func:`get_backend`.
get_backend_instance = get_backend


def ensure_storage_registry() -> None:
    """Nothing to do: the shared registry creates backends when first asked (kept for old code)."""


def reset_memory_backend() -> None:
    """Remove every file of the shared memory backend, keeping its directories."""
    memory = storage_registry.get_backend("memory")
    clear = getattr(memory, "clear_files_only", None)
    if clear is not None:
        clear()


def cleanup_all_backends() -> None:
    """Close the shared backends that hold connections (streaming) and forget every instance."""
    for instance in list(storage_registry._instances.values()):
        close = getattr(instance, "close", None)
        if close is not None:
            close()
    storage_registry._instances.clear()
