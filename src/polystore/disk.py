"""The disk backend: files on the local filesystem, format chosen by extension.

Every save writes a new file (see :mod:`polystore.disk_write`) and puts it in
place of the target, so a failed or killed save leaves the previous file intact.
``metadata=`` is embedded in TIFF files and kept in a ``<file>.meta.json``
sidecar for every other format; :meth:`DiskBackend.load_metadata` reads it back.
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from polystore._listing import is_working_file, matches, normalize_extensions
from polystore.atomic import is_stale_temp
from polystore.base import PathLike, StorageBackend
from polystore.disk_paths import SIDECAR_SUFFIX, DiskPathOps
from polystore.disk_paths import disk_path as _fspath
from polystore.disk_write import DiskWrites
from polystore.exceptions import (
    DirectoryNotEmptyError,
    PathIsADirectoryError,
    PathNotADirectoryError,
    PathNotFoundError,
    StorageError,
    SymlinkLoopError,
    UnsupportedFormatError,
    ImageLoadError,
)
from polystore.format_registry import FileFormatRegistry
from polystore.formats import Codec, check_kind
from polystore.frameworks import from_numpy, to_numpy

__all__ = ["DiskBackend", "DiskStorageBackend", "FileFormatRegistry", "SIDECAR_SUFFIX"]

class DiskBackend(DiskWrites, DiskPathOps, StorageBackend):
    """Local files: ``.npy .npz .tif .tiff .pt .pth .csv .json .txt``.

    More formats are added on ``format_registry`` (a :class:`FileFormatRegistry`):
    ``disk.format_registry.register(".xyz", writer, reader)``.

    Parameters
    ----------
    durable:
        Also fsync each file and its folder before the rename (survives power
        loss, costs throughput). Off by default: the rename alone already
        protects against crashes of the writing process.
    """

    _backend_type = "disk"
    supports_symlinks = True

    def __init__(self, durable: bool = False) -> None:
        self.durable = durable
        self.format_registry = FileFormatRegistry()

    # -- data -------------------------------------------------------------
    def save(
        self,
        data: Any,
        file_path: PathLike,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        """Write ``data`` at ``file_path`` atomically, creating parent folders.

        Raises :class:`UnsupportedFormatError` for an unknown extension or a
        data type the format cannot hold, and :class:`ImageSaveError` (with the
        previous file untouched) for any I/O failure.
        """
        path = _fspath(file_path)
        codec = self.format_registry.codec_for(path)
        self._write(codec, to_numpy(data), path, metadata, kwargs)

    def save_batch(
        self,
        data_list: Sequence[Any],
        identifiers: Sequence[PathLike],
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        """Save each item at the path of the same index, in order, each atomically.

        Every item gets a new temp file that is renamed over its target; a
        replaced file is unlinked, so readers holding it keep the old bytes.
        No thread pool: on 2 cores pools made small-file I/O slower.
        """
        if len(data_list) != len(identifiers):
            raise ValueError(f"save_batch: {len(data_list)} data items but {len(identifiers)} paths")
        write = self._write
        codecs: dict[str, Codec] = {}
        done = 0
        try:
            for data, file_path in zip(data_list, identifiers):
                path = _fspath(file_path)
                codec = self.format_registry.batch_codec(path, codecs)
                write(codec, to_numpy(data), path, metadata, kwargs)
                done += 1
        except StorageError as exc:
            exc.add_note(
                f"save_batch: the {done} item(s) before this one were saved; "
                f"the {len(identifiers) - done} from this one on were not written"
            )
            raise

    def load(self, file_path: PathLike, framework: str | None = None, **kwargs: Any) -> Any:
        """Read the file at ``file_path``; ``framework="torch"`` (etc.) converts arrays.

        Raises :class:`PathNotFoundError` (a ``FileNotFoundError``) for a
        missing file and :class:`ImageLoadError` naming path and format for a
        corrupt or truncated one.
        """
        path = _fspath(file_path)
        try:
            codec = self.format_registry.codec_for(path)
        except UnsupportedFormatError:
            if os.path.isdir(path):
                raise PathIsADirectoryError(
                    f"disk: cannot load {path!r}: it is a directory; use list_files to see what it holds",
                    path,
                    "disk",
                ) from None
            raise
        data = self._read(codec, path, kwargs)
        return from_numpy(data, framework) if framework else data

    def _read(self, codec: Codec, path: str, kwargs: dict[str, Any]) -> Any:
        if kwargs:
            check_kind(codec, kwargs, path)
        try:
            return codec.read(path, **kwargs)
        except FileNotFoundError:
            raise PathNotFoundError(path, "disk") from None
        except IsADirectoryError:
            raise PathIsADirectoryError(
                f"disk: cannot load {path!r}: it is a directory, not a {codec.name} file; "
                "use list_files to see what it holds",
                path,
                "disk",
            ) from None
        except StorageError:
            raise
        except Exception as exc:
            raise ImageLoadError(
                f"disk: could not load {path!r} as {codec.name}: {type(exc).__name__}: {exc}"
            ) from exc

    def load_batch(
        self, file_paths: Sequence[PathLike], framework: str | None = None, **kwargs: Any
    ) -> list[Any]:
        """Read every path in order, each with its own format (codec lookups cached per ending; no thread pool)."""
        read = self._read
        codecs: dict[str, Codec] = {}
        out: list[Any] = []
        append = out.append
        for file_path in file_paths:
            path = _fspath(file_path)
            append(read(self.format_registry.batch_codec(path, codecs), path, kwargs))
        if framework:
            return [from_numpy(item, framework) for item in out]
        return out

    def load_metadata(self, file_path: PathLike) -> dict[str, Any] | None:
        """Return the ``metadata=`` stored with a file, or None if it has none."""
        path = _fspath(file_path)
        codec = self.format_registry.codec_for(path)
        if not os.path.exists(path):
            raise PathNotFoundError(path, "disk")
        if codec.embeds_metadata:
            try:
                return codec.read_metadata(path)
            except Exception as exc:
                raise ImageLoadError(f"disk: could not read metadata of {path!r}: {exc}") from exc
        try:
            with open(path + SIDECAR_SUFFIX, encoding="utf-8") as handle:
                import json
                result: dict[str, Any] = json.load(handle)
                return result
        except FileNotFoundError:
            return None

    # -- listing ----------------------------------------------------------
    def list_files(
        self,
        directory: PathLike,
        pattern: str | None = None,
        extensions: Iterable[str] | None = None,
        recursive: bool = False,
    ) -> list[str]:
        """Sorted paths of files under ``directory`` (metadata sidecars excluded)."""
        root = _fspath(directory)
        if not os.path.isdir(root):
            raise _not_a_directory(root)
        exts = normalize_extensions(extensions)
        found = [
            path
            for path, name in _walk_files(root, recursive)
            if matches(name, pattern, exts) and not _is_hidden_entry(name)
        ]
        return sorted(found)

    def list_dir(self, path: PathLike) -> list[str]:
        """Sorted names of the entries directly in ``path``."""
        root = _fspath(path)
        try:
            return sorted(
                name for name in os.listdir(root) if not _is_hidden_entry(name)
            )
        except (FileNotFoundError, NotADirectoryError):
            raise _not_a_directory(root) from None

    def exists(self, path: PathLike) -> bool:
        """True if a file or folder is at ``path``."""
        return os.path.exists(os.fspath(path))

    def is_file(self, path: PathLike) -> bool:
        """True if ``path`` is a regular file."""
        return os.path.isfile(os.fspath(path))

    def is_dir(self, path: PathLike) -> bool:
        """True if ``path`` is a folder."""
        return os.path.isdir(os.fspath(path))

    # -- directories ------------------------------------------------------
    def ensure_directory(self, directory: PathLike) -> str:
        """Create ``directory`` and its parents if missing; return it as ``str``."""
        path = _fspath(directory)
        try:
            os.makedirs(path, exist_ok=True)
        except FileExistsError:
            raise StorageError(f"disk: {path!r} exists and is not a directory") from None
        return path

    def delete(self, path: PathLike, recursive: bool = False) -> None:
        """Remove a file (and its sidecar) or a folder (``recursive`` for a non-empty one)."""
        target = _fspath(path)
        if os.path.isdir(target) and not os.path.islink(target):
            if recursive:
                import shutil
                shutil.rmtree(target)
                return
            try:
                os.rmdir(target)
            except OSError as exc:
                raise DirectoryNotEmptyError(
                    f"disk: directory {target!r} is not empty; pass recursive=True "
                    "(or call delete_all) to delete it",
                    target,
                    "disk",
                ) from exc
            return
        # the sidecar first: a kill in between leaves data without metadata, never
        # metadata that a later save of a new file at this path would inherit
        with contextlib.suppress(FileNotFoundError):
            os.unlink(target + SIDECAR_SUFFIX)
        try:
            os.unlink(target)
        except FileNotFoundError:
            raise PathNotFoundError(target, "disk") from None

    def cleanup(self, directory: PathLike, recursive: bool = True) -> list[str]:
        """Delete the temp files killed writers left under ``directory``; return their paths.

        A save or ``atomic_write`` killed mid-way leaves a hidden
        ``.<name>.<pid>-<n>.tmp`` beside its target. Listings never show
        them; this removes those whose writer process is gone (a temp file of
        a running writer is kept), so it is safe while other processes save.
        """
        root = _fspath(directory)
        if not os.path.isdir(root):
            raise PathNotFoundError(root, "disk")
        removed: list[str] = []
        for path, name in _walk_files(root, recursive):
            if is_stale_temp(name):
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(path)
                    removed.append(path)
        return sorted(removed)


def _not_a_directory(path: str) -> StorageError:
    """The error for listing ``path``: missing, or a file."""
    if os.path.exists(path):
        return PathNotADirectoryError(
            f"disk: cannot list {path!r}: it is a file, not a directory", path, "disk"
        )
    return PathNotFoundError(path, "disk")


def _is_hidden_entry(name: str) -> bool:
    """Metadata sidecars and polystore's working files (temp files, locks, cp journal) are not listed."""
    return name.endswith(SIDECAR_SUFFIX) or is_working_file(name)


