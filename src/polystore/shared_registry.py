"""One process-wide backend registry, as the existing package and its successor kept.

``storage_registry`` is a :class:`~polystore.backend_registry.BackendRegistry`
shared by everything in the process that uses it (so ``get_backend("memory")``
returns the same memory backend everywhere). New code can pass a registry to
:class:`~polystore.FileManager` instead; this module is for code written
against the existing package (docs/compatibility.md).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
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
    "cleanup_backend_connections",
    "register_cleanup_callback",
]

_log = logging.getLogger(__name__)

#: The process-wide registry; backends are created on first use.
storage_registry: BackendRegistry = BackendRegistry()

_cleanup_callbacks: list[Callable[[], object]] = []


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


def register_cleanup_callback(callback: Callable[[], object]) -> None:
    """Run ``callback()`` when process resources are cleaned up (once, however often registered).

    It runs on :func:`cleanup_all_backends` and on
    ``cleanup_backend_connections(include_process_resources=True)``, as in the
    existing package.
    """
    if callback not in _cleanup_callbacks:
        _cleanup_callbacks.append(callback)


def _run_cleanup_callbacks() -> None:
    """Run every registered callback; raise an ``ExceptionGroup`` of those that failed, after all ran."""
    failures: list[Exception] = []
    for callback in tuple(_cleanup_callbacks):
        try:
            callback()
        except Exception as exc:  # one failing callback must not stop the others
            _log.warning("polystore cleanup callback %r failed: %s", callback, exc)
            failures.append(exc)
    if failures:
        raise ExceptionGroup("polystore: process-resource cleanup callbacks failed", failures)


def _close_connections() -> None:
    """Close the connections of the shared backends that hold some (streaming), keeping the instances."""
    for name, instance in list(storage_registry._instances.items()):
        close = getattr(instance, "cleanup_connections", None) or getattr(instance, "close", None)
        if close is None:
            continue
        try:
            close()
        except Exception as exc:  # cleanup goes on for the other backends
            _log.warning("closing the connections of backend %r failed: %s", name, exc)


def cleanup_backend_connections(*, include_process_resources: bool = False) -> None:
    """Close the shared backends' connections (streaming sockets); the instances stay usable.

    With ``include_process_resources=True`` the callbacks given to
    :func:`register_cleanup_callback` run too; if any fails, an
    ``ExceptionGroup`` of the failures is raised after all have run.
    """
    _close_connections()
    if include_process_resources:
        _run_cleanup_callbacks()


def cleanup_all_backends() -> None:
    """Close the shared backends that hold connections, run the registered cleanup callbacks, forget every instance.

    If a callback fails, the others still run, the instances are still
    forgotten, and an ``ExceptionGroup`` of the failures is raised.
    """
    try:
        _close_connections()
        _run_cleanup_callbacks()
    finally:
        storage_registry._instances.clear()
