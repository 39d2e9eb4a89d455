"""The memory backend: objects in a dict, with directory semantics like disk.

``save`` stores the object itself and ``load`` returns that same object: no
copy is made either way, so mutating a loaded array mutates the stored one.
Pass ``shared_dict=multiprocessing.Manager().dict()`` to share the store
between processes (then every access is a round trip to the manager process,
and objects are copied by it).

Layout of the dict: a file is ``"<path>" -> object``; a directory is
``"<path>/" -> True`` (the trailing slash cannot occur in a normalised file key).
Relative paths live under the implicit root ``"."``, absolute ones under ``"/"``.
"""

from __future__ import annotations

import os
import posixpath
from collections.abc import Iterable, MutableMapping
from typing import Any

from polystore._listing import matches, normalize_extensions
from polystore.base import PathLike, StorageBackend
from polystore.config import VFSConfig
from polystore.exceptions import PathNotFoundError, StorageError
from polystore.frameworks import from_numpy

__all__ = ["MemoryBackend", "MemoryStorageBackend", "normalize_memory_path"]

_ROOTS = ("/", ".")
_MAX_CACHED_PATHS = 1 << 16
# path as given -> (key, parent, parent + "/", key + "/"): normalisation and string
# building stay off the hot path
_path_cache: dict[Any, tuple[str, str, str, str]] = {}


def normalize_memory_path(path: PathLike) -> str:
    """``"a//b/../c/"`` -> ``"a/c"``; backslashes become slashes; roots are ``"/"`` and ``"."``."""
    text = path if isinstance(path, str) else os.fspath(path)
    text = posixpath.normpath(text.replace("\\", "/"))
    if text.startswith("//"):
        text = "/" + text.lstrip("/")
    return text


def _key_and_parent(path: PathLike) -> tuple[str, str, str, str]:
    cached = _path_cache.get(path)
    if cached is None:
        key = normalize_memory_path(path)
        parent = posixpath.dirname(key) or "."
        cached = (key, parent, parent + "/", key + "/")
        if len(_path_cache) < _MAX_CACHED_PATHS:
            _path_cache[path] = cached
    return cached


