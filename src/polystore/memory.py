"""The memory backend: objects in a dict, with directory semantics like disk.

``save`` stores the object itself and ``load`` returns that same object: no
copy is made either way, so mutating a loaded array mutates the stored one.
Pass ``shared_dict=multiprocessing.Manager().dict()`` to share the store
between processes (then every access is a round trip to the manager process,
and objects are copied by it).

Layout of the dict: a file is ``"<path>" -> object``; a directory is
``"<path>/" -> True`` (the trailing slash cannot occur in a normalised file key).
Relative paths live under the implicit root ``"."``, absolute ones under ``"/"``.
A symlink is ``"<path>" -> MemorySymlink(target)``; ``load``, ``exists``,
``is_file``, ``is_dir`` and listings follow it (also through linked folders).
"""

from __future__ import annotations

import copy as _copy
import os
import posixpath
from collections.abc import Iterable, MutableMapping
from dataclasses import dataclass
from typing import Any

from polystore.annotations import as_annotation
from polystore._listing import matches, normalize_extensions
from polystore.base import PathLike, StorageBackend
from polystore.config import VFSConfig
from polystore.exceptions import (
    DirectoryNotEmptyError,
    PathExistsError,
    PathIsADirectoryError,
    PathNotADirectoryError,
    PathNotFoundError,
    StorageError,
)
from polystore.frameworks import from_numpy
from polystore.shared_store import DEFAULT_MANAGER_TIMEOUT, ManagedStore, is_manager_proxy

__all__ = ["MemoryBackend", "MemoryStorageBackend", "MemorySymlink", "normalize_memory_path"]

_ROOTS = ("/", ".")
#: Symlinks followed before a path is declared a loop (as Linux's ELOOP limit).
_MAX_LINK_HOPS = 40


