"""The interfaces every backend implements: DataSink, DataSource, StorageBackend.

Only ``save`` and ``load`` are required. What else a backend can do is told by
capability flags (``supports_listing``, ``supports_writes``, ...) that
:class:`~polystore.filemanager.FileManager` checks before calling; the default
methods behind a ``False`` flag raise :class:`UnsupportedOperationError` naming
the backend, so a custom backend never has to stub methods it does not offer.

A subclass that sets ``_backend_type = "name"`` registers itself under that
name when the class is defined.
"""

from __future__ import annotations

import abc
import os
from collections.abc import Iterable, Sequence
from typing import Any, ClassVar, Union

from polystore.backend_registry import register_backend_class
from polystore.exceptions import UnsupportedOperationError

__all__ = ["PathLike", "DataSink", "DataSource", "StorageBackend"]

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
        return UnsupportedOperationError(
            f"backend {self.backend_name!r} does not support {operation} ({flag} is False)"
        )


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


class StorageBackend(DataSink, DataSource):
    """A read-write backend. Subclass it and set ``_backend_type`` to register.

    Example::

        class MyBackend(StorageBackend):
            _backend_type = "my_backend"
            def save(self, data, file_path, **kwargs): ...
            def load(self, file_path, **kwargs): ...
    """

    #: True when delete / copy / move / ensure_directory work.
    supports_directories: ClassVar[bool] = True

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        name = cls.__dict__.get("_backend_type")
        if name:
            register_backend_class(name, cls)

    def ensure_directory(self, directory: PathLike) -> str:
        """Create ``directory`` (and parents) if missing; return it as ``str``."""
        raise self._unsupported("directories", "supports_directories")

    def delete(self, path: PathLike, recursive: bool = False) -> None:
        """Remove a file, or a directory (``recursive=True`` for a non-empty one)."""
        raise self._unsupported("delete", "supports_directories")

    def copy(self, source: PathLike, destination: PathLike) -> None:
        """Copy a file or directory tree within this backend."""
        raise self._unsupported("copy", "supports_directories")

    def move(self, source: PathLike, destination: PathLike) -> None:
        """Move a file or directory tree within this backend."""
        raise self._unsupported("move", "supports_directories")
