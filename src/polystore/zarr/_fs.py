"""The filesystem layer: local files and fsspec object storage."""

from __future__ import annotations

import contextlib
import mmap
import os
import posixpath
import shutil
import threading
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import zarr

from polystore.config import ZarrConfig
from polystore.atomic import exchange
from polystore.zarr import _ts_delegate

#: The metadata documents that make a folder a zarr node (``_meta`` writes them).
_NODE_DOCS = frozenset({"zarr.json", ".zarray", ".zgroup", ".zattrs"})
_TMP_MARK = ".polystore-tmp-"
_OLD_MARK = ".polystore-old-"

_SCRATCH = threading.local()
_WRITE_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
_MMAP_FLAGS = mmap.MAP_SHARED | getattr(mmap, "MAP_POPULATE", 0)

def _contained(base: str, rel: str) -> str | None:
    """``base/rel`` normalized, or None when ``rel`` climbs out of ``base`` (or is absolute)."""
    rel = rel.replace("\\", "/")
    if rel.startswith("/"):
        return None
    norm = posixpath.normpath(rel)
    if norm == ".":
        return base
    if norm == ".." or norm.startswith("../"):
        return None
    return base.rstrip("/") + "/" + norm if base else norm


def put_in_place(new: str, target: str) -> str | None:
    """Put the finished local entry ``new`` (file or folder) at ``target``; return where the old one went.

    Where the kernel can, ``new`` and ``target`` are exchanged in one step
    (readers see the old or the new entry, never neither) and the old entry
    is then at ``new``. Elsewhere the old entry is renamed to a hidden
    sibling first. The caller deletes the returned path (None: nothing was
    replaced).
    """
    if exchange(new, target):
        return new
    if not os.path.lexists(target):
        os.rename(new, target)
        return None
    parent, name = os.path.split(target)
    old = os.path.join(parent, f".{name}{_OLD_MARK}{uuid.uuid4().hex[:8]}")
    os.rename(target, old)
    os.rename(new, target)
    return old