@dataclass(frozen=True)
class MemorySymlink:
    """The value stored for a memory symlink: the normalised path it points to."""

    target: str
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
    manager_timeout:
        With a ``multiprocessing`` manager's dict as ``shared_dict``: seconds
        one access may wait for the manager process before
        :class:`StorageError` (None: forever). A dead manager raises
        :class:`StorageError` naming it at once.
    """

    _backend_type = "memory"
    supports_symlinks = True

    def __init__(
        self,
        shared_dict: MutableMapping[str, Any] | None = None,
        vfs_config: VFSConfig | None = None,
        manager_timeout: float | None = DEFAULT_MANAGER_TIMEOUT,
    ) -> None:
        if is_manager_proxy(shared_dict):
            shared_dict = ManagedStore(shared_dict, manager_timeout)
        self._store: MutableMapping[str, Any] = {} if shared_dict is None else shared_dict
        self.vfs_config = vfs_config
        if vfs_config is not None and vfs_config.memory_limit_gb is not None:
            # spill-over to zarr: the store becomes a SpillStore mapping around the dict
            from polystore.spill import attach_spill

            attach_spill(self, vfs_config)

    def _peek(self, key: str) -> Any:
        """The stored value at ``key`` (None if missing) without reading a spilled array back."""
        store = self._store
        peek = getattr(store, "peek", None)
        return peek(key) if peek is not None else store.get(key)

    @property
    def _memory_store(self) -> MutableMapping[str, Any]:
        """The store under the existing package's attribute name."""
        return self._store

    # -- data -------------------------------------------------------------
    def save(self, data: Any, file_path: PathLike, **kwargs: Any) -> None:
        """Store ``data`` (the object itself) at ``file_path``, creating parent directories.

        ``kind="labels"``/``"points"``/``"shapes"`` stores ``data`` as that
        annotation object (validated; ``axes=`` names its axes).
        """
        if kwargs and kwargs.get("kind", "image") != "image":
            data = as_annotation(data, kwargs["kind"], kwargs.get("axes"))
        try:
            key, parent, parent_dir, key_dir = _path_cache[file_path]
        except KeyError:  # a path not seen yet: normalise it
            key, parent, parent_dir, key_dir = _key_and_parent(file_path)
        store = self._store
        if parent_dir not in store:
            self._make_parents(key, parent)
        elif key_dir in store:
            raise _is_a_directory("save to", key)
        store[key] = data

    def _make_parents(self, key: str, parent: str) -> None:
        store = self._store
        if key + "/" in store:
            raise _is_a_directory("save to", key)
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
        try:
            data = self._store[_path_cache[file_path][0]]
        except KeyError:  # a path not seen yet, or nothing stored at it
            key = _key_and_parent(file_path)[0]
            try:
                data = self._store[key]
            except KeyError:
                data = self._load_missing(key)
        if type(data) is MemorySymlink:
            data = self._load_missing(_key_and_parent(file_path)[0])
        return from_numpy(data, framework) if framework else data

    def _load_missing(self, key: str) -> Any:
        """Load a key that is not a plain file: follow symlinks, or name why it cannot load."""
        target = self._resolve(key)
        value = self._store.get(target)
        if value is not None and type(value) is not MemorySymlink:
            return value
        if self._is_dir_key(target):
            raise _is_a_directory("load", key)
        raise PathNotFoundError(key, "memory")

    def _resolve(self, key: str) -> str:
        """The key ``key`` stands for once symlinks (of it or of a parent folder) are followed."""
        store = self._store
        for _ in range(_MAX_LINK_HOPS):
            value = self._peek(key)
            if type(value) is MemorySymlink:
                key = value.target
                continue
            if value is not None or key in _ROOTS or key + "/" in store:
                return key
            folder = posixpath.dirname(key)
            while folder not in ("", "/", ".") and folder + "/" not in store:
                link = self._peek(folder)
                if type(link) is MemorySymlink:
                    key = link.target + key[len(folder):]
                    break
                folder = posixpath.dirname(folder)
            else:
                return key
        raise StorageError(
            f"memory: too many levels of symbolic links resolving {key!r}; "
            "a symlink points (through others) to itself: delete one of them"
        )
    # -- listing ----------------------------------------------------------
    def _children(self, folder: str) -> Iterable[str]:
        """Keys (files ``a/b``, directories ``a/b/``) directly or indirectly under ``folder``."""
        if folder == ".":
            return [k for k in self._store.keys() if not k.startswith("/")]
        prefix = folder if folder == "/" else folder + "/"
        return [k for k in self._store.keys() if k.startswith(prefix) and k != prefix]

    def _require_dir(self, folder: str) -> str:
        """The key of the directory ``folder`` names (after symlinks), or the error for listing it."""
        target = self._resolve(folder)
        if self._is_dir_key(target):
            return target
        if target in self._store:
            raise PathNotADirectoryError(
                f"memory: cannot list {folder!r}: it is a file, not a directory", folder, "memory"
            )
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
        given = normalize_memory_path(directory)
        folder = self._require_dir(given)
        exts = normalize_extensions(extensions)
        depth = _depth(folder)
        store = self._store
        found = []
        for key in self._children(folder):
            if key.endswith("/"):
                continue
            if not recursive and _depth(key) != depth + 1:
                continue
            if matches(posixpath.basename(key), pattern, exts):
                if type(self._peek(key)) is MemorySymlink and not self.is_file(key):
                    continue  # a link to a folder (or a broken one) is not a file
                found.append(key)
        if folder != given:  # listed through a symlinked folder: show paths under the link
            found = [given + key[len(folder):] for key in found]
        return sorted(found)

    def list_dir(self, path: PathLike) -> list[str]:
        """Sorted names of the files and directories directly inside ``path``."""
        folder = self._require_dir(normalize_memory_path(path))
        depth = _depth(folder)
        names = {
            posixpath.basename(key.rstrip("/"))
            for key in self._children(folder)
            if _depth(key.rstrip("/")) == depth + 1
        }
        return sorted(names)

    def exists(self, path: PathLike) -> bool:
        """True if a file or directory is at ``path``."""
        key = self._resolve(_key_and_parent(path)[0])
        return key in self._store or self._is_dir_key(key)

    def is_file(self, path: PathLike) -> bool:
        """True if an object is stored at ``path`` (or at the file a symlink there points to)."""
        key = _key_and_parent(path)[0]
        value = self._peek(key)
        if value is None or type(value) is MemorySymlink:
            key = self._resolve(key)
            value = self._peek(key)
        return value is not None and type(value) is not MemorySymlink

    def is_dir(self, path: PathLike) -> bool:
        """True if ``path`` is a directory (or a symlink to one)."""
        key = _key_and_parent(path)[0]
        return self._is_dir_key(key) or self._is_dir_key(self._resolve(key))

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
            raise DirectoryNotEmptyError(
                f"memory: directory {key!r} is not empty; pass recursive=True "
                "(or call delete_all) to delete it",
                key,
                "memory",
            )
        for child in children:
            store.pop(child, None)
        store.pop(key + "/", None)

    def copy(self, source: PathLike, destination: PathLike) -> None:
        """Copy a file or a directory tree; the copy is a deep copy (no shared arrays).

        Never overwrites: an existing ``destination`` raises :class:`PathExistsError`.
        """
        self._transfer(source, destination, remove=False)

    def move(self, source: PathLike, destination: PathLike) -> None:
        """Move a file, symlink or directory tree; never onto an existing ``destination``."""
        self._transfer(source, destination, remove=True)

    def _transfer(self, source: PathLike, destination: PathLike, remove: bool) -> None:
        # through self.load/save/delete, so a spill-over wrapping them keeps its accounting
        src = normalize_memory_path(source)
        dst = normalize_memory_path(destination)
        store = self._store
        if src not in store and not self._is_dir_key(src):
            raise PathNotFoundError(src, "memory")
        if dst in store or self._is_dir_key(dst):
            raise PathExistsError(
                f"memory: destination {dst!r} already exists; delete it first to replace it "
                "(copy and move never overwrite)",
                dst,
                "memory",
            )
        if src in store:
            self._transfer_file(src, dst, remove)
            return
        self.ensure_directory(dst)
        prefix_len = len(src) + 1 if src not in _ROOTS else (1 if src == "/" else 0)
        for child in list(self._children(src)):
            target = posixpath.join(dst, child[prefix_len:])
            if child.endswith("/"):
                self.ensure_directory(target)
            else:
                self._transfer_file(child, target, remove)
        if remove and src not in _ROOTS:
            self.delete(src, recursive=True)

    def _transfer_file(self, src: str, dst: str, remove: bool) -> None:
        value = self._peek(src)
        if type(value) is MemorySymlink:
            self._make_parents(dst, posixpath.dirname(dst) or ".")
            self._store[dst] = value
        elif remove:
            self.save(self.load(src), dst)
        else:
            self.save(_copy.deepcopy(self.load(src)), dst)
        if remove:
            self.delete(src)

    # -- symlinks ---------------------------------------------------------
    def create_symlink(self, source: PathLike, link_name: PathLike, overwrite: bool = False) -> None:
        """Make ``link_name`` a symlink to ``source`` (which must exist), creating parents.

        An existing ``link_name`` raises :class:`PathExistsError` unless
        ``overwrite=True`` (a directory is never replaced).
        """
        src = normalize_memory_path(source)
        link = normalize_memory_path(link_name)
        if not self.exists(src):
            raise PathNotFoundError(src, "memory")
        if self._is_dir_key(link):
            if overwrite:
                raise _is_a_directory("replace with a symlink", link)
            raise PathExistsError(f"memory: {link!r} already exists", link, "memory")
        if link in self._store and not overwrite:
            raise PathExistsError(
                f"memory: {link!r} already exists; pass overwrite=True to replace it",
                link,
                "memory",
            )
        self._make_parents(link, posixpath.dirname(link) or ".")
        self._store[link] = MemorySymlink(src)

    def is_symlink(self, path: PathLike) -> bool:
        """True if ``path`` is a symlink (even one whose target is gone)."""
        return type(self._peek(normalize_memory_path(path))) is MemorySymlink

    def _link_target(self, path: PathLike) -> str:
        value = self._peek(normalize_memory_path(path))
        if type(value) is not MemorySymlink:
            raise PathNotFoundError(normalize_memory_path(path), "memory")
        return value.target

    def clear(self) -> None:
        """Remove everything."""
        self._store.clear()

    def clear_files_only(self) -> None:
        """Remove every file and symlink, keeping the directory structure."""
        store = self._store
        for key in [k for k in store.keys() if not k.endswith("/")]:
            store.pop(key, None)


def _is_a_directory(action: str, key: str) -> PathIsADirectoryError:
    return PathIsADirectoryError(
        f"memory: cannot {action} {key!r}: it is a directory", key, "memory"
    )


def _depth(key: str) -> int:
    if key in _ROOTS:
        return 0
    return key.count("/") + (0 if key.startswith("/") else 1)


#: The application-facing name of seed 004 (``openhcs.io.memory.MemoryStorageBackend``).
MemoryStorageBackend = MemoryBackend
