"""The interfaces every backend implements: DataSink, DataSource, StorageBackend.

Only ``save`` and ``load`` are required. What else a backend can do is told by
capability flags (``supports_listing``, ``supports_writes``,
``supports_directories``, ``supports_symlinks``). There is one gate,
:func:`require_capability`: :class:`~polystore.filemanager.FileManager` calls it
before dispatching, and the default methods behind a ``False`` flag raise the
same :class:`UnsupportedOperationError` naming the backend, so a custom backend
never has to stub methods it does not offer. The promises of every method are
written down in ``docs/backend-contract.md``.

A subclass of :class:`BackendBase` that sets ``_backend_type = "name"``
registers itself under that name when the class is defined.
"""

from __future__ import annotations

import abc
import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, ClassVar, Union

from polystore.backend_registry import STORAGE_BACKENDS, register_backend_class
from polystore.exceptions import PathNotFoundError, UnsupportedOperationError

__all__ = [
    "PathLike",
    "DataSink",
    "DataSource",
    "BackendBase",
    "StorageBackend",
    "ReadOnlyBackend",
    "VirtualBackend",
    "require_capability",
]

#: Anything polystore accepts as a path.
PathLike = Union[str, "os.PathLike[str]"]


class _Described:
    """Shared naming for error messages."""

    _backend_type: ClassVar[str] = ""

    @property
    def backend_name(self) -> str:
        """The registry name of this backend (or its class name)."""
        return self._backend_type or type(self).__name__

    def _unsupported(self, operation: str, flag: str) -> UnsupportedOperationError:
        return _unsupported_error(self.backend_name, operation, flag)


def _unsupported_error(name: str, operation: str, flag: str) -> UnsupportedOperationError:
    return UnsupportedOperationError(
        f"backend {name!r} does not support {operation} ({flag} is False); "
        "use a backend that does (see docs/backend-contract.md)"
    )


def require_capability(backend: object, flag: str, operation: str) -> None:
    """The one capability gate: raise :class:`UnsupportedOperationError` if ``backend.<flag>`` is False.

    A backend without the attribute is assumed capable (duck-typed backends
    given to a registry as instances).
    """
    if not getattr(backend, flag, True):
        name = getattr(backend, "backend_name", None) or type(backend).__name__
        raise _unsupported_error(str(name), operation, flag)


class DataSink(_Described, abc.ABC):
    """Something data can be written to."""

    #: True when ``save`` stores data that can later be read back.
    supports_writes: ClassVar[bool] = True
    #: True when a batch saved in consecutive pieces gives the same result as
    #: one ``save_batch`` call (FileManager then splits long batches to show
    #: progress). False for backends that lay a batch out as a whole (zarr).
    splits_batches: ClassVar[bool] = True

    @abc.abstractmethod
    def save(self, data: Any, file_path: PathLike, **kwargs: Any) -> None:
        """Write ``data`` at ``file_path``."""

    def save_batch(
        self, data_list: Sequence[Any], identifiers: Sequence[PathLike], **kwargs: Any
    ) -> None:
        """Write each item of ``data_list`` at the path of the same index.

        Backends override this when they can do better than a loop (zarr writes
        one N-D array; streaming sends without waiting).
        """
        if len(data_list) != len(identifiers):
            raise ValueError(
                f"save_batch: {len(data_list)} data items but {len(identifiers)} paths"
            )
        save = self.save
        for data, path in zip(data_list, identifiers):
            save(data, path, **kwargs)


class DataSource(_Described, abc.ABC):
    """Something data can be read from."""

    #: True when list_files / list_dir / is_dir understand directories.
    supports_listing: ClassVar[bool] = True

    @abc.abstractmethod
    def load(self, file_path: PathLike, **kwargs: Any) -> Any:
        """Read and return the data stored at ``file_path``."""

    def load_batch(self, file_paths: Sequence[PathLike], **kwargs: Any) -> list[Any]:
        """Read every path, returning the results in the same order."""
        load = self.load
        return [load(path, **kwargs) for path in file_paths]

    def list_files(
        self,
        directory: PathLike,
        pattern: str | None = None,
        extensions: Iterable[str] | None = None,
        recursive: bool = False,
    ) -> list[str]:
        """Return the files under ``directory``, sorted, filtered by glob and extension."""
        raise self._unsupported("listing", "supports_listing")

    def list_dir(self, path: PathLike) -> list[str]:
        """Return the names (not paths) of the entries directly inside ``path``."""
        raise self._unsupported("listing", "supports_listing")

    def exists(self, path: PathLike) -> bool:
        """True if ``path`` is a file or a directory."""
        return self.is_file(path) or self.is_dir(path)

    def is_file(self, path: PathLike) -> bool:
        """True if ``path`` holds data."""
        raise self._unsupported("is_file", "supports_listing")

    def is_dir(self, path: PathLike) -> bool:
        """True if ``path`` is a directory (or group)."""
        raise self._unsupported("is_dir", "supports_listing")