class _FS:
    """The store-access seam: every file operation the backend does, local or fsspec.

    It owns what differs between local disks and object stores: containment
    (:meth:`inside`), directories (:meth:`makedirs`, no-op on object stores)
    and atomic publishing (:meth:`publish`: build aside and rename on disk;
    delete-then-write on object stores, which cannot rename a tree).
    """

    sep = "/"
    # Capabilities (zarr-python 3 store style): callers ask these instead of testing the type.
    #: Trees and files are renamed (or exchanged) in one step: a save builds aside and swaps
    #: it in, a replaced batch image is staged and swapped in, ``move`` renames.
    supports_rename: bool = False
    #: An inter-process lock file can be held beside a path (writers of one batch take it).
    supports_locks: bool = False
    #: A folder's identity (device, inode, change time) shows whether it was swapped, so a
    #: load can pin the folders it reads (:mod:`polystore.zarr._pins`).
    supports_pins: bool = False
    #: Keys are operating-system files: ``open``, ``mmap``, ``os.stat`` and ``os.walk`` work
    #: on them (chunks read in place, written by worker threads, checked by file size).
    supports_native_files: bool = False
    #: Many keys are cheapest fetched in one batched request (object stores): readers
    #: fetch windows of chunks with :meth:`read_many` instead of one key at a time.
    prefers_batches: bool = False
    #: Bytes of chunks sent or fetched per batch of requests (``ZarrConfig.request_batch_bytes``).
    request_batch_bytes: int = ZarrConfig.request_batch_bytes

    def inside(self, base: str, rel: str) -> str:
        """``base/rel``, refusing a ``rel`` that resolves outside ``base``."""
        from polystore.exceptions import StorageResolutionError

        got = _contained(base, rel)
        if got is None:
            raise StorageResolutionError(
                f"zarr: {rel!r} resolves outside {self.url(base)!r}; refusing to read or write there"
            )
        return got

    def isfile(self, path: str) -> bool:
        """True for a plain file (not a directory)."""
        raise NotImplementedError

    def makedirs(self, path: str) -> None:
        """Make sure ``path`` can hold entries (object stores need nothing)."""

    def any_file(self, paths: Sequence[str]) -> bool:
        """True when one of ``paths`` is a file (one batched request on object stores)."""
        return any(r is not None for r in self.read_many(paths))

    def rename(self, src: str, dst: str) -> None:
        """Rename a tree (only where :attr:`supports_rename`)."""
        raise NotImplementedError(f"{type(self).__name__} cannot rename")

    def cleanup(self, path: str) -> list[str]:
        """Remove the hidden leftovers of killed writers under ``path``; return them.

        Local saves build aside; on object stores only cluster saves leave
        something behind (``_distributed.publish_on_cluster``).
        """
        return []

    def publish(
        self,
        target: str,
        build: Callable[[str], None],
        guard: contextlib.AbstractContextManager[Any] = contextlib.nullcontext(),
    ) -> None:
        """Write a whole tree at ``target`` with ``build(dest)`` as atomically as the store can.

        Object stores: the old tree is deleted first, then ``build(target)``
        (metadata last, so a killed writer leaves no metadata). Local disks
        override this with build-aside-then-swap; ``guard`` (a lock) is held
        around the swap only.
        """
        self.rmtree(target)  # nothing there: one listing finds nothing
        build(target)

    def url(self, path: str) -> str:
        """The user-facing form of ``path`` (for messages)."""
        return path

    def read(self, path: str) -> bytes | None:
        raise NotImplementedError
    def read_many(self, paths: Sequence[str]) -> list[bytes | None]:
        raise NotImplementedError
    def write(self, path: str, data: bytes | memoryview) -> None:
        raise NotImplementedError

    def write_atomic(self, path: str, data: bytes) -> None:
        """Write ``path`` so that readers see the old content or the new, never a part."""
        raise NotImplementedError
    def write_many(self, items: Iterable[tuple[str, bytes]]) -> None:
        raise NotImplementedError

    def listdir(self, path: str) -> list[str] | None:
        """Child names of ``path`` or None when it is not a directory."""
        raise NotImplementedError
    def isdir(self, path: str) -> bool:
        raise NotImplementedError
    def rmtree(self, path: str) -> None:
        raise NotImplementedError
    def copytree(self, src: str, dst: str) -> None:
        raise NotImplementedError
    def zarr_store(self, path: str) -> Any:
        raise NotImplementedError

    def spec(self) -> dict[str, Any]:
        """Plain settings a dask worker rebuilds this store from (``_distributed.fs_from_spec``)."""
        raise NotImplementedError

    def join(self, *parts: str) -> str:
        out = parts[0]
        for p in parts[1:]:
            if p:
                out = out.rstrip("/") + "/" + p.strip("/") if out else p.strip("/")
        return out