def _walk_files(root: str, recursive: bool) -> Iterator[tuple[str, str]]:
    """(path, name) of the files under ``root``; symlinked folders are followed.

    A link back into a folder being walked (or one pointing at itself)
    raises :class:`SymlinkLoopError` naming it, instead of walking until the
    kernel's ELOOP.
    """
    stack: list[tuple[str, frozenset[tuple[int, int]]]] = [(root, frozenset())]
    while stack:
        folder, ancestors = stack.pop()
        try:
            info = os.stat(folder)
            here = ancestors | {(info.st_dev, info.st_ino)}
            with os.scandir(folder) as entries:
                for entry in entries:
                    if entry.is_dir():
                        if not recursive:
                            continue
                        sub = entry.stat()
                        if (sub.st_dev, sub.st_ino) in here:
                            raise OSError(errno.ELOOP, "symbolic link loop", entry.path)
                        stack.append((entry.path, here))
                    elif entry.is_file():
                        yield entry.path, entry.name
        except OSError as exc:
            if exc.errno != errno.ELOOP:
                raise
            where = exc.filename if isinstance(exc.filename, str) else folder
            raise SymlinkLoopError(
                f"disk: symbolic link loop at {where!r} while listing {root!r}; remove or correct "
                "the link (or list without recursive=True)"
            ) from exc


#: The application-facing name of seed 004 (``openhcs.io.disk.DiskStorageBackend``).
DiskStorageBackend = DiskBackend