class BackendBase(_Described):
    """Root of every backend class: registration by ``_backend_type``.

    A subclass that sets ``_backend_type = "name"`` in its body joins the
    backend registry under that name when the class is defined.
    """

    #: Every backend class by name (read-only); the same object as
    #: ``polystore.backend_registry.STORAGE_BACKENDS``.
    __registry__: ClassVar[Mapping[str, type[Any]]] = STORAGE_BACKENDS

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        name = cls.__dict__.get("_backend_type")
        if name:
            register_backend_class(name, cls)  # type: ignore[arg-type]

    @property
    def requires_filesystem_validation(self) -> bool:
        """True when paths are real filesystem paths a caller may check (disk)."""
        return True


class StorageBackend(BackendBase, DataSink, DataSource):
    """A read-write backend. Subclass it and set ``_backend_type`` to register.

    Example::

        class MyBackend(StorageBackend):
            _backend_type = "my_backend"
            def save(self, data, file_path, **kwargs): ...
            def load(self, file_path, **kwargs): ...
    """

    #: True when delete / copy / move / ensure_directory work.
    supports_directories: ClassVar[bool] = True
    #: True when create_symlink works (is_symlink and stat work everywhere).
    supports_symlinks: ClassVar[bool] = False

    def ensure_directory(self, directory: PathLike) -> str:
        """Create ``directory`` (and parents) if missing; return it as ``str``."""
        raise self._unsupported("directories", "supports_directories")

    def delete(self, path: PathLike, recursive: bool = False) -> None:
        """Remove a file, or a directory (``recursive=True`` for a non-empty one)."""
        raise self._unsupported("delete", "supports_directories")

    def delete_all(self, path: PathLike) -> None:
        """Remove a file, a symlink or a whole directory tree (``delete(path, recursive=True)``)."""
        require_capability(self, "supports_directories", "delete_all")
        self.delete(path, recursive=True)

    def copy(self, source: PathLike, destination: PathLike) -> None:
        """Copy a file or directory tree within this backend (never onto an existing path)."""
        raise self._unsupported("copy", "supports_directories")

    def move(self, source: PathLike, destination: PathLike) -> None:
        """Move a file or directory tree within this backend (never onto an existing path)."""
        raise self._unsupported("move", "supports_directories")

    def create_symlink(self, source: PathLike, link_name: PathLike, overwrite: bool = False) -> None:
        """Make ``link_name`` a link to ``source``; ``overwrite`` replaces an existing entry."""
        raise self._unsupported("symlinks", "supports_symlinks")

    def is_symlink(self, path: PathLike) -> bool:
        """True if ``path`` is a symbolic link (always False where links do not exist)."""
        return False

    def stat(self, path: PathLike) -> dict[str, Any]:
        """What is at ``path``: ``{"type", "path", "exists"}`` (+ ``"target"`` for a symlink).

        ``type`` is ``"file"``, ``"directory"``, ``"symlink"`` or ``"missing"``;
        for a symlink ``exists`` tells whether its target exists. Never raises
        for a missing path.
        """
        text = os.fspath(path)
        if self.is_symlink(path):
            return {"type": "symlink", "path": text, "target": self._link_target(path),
                    "exists": self.exists(path)}
        if self.supports_listing and self.is_dir(path):
            return {"type": "directory", "path": text, "exists": True}
        if self.supports_listing and self.is_file(path):
            return {"type": "file", "path": text, "exists": True}
        return {"type": "missing", "path": text, "exists": False}

    def _link_target(self, path: PathLike) -> str:
        """The target a symlink at ``path`` points to (backends with symlinks override)."""
        raise PathNotFoundError(os.fspath(path), self.backend_name)


class ReadOnlyBackend(StorageBackend):
    """A backend that only reads (archives, read-only mounts, virtual workspaces).

    Implement ``load`` (and the listing methods); ``save`` and every directory
    operation raise :class:`UnsupportedOperationError` through the capability
    gate (``supports_writes`` and ``supports_directories`` are False).
    """

    supports_writes: ClassVar[bool] = False
    supports_directories: ClassVar[bool] = False

    def save(self, data: Any, file_path: PathLike, **kwargs: Any) -> None:
        """Refuse: this backend is read-only."""
        raise self._unsupported("writes", "supports_writes")

    def save_batch(
        self, data_list: Sequence[Any], identifiers: Sequence[PathLike], **kwargs: Any
    ) -> None:
        """Refuse: this backend is read-only."""
        raise self._unsupported("writes", "supports_writes")

    @property
    def requires_filesystem_validation(self) -> bool:
        """False: paths of a read-only source need not exist on the local filesystem."""
        return False


class VirtualBackend(StorageBackend):
    """A backend whose listing is generated, not read from a filesystem (OMERO, HTTP APIs).

    Implement ``save``, ``load`` and ``list_files``; there are no directories to
    create (``supports_directories`` is False). Backends that need context
    (``plate_id=...``) take it as keyword arguments and raise ``TypeError``
    when it is missing.
    """

    supports_directories: ClassVar[bool] = False

    @abc.abstractmethod
    def list_files(
        self,
        directory: PathLike,
        pattern: str | None = None,
        extensions: Iterable[str] | None = None,
        recursive: bool = False,
    ) -> list[str]:
        """Return the (generated) file paths under ``directory``."""

    @property
    def requires_filesystem_validation(self) -> bool:
        """False: virtual paths do not exist on the local filesystem."""
        return False
