"""The exception hierarchy of polystore.

Every error polystore raises on purpose is a :class:`StorageError`. Errors about a
path name the path and the backend; errors about a missing optional runtime name
the pip extra that installs it.
"""

from __future__ import annotations

__all__ = [
    "StorageError",
    "StorageResolutionError",
    "BackendNotFoundError",
    "UnsupportedFormatError",
    "ImageLoadError",
    "ImageSaveError",
    "PathNotFoundError",
    "InvalidPathError",
    "StoragePermissionError",
    "StorageFullError",
    "SymlinkLoopError",
    "MissingDependencyError",
    "UnsupportedOperationError",
    "PathExistsError",
    "PathIsADirectoryError",
    "PathNotADirectoryError",
    "DirectoryNotEmptyError",
    "StorageWriteError",
    "MetadataNotFoundError",
    "PathMismatchError",
    "VFSTypeError",
    "InvalidAnnotationError",
]


class StorageError(Exception):
    """Base class of every error polystore raises for a storage operation."""


class StorageResolutionError(StorageError):
    """A path or backend could not be resolved to something that exists."""


class BackendNotFoundError(StorageResolutionError, KeyError):
    """The requested backend name is not known to the registry."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class UnsupportedFormatError(StorageError, ValueError):
    """The file extension (or data type) has no codec in this backend."""


class ImageLoadError(StorageError, RuntimeError):
    """Data exists but could not be read (corrupt, truncated or mis-typed)."""


class ImageSaveError(StorageError, RuntimeError):
    """Data could not be written; the previous content at the path is untouched."""


class PathNotFoundError(StorageResolutionError, FileNotFoundError):
    """The path does not exist in the backend.

    Also a :class:`FileNotFoundError`, so ``except FileNotFoundError`` works as
    it does with plain Python I/O.
    """

    def __init__(self, path: str, backend: str) -> None:
        super().__init__(f"{backend}: no such file or directory: {path!r}")
        self.path = path
        self.backend = backend


class InvalidPathError(StorageResolutionError, ValueError):
    """A path no filesystem can hold (a NUL byte in it). Also a :class:`ValueError`, as ``open`` raises."""


class StoragePermissionError(ImageSaveError, PermissionError):
    """Writing was refused: no write permission, or a read-only filesystem.

    Also a :class:`PermissionError`. Nothing was half-written.
    """


class StorageFullError(ImageSaveError, OSError):
    """The disk (or the user's quota) is full. Also an :class:`OSError`. Nothing was half-written."""


class SymlinkLoopError(StorageResolutionError, OSError):
    """A symbolic link points back to itself or to a folder it is in. Also an :class:`OSError` (ELOOP)."""


class MissingDependencyError(StorageError, ImportError):
    """An optional runtime (zarr, pyzmq, torch, ...) is not installed."""

    def __init__(self, package: str, extra: str, purpose: str = "") -> None:
        what = f" for {purpose}" if purpose else ""
        super().__init__(
            f"{package} is required{what} but is not installed; "
            f'install it with: pip install "polystore[{extra}]"'
        )
        self.package = package
        self.extra = extra


class UnsupportedOperationError(StorageError, NotImplementedError):
    """The backend does not offer this operation (see its capability flags).

    Also a :class:`NotImplementedError`, what hand-written backends raise for
    a method they do not offer.
    """


class _PathError(StorageResolutionError):
    """An error about one path in one backend; ``path`` and ``backend`` name them."""

    def __init__(self, message: str, path: str = "", backend: str = "") -> None:
        super().__init__(message)
        self.path = path
        self.backend = backend

    def __str__(self) -> str:  # OSError formats its args as (errno, strerror)
        return str(self.args[0]) if self.args else ""


class PathExistsError(_PathError, FileExistsError):
    """The destination of a copy, move or symlink already exists (nothing was overwritten).

    Also a :class:`FileExistsError`.
    """


class PathIsADirectoryError(_PathError, IsADirectoryError):
    """A file operation (``load``, ``save``) was given a directory. Also an :class:`IsADirectoryError`."""


class PathNotADirectoryError(_PathError, NotADirectoryError):
    """A directory operation (``list_files``, ``list_dir``) was given a file.

    Also a :class:`NotADirectoryError`.
    """


class DirectoryNotEmptyError(PathIsADirectoryError):
    """``delete`` of a non-empty directory without ``recursive=True`` (or ``delete_all``).

    An :class:`IsADirectoryError` (so an :class:`OSError`), as the existing
    polystore package raised.
    """


class StorageWriteError(StorageError, RuntimeError):
    """Writing to storage failed (kept for code written against the existing package)."""


class MetadataNotFoundError(StorageError, ValueError):
    """Required metadata files could not be found."""


class PathMismatchError(StorageError, ValueError):
    """A path's scheme does not match the scheme its backend expects."""


class VFSTypeError(StorageError, TypeError):
    """A value of the wrong type was given where a path was expected."""


class InvalidAnnotationError(StorageError, ValueError):
    """Labels, points or shapes that break a rule of :mod:`polystore.annotations`."""
