"""The disk backend: files on the local filesystem, format chosen by extension.

Every save writes a hidden temporary file in the target's folder and renames
it over the target, so a failed or killed save leaves the previous file intact.
``metadata=`` is embedded in TIFF files and kept in a ``<file>.meta.json``
sidecar for every other format; :meth:`DiskBackend.load_metadata` reads it back.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from polystore._listing import matches, normalize_extensions
from polystore.atomic import is_temp_name, replace_atomically, swap_into_place, temp_name_beside
from polystore.base import PathLike, StorageBackend
from polystore.exceptions import (
    ImageLoadError,
    ImageSaveError,
    PathNotFoundError,
    StorageError,
    UnsupportedFormatError,
)
from polystore.formats import Codec, codec_for
from polystore.frameworks import from_numpy, to_numpy

__all__ = ["DiskBackend", "DiskStorageBackend", "SIDECAR_SUFFIX"]

#: Metadata of ``image.npy`` lives in ``image.npy.meta.json``.
SIDECAR_SUFFIX = ".meta.json"


def _fspath(path: PathLike) -> str:
    return path if isinstance(path, str) else os.fspath(path)


class DiskBackend(StorageBackend):
    """Local files: ``.npy .npz .tif .tiff .pt .pth .csv .json .txt``.

    Parameters
    ----------
    durable:
        Also fsync each file and its folder before the rename (survives power
        loss, costs throughput). Off by default: the rename alone already
        protects against crashes of the writing process.
    """

    _backend_type = "disk"

    def __init__(self, durable: bool = False) -> None:
        self.durable = durable

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
        codec = codec_for(path)
        self._write(codec, to_numpy(data), path, metadata, kwargs)

    def _write(
        self,
        codec: Codec,
        data: Any,
        path: str,
        metadata: dict[str, Any] | None,
        kwargs: dict[str, Any],
        spare: str | None = None,
        keep_old: bool = False,
    ) -> str | None:
        """Write via a temp file and swap it in place of ``path``.

        ``spare`` is a temp file to write into instead of a new one. With
        ``keep_old`` the replaced content is left in the temp file, whose path
        is returned for reuse (None if nothing reusable was replaced).
        """
        tmp = spare if spare is not None else temp_name_beside(path)
        try:
            try:
                codec.write(data, tmp, metadata, **kwargs)
            except FileNotFoundError:
                folder = os.path.dirname(path)
                if not folder or os.path.isdir(folder):
                    raise
                os.makedirs(folder, exist_ok=True)
                codec.write(data, tmp, metadata, **kwargs)
            if self.durable:
                _fsync_file(tmp)
            has_sidecar = bool(metadata) and not codec.embeds_metadata
            if has_sidecar:
                self._write_sidecar(path, metadata)
            if keep_old:
                replaced, kept = swap_into_place(tmp, path, durable=self.durable)
            else:
                kept = None
                replaced = replace_atomically(tmp, path, durable=self.durable)
        except BaseException as exc:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise self._save_error(exc, path, codec) from exc
        if replaced and not has_sidecar:  # drop metadata of the previous content
            with contextlib.suppress(FileNotFoundError):
                os.unlink(path + SIDECAR_SUFFIX)
        return kept

    @staticmethod
    def _save_error(exc: BaseException, path: str, codec: Codec) -> BaseException:
        if isinstance(exc, TypeError):
            return UnsupportedFormatError(f"disk: cannot save to {path!r}: {exc}")
        if isinstance(exc, StorageError) or not isinstance(exc, Exception):
            return exc
        return ImageSaveError(
            f"disk: could not save {path!r} as {codec.name}: {type(exc).__name__}: {exc}"
        )

    def _write_sidecar(self, path: str, metadata: Any) -> None:
        sidecar = path + SIDECAR_SUFFIX
        tmp = temp_name_beside(sidecar)
        with open(tmp, "x", encoding="utf-8") as handle:
            json.dump(metadata, handle)
        os.replace(tmp, sidecar)

    def save_batch(
        self,
        data_list: Sequence[Any],
        identifiers: Sequence[PathLike],
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        """Save each item at the path of the same index, in order, each atomically.

        When items replace existing files, the file a swap displaces becomes
        the temp file of the next item in the same folder (one inode for the
        batch instead of one created and one deleted per file). No thread pool:
        on 2 cores pools made small-file I/O slower.
        """
        if len(data_list) != len(identifiers):
            raise ValueError(f"save_batch: {len(data_list)} data items but {len(identifiers)} paths")
        write = self._write
        codecs: dict[str, Codec] = {}
        spare: str | None = None
        spare_folder = ""
        try:
            for data, file_path in zip(data_list, identifiers):
                path = _fspath(file_path)
                ext = path[path.rfind(".") :]
                codec = codecs.get(ext)
                if codec is None:
                    codec = codecs[ext] = codec_for(path)
                folder = os.path.dirname(path)
                if spare is not None and folder != spare_folder:
                    os.unlink(spare)
                    spare = None
                spare = write(codec, to_numpy(data), path, metadata, kwargs, spare, keep_old=True)
                spare_folder = folder
        finally:
            if spare is not None:
                with contextlib.suppress(OSError):
                    os.unlink(spare)

    def load(self, file_path: PathLike, framework: str | None = None, **kwargs: Any) -> Any:
        """Read the file at ``file_path``; ``framework="torch"`` (etc.) converts arrays.

        Raises :class:`PathNotFoundError` (a ``FileNotFoundError``) for a
        missing file and :class:`ImageLoadError` naming path and format for a
        corrupt or truncated one.
        """
        path = _fspath(file_path)
        codec = codec_for(path)
        data = self._read(codec, path, kwargs)
        return from_numpy(data, framework) if framework else data

    def _read(self, codec: Codec, path: str, kwargs: dict[str, Any]) -> Any:
        try:
            return codec.read(path, **kwargs)
        except FileNotFoundError:
            raise PathNotFoundError(path, "disk") from None
        except IsADirectoryError:
            raise ImageLoadError(f"disk: {path!r} is a directory, not a {codec.name} file") from None
        except StorageError:
            raise
        except Exception as exc:
            raise ImageLoadError(
                f"disk: could not load {path!r} as {codec.name}: {type(exc).__name__}: {exc}"
            ) from exc

    def load_batch(
        self, file_paths: Sequence[PathLike], framework: str | None = None, **kwargs: Any
    ) -> list[Any]:
        """Read every path in order (one codec lookup per extension, no thread pool)."""
        read = self._read
        codecs: dict[str, Codec] = {}
        out: list[Any] = []
        append = out.append
        for file_path in file_paths:
            path = _fspath(file_path)
            ext = path[path.rfind(".") :]
            codec = codecs.get(ext)
            if codec is None:
                codec = codecs[ext] = codec_for(path)
            append(read(codec, path, kwargs))
        if framework:
            return [from_numpy(item, framework) for item in out]
        return out

    def load_metadata(self, file_path: PathLike) -> dict[str, Any] | None:
        """Return the ``metadata=`` stored with a file, or None if it has none."""
        path = _fspath(file_path)
        codec = codec_for(path)
        if not os.path.exists(path):
            raise PathNotFoundError(path, "disk")
        if codec.embeds_metadata:
            try:
                return codec.read_metadata(path)
            except Exception as exc:
                raise ImageLoadError(f"disk: could not read metadata of {path!r}: {exc}") from exc
        try:
            with open(path + SIDECAR_SUFFIX, encoding="utf-8") as handle:
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
            raise PathNotFoundError(root, "disk")
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
        except FileNotFoundError:
            raise PathNotFoundError(root, "disk") from None

    def exists(self, path: PathLike) -> bool:
        """True if a file or folder is at ``path``."""
        return os.path.exists(_fspath(path))

    def is_file(self, path: PathLike) -> bool:
        """True if ``path`` is a regular file."""
        return os.path.isfile(_fspath(path))

    def is_dir(self, path: PathLike) -> bool:
        """True if ``path`` is a folder."""
        return os.path.isdir(_fspath(path))

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
                shutil.rmtree(target)
                return
            try:
                os.rmdir(target)
            except OSError as exc:
                raise StorageError(
                    f"disk: directory {target!r} is not empty; pass recursive=True to delete it"
                ) from exc
            return
        try:
            os.unlink(target)
        except FileNotFoundError:
            raise PathNotFoundError(target, "disk") from None
        with contextlib.suppress(FileNotFoundError):
            os.unlink(target + SIDECAR_SUFFIX)

    def copy(self, source: PathLike, destination: PathLike) -> None:
        """Copy a file (atomically, with its sidecar) or a folder tree."""
        src, dst = _fspath(source), _fspath(destination)
        if os.path.isdir(src):
            shutil.copytree(src, dst, dirs_exist_ok=True)
            return
        if not os.path.exists(src):
            raise PathNotFoundError(src, "disk")
        for suffix in ("", SIDECAR_SUFFIX):
            if suffix and not os.path.exists(src + suffix):
                continue
            folder = os.path.dirname(dst)
            if folder:
                os.makedirs(folder, exist_ok=True)
            tmp = temp_name_beside(dst + suffix)
            try:
                shutil.copy2(src + suffix, tmp)
                os.replace(tmp, dst + suffix)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise

    def move(self, source: PathLike, destination: PathLike) -> None:
        """Move a file (with its sidecar) or a folder."""
        src, dst = _fspath(source), _fspath(destination)
        if not os.path.exists(src):
            raise PathNotFoundError(src, "disk")
        folder = os.path.dirname(dst)
        if folder:
            os.makedirs(folder, exist_ok=True)
        shutil.move(src, dst)
        if os.path.exists(src + SIDECAR_SUFFIX):
            shutil.move(src + SIDECAR_SUFFIX, dst + SIDECAR_SUFFIX)


def _is_hidden_entry(name: str) -> bool:
    """Metadata sidecars and in-flight (or abandoned) temp files are not listed."""
    return name.endswith(SIDECAR_SUFFIX) or is_temp_name(name)


def _walk_files(root: str, recursive: bool) -> Iterator[tuple[str, str]]:
    stack = [root]
    while stack:
        folder = stack.pop()
        with os.scandir(folder) as entries:
            for entry in entries:
                if entry.is_dir():
                    if recursive:
                        stack.append(entry.path)
                elif entry.is_file():
                    yield entry.path, entry.name


def _fsync_file(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


#: The application-facing name of seed 004 (``openhcs.io.disk.DiskStorageBackend``).
DiskStorageBackend = DiskBackend
