"""The filesystem layer: worker pools, local files and fsspec object storage."""

from __future__ import annotations

import mmap
import os
import shutil
import threading
import uuid
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import zarr

import polystore.zarr as _package  # the tunables live on the package, so they can be patched there


_TMP_MARK = ".polystore-tmp-"
_OLD_MARK = ".polystore-old-"


_POOLS: dict[str, ThreadPoolExecutor] = {}
_SCRATCH = threading.local()
_MMAP_FLAGS = mmap.MAP_SHARED | getattr(mmap, "MAP_POPULATE", 0)
#: Largest chunk whose decode buffer a worker thread keeps for reuse.
_SCRATCH_MAX = 64 * 1024 * 1024
_POOL_LOCK = threading.Lock()


def _forget_pools_after_fork() -> None:
    """A forked child inherits the pools but not their threads: start fresh ones there."""
    global _POOL_LOCK
    _POOLS.clear()
    _POOL_LOCK = threading.Lock()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_pools_after_fork)


def _pool(kind: str = "write") -> ThreadPoolExecutor:
    """Worker threads that encode/decode chunks and do their I/O (both release the GIL).

    Writes use one thread per core (more only adds contention on the page
    cache); reads use two per core, which measured faster on a busy machine
    (see docs/performance.md). ``POLYSTORE_ZARR_THREADS`` overrides both.
    """
    pool = _POOLS.get(kind)
    if pool is None:
        with _POOL_LOCK:
            pool = _POOLS.get(kind)
            if pool is None:
                cpus = os.cpu_count() or 2
                env = os.environ.get("POLYSTORE_ZARR_THREADS", "")
                if env.isdigit() and int(env) > 0:
                    workers = int(env)
                elif kind == "read":
                    workers = max(2, min(8, 2 * cpus))
                else:
                    workers = max(2, min(8, cpus))
                pool = ThreadPoolExecutor(workers, thread_name_prefix=f"polystore-zarr-{kind}")
                _POOLS[kind] = pool
    return pool


class _FS:
    """Minimal filesystem operations the backend needs, on absolute paths."""

    sep = "/"

    def url(self, path: str) -> str:
        """The user-facing form of ``path`` (for messages)."""
        return path

    def read(self, path: str) -> bytes | None:
        raise NotImplementedError

    def read_many(self, paths: Sequence[str]) -> list[bytes | None]:
        raise NotImplementedError

    def write(self, path: str, data: bytes) -> None:
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

    def join(self, *parts: str) -> str:
        out = parts[0]
        for p in parts[1:]:
            if p:
                out = out.rstrip("/") + "/" + p.strip("/") if out else p.strip("/")
        return out


class _LocalFS(_FS):
    def read(self, path: str) -> bytes | None:
        try:
            with open(path, "rb") as f:
                return f.read()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
            return None

    def read_many(self, paths: Sequence[str]) -> list[bytes | None]:
        return [self.read(p) for p in paths]

    def write(self, path: str, data: bytes) -> None:
        try:
            f = open(path, "wb")
        except FileNotFoundError:
            os.makedirs(os.path.dirname(path), exist_ok=True)
            f = open(path, "wb")
        with f:
            f.write(data)

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


class _FsspecFS(_FS):
    """An fsspec filesystem (s3fs for ``s3://``); paths are without the protocol."""

    def __init__(self, protocol: str, storage_options: Mapping[str, Any]) -> None:
        import fsspec

        self.protocol = protocol
        self.storage_options = dict(storage_options)
        self.fs = fsspec.filesystem(protocol, **self.storage_options)

    def url(self, path: str) -> str:
        return f"{self.protocol}://{path}"

    def read(self, path: str) -> bytes | None:
        return self.read_many([path])[0]

    def read_many(self, paths: Sequence[str]) -> list[bytes | None]:
        if not paths:
            return []
        got = self.fs.cat(list(paths), on_error="return")
        if not isinstance(got, dict):  # a single path returns bytes
            got = {paths[0]: got}
        out: list[bytes | None] = []
        for p in paths:
            value = got.get(p)
            if isinstance(value, (bytes, bytearray, memoryview)):
                out.append(bytes(value))
            elif value is None or isinstance(value, FileNotFoundError):
                out.append(None)
            else:
                raise value if isinstance(value, BaseException) else OSError(f"cannot read {p}")
        return out

    def write(self, path: str, data: bytes) -> None:
        self.fs.pipe_file(path, data)

    def write_atomic(self, path: str, data: bytes) -> None:
        self.fs.pipe_file(path, data)  # a single PUT is atomic on object stores

    def write_many(self, items: Iterable[tuple[str, bytes]]) -> None:
        batch: dict[str, bytes] = {}
        size = 0
        for path, data in items:
            batch[path] = data
            size += len(data)
            if size >= _package._PUT_BATCH_BYTES:
                self.fs.pipe(batch)
                batch, size = {}, 0
        if batch:
            self.fs.pipe(batch)

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
        self.fs.invalidate_cache(path)
        try:
            self.fs.rm(path, recursive=True)
        except FileNotFoundError:
            pass
        self.fs.invalidate_cache(path)

    def copytree(self, src: str, dst: str) -> None:
        self.fs.copy(src.rstrip("/") + "/", dst.rstrip("/") + "/", recursive=True)

    def zarr_store(self, path: str) -> Any:
        return zarr.storage.FsspecStore.from_url(
            self.url(path), storage_options=self.storage_options, read_only=False
        )