class _LocalFS(_FS):
    supports_rename = True
    supports_locks = True
    supports_pins = True
    supports_native_files = True

    def isfile(self, path: str) -> bool:
        return os.path.lexists(path) and not os.path.isdir(path)

    def makedirs(self, path: str) -> None:
        os.makedirs(path or ".", exist_ok=True)

    def any_file(self, paths: Sequence[str]) -> bool:
        return any(os.path.isfile(p) for p in paths)

    def rename(self, src: str, dst: str) -> None:
        os.rename(src, dst)

    def cleanup(self, path: str) -> list[str]:
        removed: list[str] = []
        for dirpath, dirnames, filenames in os.walk(path):
            for d in list(dirnames):
                if d.startswith(".") and (_TMP_MARK in d or _OLD_MARK in d):
                    shutil.rmtree(os.path.join(dirpath, d), ignore_errors=True)
                    removed.append(os.path.join(dirpath, d))
                    dirnames.remove(d)
            for f in filenames:  # staged 0-d batch members, interrupted metadata writes
                if _TMP_MARK in f or f.startswith(".") and _OLD_MARK in f:
                    with contextlib.suppress(OSError):
                        os.remove(os.path.join(dirpath, f))
                        removed.append(os.path.join(dirpath, f))
        return sorted(removed)

    def publish(
        self,
        target: str,
        build: Callable[[str], None],
        guard: contextlib.AbstractContextManager[Any] = contextlib.nullcontext(),
    ) -> None:
        """Build in a hidden sibling, then swap it with ``target`` (old tree kept until then)."""
        parent = os.path.dirname(target)
        tmp = os.path.join(parent, f".{os.path.basename(target)}{_TMP_MARK}{uuid.uuid4().hex[:8]}")
        try:
            build(tmp)
            with guard:
                old = put_in_place(tmp, target)
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
        finally:
            if os.path.lexists(tmp):
                shutil.rmtree(tmp, ignore_errors=True)

    def read(self, path: str) -> bytes | None:
        try:
            with open(path, "rb") as f:
                return f.read()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return None

    def read_many(self, paths: Sequence[str]) -> list[bytes | None]:
        return [self.read(p) for p in paths]

    def write(self, path: str, data: bytes | memoryview) -> None:
        """Write ``data`` to ``path`` (its folder made if missing): open, write, close, no file object."""
        try:
            fd = os.open(path, _WRITE_FLAGS, 0o666)
        except FileNotFoundError:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            fd = os.open(path, _WRITE_FLAGS, 0o666)
        try:
            view = memoryview(data)
            while view.nbytes:
                view = view[os.write(fd, view) :]
        finally:
            os.close(fd)

    def write_atomic(self, path: str, data: bytes) -> None:
        tmp = f"{path}{_TMP_MARK}{uuid.uuid4().hex[:8]}"
        self.write(tmp, data)
        os.replace(tmp, path)

    def write_many(self, items: Iterable[tuple[str, bytes]]) -> None:
        for path, data in items:
            self.write(path, data)

    def listdir(self, path: str) -> list[str] | None:
        try:
            return os.listdir(path)
        except (FileNotFoundError, NotADirectoryError):
            return None

    def isdir(self, path: str) -> bool:
        return os.path.isdir(path)

    def rmtree(self, path: str) -> None:
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path, ignore_errors=False)
        elif os.path.lexists(path):
            os.remove(path)

    def copytree(self, src: str, dst: str) -> None:
        shutil.copytree(src, dst)

    def zarr_store(self, path: str) -> Any:
        return zarr.storage.LocalStore(path, read_only=False)

    def spec(self) -> dict[str, Any]:
        return {"protocol": "file"}