class MemoryBackend(StorageBackend):
    """Objects kept in RAM under file-like paths (O(1), zero-copy save and load).

    Parameters
    ----------
    shared_dict:
        A mapping to use as the store, e.g. ``Manager().dict()`` to share it
        between processes. Default: a private dict.
    vfs_config:
        With ``memory_limit_gb`` set, arrays beyond the limit spill to zarr
        (see ``docs/zarr-layout.md``); needs the ``zarr`` extra.
    """

    _backend_type = "memory"

    def __init__(
        self,
        shared_dict: MutableMapping[str, Any] | None = None,
        vfs_config: VFSConfig | None = None,
    ) -> None:
        self._store: MutableMapping[str, Any] = {} if shared_dict is None else shared_dict
        self.vfs_config = vfs_config
        if vfs_config is not None and vfs_config.memory_limit_gb is not None:
            # spill-over to zarr wraps this instance's methods; the class's stay as they are
            from polystore.spill import attach_spill

            attach_spill(self, vfs_config)

    # -- data -------------------------------------------------------------
    def save(self, data: Any, file_path: PathLike, **kwargs: Any) -> None:
        """Store ``data`` (the object itself) at ``file_path``, creating parent directories."""
        key, parent, parent_dir, key_dir = _path_cache.get(file_path) or _key_and_parent(file_path)
        store = self._store
        if parent_dir not in store:
            self._make_parents(key, parent)
        elif key_dir in store:
            raise StorageError(f"memory: cannot save to {key!r}: it is a directory")
        store[key] = data

    def _make_parents(self, key: str, parent: str) -> None:
        store = self._store
        if key + "/" in store:
            raise StorageError(f"memory: cannot save to {key!r}: it is a directory")
        folder = parent
        while folder not in _ROOTS:
            if folder in store:
                raise StorageError(
                    f"memory: cannot save to {key!r}: parent {folder!r} is a file"
                )
            store[folder + "/"] = True
            folder = posixpath.dirname(folder) or "."

    def load(self, file_path: PathLike, framework: str | None = None, **kwargs: Any) -> Any:
        """Return the stored object itself (not a copy); ``framework=`` converts arrays."""
        key = (_path_cache.get(file_path) or _key_and_parent(file_path))[0]
        try:
            data = self._store[key]
        except KeyError:
            raise PathNotFoundError(key, "memory") from None
        return from_numpy(data, framework) if framework else data

    # -- listing ----------------------------------------------------------
    def _children(self, folder: str) -> Iterable[str]:
        """Keys (files ``a/b``, directories ``a/b/``) directly or indirectly under ``folder``."""
        if folder == ".":
            return [k for k in self._store.keys() if not k.startswith("/")]
        prefix = folder if folder == "/" else folder + "/"
        return [k for k in self._store.keys() if k.startswith(prefix) and k != prefix]

    def _require_dir(self, folder: str) -> None:
        if not self._is_dir_key(folder):
            raise PathNotFoundError(folder, "memory")

    def _is_dir_key(self, key: str) -> bool:
        return key in _ROOTS or key + "/" in self._store

    def list_files(
        self,
        directory: PathLike,
        pattern: str | None = None,
        extensions: Iterable[str] | None = None,
        recursive: bool = False,
    ) -> list[str]:
        """Sorted file paths under ``directory`` filtered by glob ``pattern`` and ``extensions``."""
        folder = normalize_memory_path(directory)
        self._require_dir(folder)
        exts = normalize_extensions(extensions)
        depth = _depth(folder)
        found = []
        for key in self._children(folder):
            if key.endswith("/"):
                continue
            if not recursive and _depth(key) != depth + 1:
                continue
            if matches(posixpath.basename(key), pattern, exts):
                found.append(key)
        return sorted(found)

    def list_dir(self, path: PathLike) -> list[str]:
        """Sorted names of the files and directories directly inside ``path``."""
        folder = normalize_memory_path(path)
        self._require_dir(folder)
        depth = _depth(folder)
        names = {
            posixpath.basename(key.rstrip("/"))
            for key in self._children(folder)
            if _depth(key.rstrip("/")) == depth + 1
        }
        return sorted(names)

    def exists(self, path: PathLike) -> bool:
        """True if a file or directory is at ``path``."""
        key = _key_and_parent(path)[0]
        return key in self._store or self._is_dir_key(key)

    def is_file(self, path: PathLike) -> bool:
        """True if an object is stored at ``path``."""
        return _key_and_parent(path)[0] in self._store

    def is_dir(self, path: PathLike) -> bool:
        """True if ``path`` is a directory."""
        return self._is_dir_key(_key_and_parent(path)[0])

    # -- directories ------------------------------------------------------
    def ensure_directory(self, directory: PathLike) -> str:
        """Create ``directory`` and its parents; return its normalised path."""
        key = normalize_memory_path(directory)
        if key in _ROOTS:
            return key
        if key in self._store:
            raise StorageError(f"memory: {key!r} exists and is not a directory")
        self._make_parents(key + "/x", key)
        return key

    def delete(self, path: PathLike, recursive: bool = False) -> None:
        """Remove a file, or a directory (``recursive=True`` if it has entries)."""
        key = normalize_memory_path(path)
        store = self._store
        if key in store:
            del store[key]
            return
        if not self._is_dir_key(key):
            raise PathNotFoundError(key, "memory")
        children = list(self._children(key))
        if children and not recursive:
            raise StorageError(
                f"memory: directory {key!r} is not empty; pass recursive=True to delete it"
            )
        for child in children:
            store.pop(child, None)
        store.pop(key + "/", None)

    def copy(self, source: PathLike, destination: PathLike) -> None:
        """Copy a file (the same object, not a deep copy) or a directory tree."""
        self._transfer(source, destination, remove=False)

    def move(self, source: PathLike, destination: PathLike) -> None:
        """Move a file or a directory tree."""
        self._transfer(source, destination, remove=True)

    def _transfer(self, source: PathLike, destination: PathLike, remove: bool) -> None:
        src = normalize_memory_path(source)
        dst = normalize_memory_path(destination)
        store = self._store
        if src in store:
            self.save(store[src], dst)
            if remove:
                del store[src]
            return
        if not self._is_dir_key(src):
            raise PathNotFoundError(src, "memory")
        self.ensure_directory(dst)
        prefix_len = len(src) + 1 if src not in _ROOTS else (1 if src == "/" else 0)
        for child in list(self._children(src)):
            target = posixpath.join(dst, child[prefix_len:])
            if child.endswith("/"):
                self.ensure_directory(target)
            else:
                self.save(store[child], target)
            if remove:
                store.pop(child, None)
        if remove and src not in _ROOTS:
            store.pop(src + "/", None)

    def clear(self) -> None:
        """Remove everything."""
        self._store.clear()


def _depth(key: str) -> int:
    if key in _ROOTS:
        return 0
    return key.count("/") + (0 if key.startswith("/") else 1)


#: The application-facing name of seed 004 (``openhcs.io.memory.MemoryStorageBackend``).
MemoryStorageBackend = MemoryBackend