class _FsspecFS(_FS):
    """An fsspec filesystem (s3fs for ``s3://``); paths are without the protocol."""

    prefers_batches = True

    def __init__(
        self,
        protocol: str,
        storage_options: Mapping[str, Any],
        request_batch_bytes: int = ZarrConfig.request_batch_bytes,
        use_tensorstore: bool = ZarrConfig.use_tensorstore,
    ) -> None:
        import fsspec

        from polystore.zarr._puts import KvStorePuts
        from polystore.zarr._s3 import s3_defaults

        self.request_batch_bytes = request_batch_bytes
        self.use_tensorstore = use_tensorstore  # S3 keys fetched by tensorstore's client (``_ts_delegate``)
        #: chunk PUTs through tensorstore (None: s3fs); made per process, never pickled
        self.kv_puts = KvStorePuts(protocol, storage_options) if use_tensorstore else None
        self.protocol = protocol
        self.storage_options = dict(storage_options)
        self.fs = fsspec.filesystem(protocol, **s3_defaults(protocol, self.storage_options))

    def spec(self) -> dict[str, Any]:
        return {"protocol": self.protocol, "storage_options": self.storage_options,
                "request_batch_bytes": self.request_batch_bytes, "use_tensorstore": self.use_tensorstore}

    def __reduce__(self) -> tuple[Any, ...]:  # pickled (e.g. to dask workers) as settings: no connection
        return (type(self), (self.protocol, self.storage_options, self.request_batch_bytes, self.use_tensorstore))

    def url(self, path: str) -> str:
        return f"{self.protocol}://{path}"

    def isfile(self, path: str) -> bool:
        self.fs.invalidate_cache(path)
        return bool(self.fs.isfile(path))

    def read(self, path: str) -> bytes | None:
        return self.read_many([path])[0]

    def read_many(self, paths: Sequence[str]) -> list[bytes | None]:
        if not paths:
            return []
        if self.use_tensorstore and (fetched := _ts_delegate.fetch_many(self, paths)) is not None:
            return fetched  # tensorstore's S3 client fetched them (the options translate)
        # one GET per key, concurrently: ``cat`` would first HEAD every key (fsspec expands the paths), and
        # s3fs (``max_concurrency`` > 1) would HEAD it again for its size, then list it as a folder if missing
        extra = {"max_concurrency": 1} if getattr(self.fs, "max_concurrency", 1) > 1 else {}
        got = self.fs.cat_ranges(list(paths), [None] * len(paths), [None] * len(paths), on_error="return", **extra)
        out: list[bytes | None] = []
        for p, value in zip(paths, got):
            if isinstance(value, (bytes, bytearray, memoryview)):
                out.append(bytes(value))
            elif value is None or isinstance(value, FileNotFoundError):
                out.append(None)
            else:
                raise value if isinstance(value, BaseException) else OSError(f"cannot read {p}")
        return out

    def write(self, path: str, data: bytes | memoryview) -> None:
        self.fs.pipe_file(path, bytes(data))

    def write_atomic(self, path: str, data: bytes) -> None:
        self.fs.pipe_file(path, data)  # a single PUT is atomic on object stores

    def write_many(self, items: Iterable[tuple[str, bytes]]) -> None:
        """PUT every ``(path, data)`` of ``items``; each is sent as soon as ``items`` yields it.

        On an async filesystem (s3fs) every chunk's PUT starts on fsspec's
        event loop right away, so the caller encodes the next chunks (the
        generator ``items``) while earlier ones upload; at most
        ``request_batch_bytes`` of chunks (and at least one) are in flight,
        beyond that the oldest PUT is waited for. Returns only when every
        PUT finished: the first failure (of a PUT or of ``items``) is raised
        after every started PUT has stopped. Other filesystems get batches of
        ``request_batch_bytes`` through ``pipe``. On S3 the PUTs go through
        tensorstore's kvstore where it is installed, the options translate and
        ``use_tensorstore`` is set (``_puts.KvStorePuts``).
        """
        from polystore.zarr._puts import write_items

        write_items(self, items)

    def listdir(self, path: str) -> list[str] | None:
        self.fs.invalidate_cache(path)
        try:
            entries = self.fs.ls(path, detail=False)
        except (FileNotFoundError, NotADirectoryError):
            return None
        prefix = path.rstrip("/") + "/"
        names = []
        for e in entries:
            e = str(e).rstrip("/")
            if e.startswith(prefix):
                names.append(e[len(prefix) :])
        if not names and not self.fs.isdir(path):
            return None
        return names

    def isdir(self, path: str) -> bool:
        self.fs.invalidate_cache(path)
        return bool(self.fs.isdir(path))

    def rmtree(self, path: str) -> None:
        """Delete every object under ``path``: the metadata documents first, then the rest.

        One batch delete is not atomic (and s3fs splits it into requests of
        1000 keys, three at a time), so deleting all at once could leave a
        node's metadata pointing at chunks already gone, which would read as
        fill values. With the metadata gone first, a delete killed or failing
        halfway leaves chunks without metadata: not a node (``cleanup`` by
        saving or deleting again).
        """
        keys = self._keys(path)
        docs = [k for k in keys if k.rpartition("/")[2] in _NODE_DOCS]
        if docs:
            self.fs.rm(docs)
            # s3fs does not raise for keys a batch delete failed on: look again before the chunks go
            keys = self._keys(path)
            left = set(docs) & set(keys)
            if left:
                raise OSError(f"could not delete {sorted(left)[:3]}; nothing else under {self.url(path)!r} deleted")
        from fsspec.asyn import has_magic

        if any(has_magic(k) for k in keys):  # a name fsspec would take for a pattern
            self.fs.rm(path, recursive=True)
        elif keys:  # the keys listed, deleted by name: not listed again (s3fs's recursive rm lists twice, HEADs)
            self.fs.rm(keys)
        self.fs.invalidate_cache(path)

    def _keys(self, path: str) -> list[str]:
        self.fs.invalidate_cache(path)
        try:
            return [str(k) for k in self.fs.find(path)]
        except FileNotFoundError:
            return []

    def copytree(self, src: str, dst: str) -> None:
        self.fs.copy(src.rstrip("/") + "/", dst.rstrip("/") + "/", recursive=True)

    def cleanup(self, path: str) -> list[str]:
        """Delete what killed cluster saves left under ``path``: staging prefixes, unnamed generations."""
        from polystore.zarr._generations import cleanup_under

        return cleanup_under(self, path)

    def zarr_store(self, path: str) -> Any:
        from polystore.zarr._s3 import s3_defaults

        return zarr.storage.FsspecStore.from_url(
            self.url(path), storage_options=s3_defaults(self.protocol, self.storage_options), read_only=False
        )
