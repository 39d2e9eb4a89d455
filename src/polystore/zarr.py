"""The zarr / OME-Zarr backend: chunked, compressed, lazy, local or object storage.

Paths work like a filesystem: ``"plate.zarr/A01/site1"`` is the array (or
OME-Zarr image) ``A01/site1`` inside the store ``plate.zarr``. The layout rules
(store boundary, batches, OME metadata, the ADAPTIVE chunk rule, the
crash/recovery rule, object storage settings) are in ``docs/zarr-layout.md``.

Arrays are written as zarr v3 (OME-NGFF 0.5 when ``axes=`` is given). polystore
encodes and writes the chunks itself (Blosc through numcodecs, two worker
threads, metadata written last) because that is 2-3x faster than
zarr-python's generic pipeline; any store zarr-python can read, polystore can
read, and everything polystore writes is read by zarr-python, ome-zarr-py,
napari-ome-zarr and tensorstore.

Example::

    from polystore import ZarrBackend
    backend = ZarrBackend()
    backend.save(large_data, "data.zarr", chunks=(100, 100, 100))
    loaded = backend.load("data.zarr")
"""

from __future__ import annotations

import fnmatch
import itertools
import json
import math
import mmap
import os
import shutil
import threading
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from polystore.base import PathLike, StorageBackend
from polystore.config import ZarrChunkStrategy, ZarrCompressor, ZarrConfig
from polystore.exceptions import (
    ImageLoadError,
    ImageSaveError,
    MissingDependencyError,
    PathNotFoundError,
    StorageError,
    StorageResolutionError,
    UnsupportedFormatError,
)

try:
    import zarr
    from numcodecs import Blosc
except ImportError as _exc:  # pragma: no cover - exercised only without the extra
    raise MissingDependencyError("zarr", "zarr", "the zarr backend") from _exc

__all__ = [
    "ZarrBackend",
    "ZarrStorageBackend",
    "adaptive_chunks",
    "resolve_chunks",
    "OME_AXES",
]

#: Axis names OME-NGFF knows, in the order it requires them.
OME_AXES = "tczyx"
_AXIS_TYPES = {"t": "time", "c": "channel", "z": "space", "y": "space", "x": "space"}
_DEFAULT_COLORS = ("FF0000", "00FF00", "0000FF", "FF00FF", "00FFFF", "FFFF00", "FFFFFF")
_META = "zarr.json"
_V2_META = (".zarray", ".zgroup")
_TMP_MARK = ".polystore-tmp-"
_OLD_MARK = ".polystore-old-"
#: Bytes of a dask array computed at once when saving it (whole chunks along axis 0).
_SLAB_BYTES = 256 * 1024 * 1024
#: Bytes of encoded chunks handed to an object store in one request batch.
_PUT_BATCH_BYTES = 64 * 1024 * 1024

_BLOSC_NAMES = {
    ZarrCompressor.LZ4: "lz4",
    ZarrCompressor.ZSTD: "zstd",
    ZarrCompressor.BLOSC_LZ4HC: "lz4hc",
    ZarrCompressor.BLOSC_ZLIB: "zlib",
}
_SHUFFLE_IDS = {"noshuffle": 0, "shuffle": 1, "bitshuffle": 2}


# --------------------------------------------------------------------------- chunks


def adaptive_chunks(
    shape: Sequence[int], dtype: np.dtype[Any] | str | type, target_bytes: int = 2 * 1024 * 1024
) -> tuple[int, ...]:
    """The ADAPTIVE chunk shape for an array of ``shape`` and ``dtype``.

    Rule (documented in ``docs/zarr-layout.md``): every leading axis (all but
    the last two) gets chunk size 1, so one plane, one channel or one time
    point is always a whole number of chunks; the last two axes (y, x) start
    whole and the larger of the two is halved until one chunk is at most
    ``target_bytes``. A 1-D array is cut into runs of ``target_bytes``.
    For a 64x2048x2048 uint16 stack and the 2 MiB default this gives
    (1, 1024, 1024).
    """
    itemsize = np.dtype(dtype).itemsize
    shape = tuple(int(s) for s in shape)
    if not shape:
        return ()
    if len(shape) == 1:
        return (max(1, min(shape[0], target_bytes // itemsize)),)
    lead = (1,) * (len(shape) - 2)
    y, x = max(1, shape[-2]), max(1, shape[-1])
    while y * x * itemsize > target_bytes and (y > 1 or x > 1):
        if y >= x:
            y = (y + 1) // 2
        else:
            x = (x + 1) // 2
    return lead + (y, x)


def resolve_chunks(
    shape: Sequence[int],
    dtype: np.dtype[Any],
    chunks: Sequence[int] | int | None,
    config: ZarrConfig,
) -> tuple[int, ...]:
    """Chunk shape for a save: explicit ``chunks`` or the config's strategy, clipped.

    An explicit ``chunks`` shorter than the array applies to the trailing axes
    (leading axes get 1); an int applies to every axis; -1 or None entries mean
    the whole axis. Chunks larger than the array are clipped to its shape.
    """
    shape = tuple(int(s) for s in shape)
    if chunks is None:
        strategy = config.chunk_strategy
        if strategy == ZarrChunkStrategy.SINGLE:
            chunks = shape
        elif strategy == ZarrChunkStrategy.FIXED and config.chunks is not None:
            chunks = config.chunks
        else:
            chunks = adaptive_chunks(shape, dtype, config.target_chunk_bytes)
    if isinstance(chunks, int):
        chunks = (chunks,) * len(shape)
    given = [(-1 if c is None else int(c)) for c in chunks]
    if len(given) > len(shape):
        raise ValueError(f"chunks {tuple(chunks)} has more axes than the array shape {shape}")
    given = [1] * (len(shape) - len(given)) + given
    out = []
    for size, c in zip(shape, given):
        if c == -1 or c > size:
            c = size
        if c < 1:
            if size == 0:
                c = 1
            else:
                raise ValueError(f"chunk sizes must be positive, got {tuple(chunks)}")
        out.append(max(1, c))
    return tuple(out)


# --------------------------------------------------------------------------- codecs


@dataclass(frozen=True)
class _Codec:
    """How chunks are encoded: ``cname`` None means raw little-endian bytes."""

    cname: str | None
    clevel: int = 1
    shuffle: str = "shuffle"

    def metadata(self, itemsize: int) -> list[dict[str, Any]]:
        """The v3 ``codecs`` list for this codec."""
        bytes_codec: dict[str, Any] = {"name": "bytes"}
        if itemsize > 1:
            bytes_codec["configuration"] = {"endian": "little"}
        codecs = [bytes_codec]
        if self.cname is not None:
            codecs.append(
                {
                    "name": "blosc",
                    "configuration": {
                        "typesize": itemsize,
                        "cname": self.cname,
                        "clevel": self.clevel,
                        "shuffle": self.shuffle,
                        "blocksize": 0,
                    },
                }
            )
        return codecs

    def numcodec(self) -> Blosc | None:
        """A numcodecs codec object (None for raw bytes)."""
        if self.cname is None:
            return None
        return Blosc(cname=self.cname, clevel=self.clevel, shuffle=_SHUFFLE_IDS[self.shuffle])


def _codec_for(compressor: ZarrCompressor | str | None, level: int | None, config: ZarrConfig) -> _Codec:
    comp = ZarrCompressor(compressor) if compressor is not None else config.compressor
    lvl = config.compression_level if level is None else int(level)
    if not 0 <= lvl <= 9:
        raise ValueError(f"compression_level must be 0..9, got {lvl}")
    if comp == ZarrCompressor.NONE:
        return _Codec(None)
    return _Codec(_BLOSC_NAMES[comp], lvl, "shuffle")


def _codec_from_metadata(meta: Mapping[str, Any]) -> _Codec | None:
    """The codec of a v3 array we can decode ourselves, or None (use zarr-python)."""
    codecs = meta.get("codecs") or []
    if not codecs or codecs[0].get("name") != "bytes":
        return None
    endian = (codecs[0].get("configuration") or {}).get("endian", "little")
    if endian != "little" and np.dtype(_dtype_from_meta(meta) or "u1").itemsize > 1:
        return None
    if len(codecs) == 1:
        return _Codec(None)
    if len(codecs) == 2 and codecs[1].get("name") == "blosc":
        conf = codecs[1].get("configuration") or {}
        shuffle = conf.get("shuffle", "shuffle")
        if shuffle not in _SHUFFLE_IDS or conf.get("cname") is None:
            return None
        return _Codec(str(conf["cname"]), int(conf.get("clevel", 5)), shuffle)
    return None


def _dtype_from_meta(meta: Mapping[str, Any]) -> np.dtype[Any] | None:
    name = meta.get("data_type")
    if not isinstance(name, str):
        return None
    try:
        return np.dtype(name).newbyteorder("<")
    except TypeError:
        return None


def _check_dtype(dtype: np.dtype[Any], where: str) -> None:
    if dtype.kind not in "biufc" or dtype.kind == "c" and dtype.itemsize > 16:
        raise UnsupportedFormatError(
            f"zarr backend: cannot store dtype {dtype} at {where!r}; supported dtypes are "
            "bool, signed/unsigned integers, floats and complex numbers"
        )


def _fill_value(dtype: np.dtype[Any]) -> Any:
    if dtype.kind == "b":
        return False
    if dtype.kind == "c":
        return [0.0, 0.0]
    if dtype.kind == "f":
        return 0.0
    return 0


def _array_metadata(
    shape: tuple[int, ...],
    dtype: np.dtype[Any],
    chunks: tuple[int, ...],
    codec: _Codec,
    attributes: Mapping[str, Any],
    dimension_names: Sequence[str] | None,
) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "zarr_format": 3,
        "node_type": "array",
        "shape": list(shape),
        "data_type": dtype.name if dtype.kind != "b" else "bool",
        "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": list(chunks)}},
        "chunk_key_encoding": {"name": "default", "configuration": {"separator": "/"}},
        "fill_value": _fill_value(dtype),
        "codecs": codec.metadata(dtype.itemsize),
        "attributes": dict(attributes),
    }
    if dimension_names is not None:
        meta["dimension_names"] = list(dimension_names)
    return meta


def _group_metadata(attributes: Mapping[str, Any] | None = None) -> dict[str, Any]:
    return {"zarr_format": 3, "node_type": "group", "attributes": dict(attributes or {})}


def _dumps(meta: Mapping[str, Any]) -> bytes:
    return json.dumps(meta, indent=2).encode()


def _array_metadata_v2(
    shape: tuple[int, ...], dtype: np.dtype[Any], chunks: tuple[int, ...], codec: _Codec
) -> dict[str, Any]:
    """``.zarray`` of a zarr v2 array (chunk keys ``i/j/k``)."""
    compressor = None
    if codec.cname is not None:
        compressor = {
            "id": "blosc",
            "cname": codec.cname,
            "clevel": codec.clevel,
            "shuffle": _SHUFFLE_IDS[codec.shuffle],
            "blocksize": 0,
        }
    fill = _fill_value(dtype)
    return {
        "zarr_format": 2,
        "shape": list(shape),
        "chunks": list(chunks),
        "dtype": dtype.str,
        "compressor": compressor,
        "fill_value": None if isinstance(fill, list) else fill,
        "order": "C",
        "filters": None,
        "dimension_separator": "/",
    }


def _write_group(fs: _FS, path: str, attrs: Mapping[str, Any], zarr_format: int) -> None:
    """Write a group's metadata: v3 ``zarr.json``, or v2 ``.zattrs`` then ``.zgroup`` (last)."""
    if zarr_format == 2:
        if attrs:
            fs.write_atomic(fs.join(path, ".zattrs"), _dumps(attrs))
        fs.write_atomic(fs.join(path, ".zgroup"), _dumps({"zarr_format": 2}))
    else:
        fs.write_atomic(fs.join(path, _META), _dumps(_group_metadata(attrs)))


# --------------------------------------------------------------------------- filesystems


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
            if size >= _PUT_BATCH_BYTES:
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


# --------------------------------------------------------------------------- nodes


@dataclass
class _Node:
    """What is stored at a path inside a store."""

    kind: str  # "array" | "group" | "member"
    path: str  # absolute fs path of the node (for members: the batch array's path)
    meta: dict[str, Any]
    zarr_format: int = 3
    index: int = -1  # for members: position along axis 0
    member_of: _Node | None = None

    @property
    def attrs(self) -> dict[str, Any]:
        a = self.meta.get("attributes")
        return a if isinstance(a, dict) else {}

    @property
    def ome(self) -> dict[str, Any] | None:
        """OME-NGFF attributes (0.5 under ``ome``, 0.4 at the top level)."""
        attrs = self.attrs
        ome = attrs.get("ome")
        if isinstance(ome, dict) and ome.get("multiscales"):
            return ome
        if attrs.get("multiscales"):
            return attrs
        return None

    @property
    def names(self) -> list[str | None] | None:
        """Member names of a batch (None entries were deleted)."""
        info = self.attrs.get("polystore")
        if isinstance(info, dict) and isinstance(info.get("names"), list):
            names: list[str | None] = info["names"]
            return names
        return None

    @property
    def is_image(self) -> bool:
        return self.kind == "group" and self.ome is not None

    @property
    def is_file(self) -> bool:
        return self.kind == "member" or (
            (self.kind == "array" or self.is_image) and self.names is None
        )


def _is_hidden(name: str) -> bool:
    return name.startswith(".") or name == _META


@dataclass
class _Loc:
    fs: _FS
    store: str  # fs path of the store root
    key: str  # path inside the store ("" for the root)
    display: str  # the path as the user gave it

    @property
    def full(self) -> str:
        return self.fs.join(self.store, self.key) if self.key else self.store


# --------------------------------------------------------------------------- reading


class _ArrayReader:
    """Reads regions of one v3 array by fetching and decoding only the chunks touched.

    Supports arrays whose codecs are ``bytes`` (+ optional ``blosc``) and the
    default chunk key encoding; others are read through zarr-python.
    """

    def __init__(self, fs: _FS, path: str, meta: dict[str, Any], codec: _Codec, where: str) -> None:
        self.fs = fs
        self.path = path
        self.meta = meta
        self.where = where
        self.shape = tuple(int(s) for s in meta["shape"])
        dtype = _dtype_from_meta(meta)
        assert dtype is not None
        self.dtype = dtype
        self.ndim = len(self.shape)
        self.chunks = tuple(int(c) for c in meta["chunk_grid"]["configuration"]["chunk_shape"])
        enc = meta.get("chunk_key_encoding") or {}
        conf = enc.get("configuration") or {}
        self.sep = conf.get("separator", "/")
        self.v2_keys = enc.get("name") == "v2"
        self.codec = codec
        self.numcodec = codec.numcodec()
        info = (meta.get("attributes") or {}).get("polystore")
        #: polystore writes every chunk, so a missing one means damage, not fill value.
        self.dense = bool(isinstance(info, dict) and info.get("dense"))
        fill = meta.get("fill_value", 0)
        try:
            self.fill = np.array(complex(*fill) if isinstance(fill, list) else fill, dtype=self.dtype)
        except (TypeError, ValueError):
            self.fill = np.zeros((), dtype=self.dtype)
        self.chunk_nbytes = int(np.prod(self.chunks, dtype=np.int64)) * self.dtype.itemsize

    def chunk_key(self, idx: Sequence[int]) -> str:
        if self.v2_keys:
            return self.sep.join(str(i) for i in idx) if idx else "0"
        return "c" + "".join(self.sep + str(i) for i in idx)

    def _decode(self, raw: bytes, key: str, dest: np.ndarray | None) -> np.ndarray:
        try:
            if self.numcodec is None:
                arr = np.frombuffer(raw, dtype=self.dtype)
                if arr.size * self.dtype.itemsize != self.chunk_nbytes:
                    raise ValueError(f"{len(raw)} bytes, expected {self.chunk_nbytes}")
                arr = arr.reshape(self.chunks)
                if dest is not None:
                    dest[...] = arr
                    return dest
                return arr
            # blosc1 header: bytes 4-7 hold the decompressed size (little-endian)
            nbytes = int.from_bytes(raw[4:8], "little") if len(raw) >= 16 else -1
            if nbytes != self.chunk_nbytes:
                raise ValueError(f"it holds {nbytes} bytes, expected {self.chunk_nbytes}")
            if dest is not None:
                self.numcodec.decode(raw, out=dest)
                return dest
            out = self._scratch()
            self.numcodec.decode(raw, out=out)
            return out
        except Exception as exc:
            raise ImageLoadError(
                f"zarr: corrupted chunk {key!r} of array {self.where}: {exc}"
            ) from exc

    def read(self, starts: Sequence[int], stops: Sequence[int], out: np.ndarray | None = None) -> np.ndarray:
        """Return ``array[starts:stops]`` (per axis), reading only overlapping chunks."""
        shape_out = tuple(b - a for a, b in zip(starts, stops))
        if out is None:
            out = np.empty(shape_out, dtype=self.dtype)
        if out.size == 0:
            return out
        ranges = [
            range(a // c, (b - 1) // c + 1) for a, b, c in zip(starts, stops, self.chunks)
        ]
        jobs = list(itertools.product(*ranges))

        def one(idx: tuple[int, ...], raw: bytes | None) -> None:
            key = self.chunk_key(idx)
            c0 = [i * c for i, c in zip(idx, self.chunks)]
            o0 = [max(a, s) for a, s in zip(c0, starts)]
            o1 = [min(a + c, e) for a, c, e in zip(c0, self.chunks, stops)]
            dest = out[tuple(slice(a - s, b - s) for a, b, s in zip(o0, o1, starts))]
            if raw is None:
                if self.dense:
                    raise ImageLoadError(
                        f"zarr: chunk {key!r} of array {self.where} is missing "
                        "(polystore writes every chunk, so the store is damaged)"
                    )
                dest[...] = self.fill
                return
            full = all(b - a == c for a, b, c in zip(o0, o1, self.chunks))
            if full and dest.flags.c_contiguous:
                self._decode(raw, key, dest)
                return
            chunk = self._decode(raw, key, None)
            dest[...] = chunk[tuple(slice(a - c, b - c) for a, b, c in zip(o0, o1, c0))]

        base = self.path
        if isinstance(self.fs, _LocalFS):
            fs = self.fs

            raw_codec = self.numcodec is None

            def local(idx: tuple[int, ...]) -> None:
                if raw_codec and self._read_raw_into(idx, starts, stops, out):
                    return
                one(idx, fs.read(base + "/" + self.chunk_key(idx)))

            if len(jobs) <= 2:
                for idx in jobs:
                    local(idx)
            else:
                for fut in [_pool("read").submit(local, idx) for idx in jobs]:
                    fut.result()
            return out
        # object store: fetch a window of chunks concurrently, decode in the pool
        window = max(8, _PUT_BATCH_BYTES // max(1, self.chunk_nbytes))
        for i in range(0, len(jobs), window):
            part = jobs[i : i + window]
            raws = self.fs.read_many([base + "/" + self.chunk_key(idx) for idx in part])
            if len(part) <= 2:
                for idx, raw in zip(part, raws):
                    one(idx, raw)
            else:
                for fut in [_pool("read").submit(one, idx, raw) for idx, raw in zip(part, raws)]:
                    fut.result()
        return out

    def _scratch(self) -> np.ndarray:
        """This thread's reusable chunk-sized buffer (valid until its next use)."""
        scratch: np.ndarray | None = getattr(_SCRATCH, "buf", None)
        if scratch is None or scratch.nbytes < self.chunk_nbytes:
            scratch = np.empty(max(self.chunk_nbytes, 1), np.uint8)
            if self.chunk_nbytes <= _SCRATCH_MAX:  # huge chunks get a buffer of their own
                _SCRATCH.buf = scratch
        return scratch[: self.chunk_nbytes].view(self.dtype).reshape(self.chunks)

    def _read_raw_into(
        self, idx: tuple[int, ...], starts: Sequence[int], stops: Sequence[int], out: np.ndarray
    ) -> bool:
        """Uncompressed chunk wholly inside ``out``: copy it there once, no scratch copy.

        A contiguous destination is filled by ``readinto``; a strided one is
        copied from a memory map of the chunk file (one copy instead of two).
        """
        c0 = [i * c for i, c in zip(idx, self.chunks)]
        if any(a < s or a + c > e for a, c, s, e in zip(c0, self.chunks, starts, stops)):
            return False
        dest = out[tuple(slice(a - s, a - s + c) for a, c, s in zip(c0, self.chunks, starts))]
        path = self.path + "/" + self.chunk_key(idx)
        try:
            if dest.flags.c_contiguous:
                with open(path, "rb", buffering=0) as f:
                    buf: Any = dest.reshape(-1).view(np.uint8)
                    got = f.readinto(buf)
                    extra = f.read(1)
                if got == self.chunk_nbytes and not extra:
                    return True
            else:
                fd = os.open(path, os.O_RDONLY)
                try:
                    size = os.fstat(fd).st_size
                    if size == self.chunk_nbytes and size > 0:
                        with mmap.mmap(fd, 0, prot=mmap.PROT_READ, flags=_MMAP_FLAGS) as mapped:
                            dest[...] = np.frombuffer(mapped, dtype=self.dtype).reshape(self.chunks)
                        return True
                finally:
                    os.close(fd)
        except (FileNotFoundError, NotADirectoryError):
            return False  # the general path reports it (or fills it)
        raise ImageLoadError(
            f"zarr: corrupted chunk {self.chunk_key(idx)!r} of array {self.where}: "
            f"expected {self.chunk_nbytes} bytes"
        )

    def __getitem__(self, item: Any) -> np.ndarray:
        """Basic indexing (ints and step-1 slices), used by dask for lazy loads."""
        if not isinstance(item, tuple):
            item = (item,)
        if any(i is Ellipsis for i in item):
            pos = next(k for k, i in enumerate(item) if i is Ellipsis)
            item = item[:pos] + (slice(None),) * (self.ndim - len(item) + 1) + item[pos + 1 :]
        item = item + (slice(None),) * (self.ndim - len(item))
        starts, stops, squeeze = [], [], []
        for axis, (sel, size) in enumerate(zip(item, self.shape)):
            if isinstance(sel, (int, np.integer)):
                i = int(sel) + size if sel < 0 else int(sel)
                if not 0 <= i < size:
                    raise IndexError(f"index {sel} out of range for axis {axis} of size {size}")
                starts.append(i)
                stops.append(i + 1)
                squeeze.append(axis)
            elif isinstance(sel, slice):
                a, b, step = sel.indices(size)
                if step != 1:
                    return self[tuple(slice(None) if k == axis else s for k, s in enumerate(item))][
                        (slice(None),) * (axis - len([q for q in squeeze if q < axis])) + (sel,)
                    ]
                starts.append(a)
                stops.append(max(a, b))
            else:
                raise TypeError(f"unsupported index {sel!r}")
        out = self.read(starts, stops)
        return out.reshape([s for k, s in enumerate(out.shape) if k not in squeeze]) if squeeze else out


# --------------------------------------------------------------------------- the backend


@dataclass
class _Image:
    """One image (array + optional OME metadata) prepared for writing."""

    data: np.ndarray
    chunks: tuple[int, ...]
    axes: str | None
    pyramid_levels: int = 0
    channel_names: Sequence[str] | None = None
    channel_colors: Sequence[str] | None = None
    scale: Sequence[float] | None = None
    names: list[str] | None = None
    attrs: dict[str, Any] = field(default_factory=dict)
    zarr_format: int = 3


class ZarrBackend(StorageBackend):
    """Chunked, compressed array storage in zarr v3 / OME-Zarr, local or on object storage.

    Args:
        root: optional base for every path: a local directory or a URL such as
            ``"s3://bucket/prefix"``. Without it, paths are local filesystem
            paths (or URLs).
        storage_options: options for fsspec (e.g. s3fs ``key``, ``secret``,
            ``client_kwargs={"endpoint_url": ...}``) used for URL paths.
        config: :class:`~polystore.config.ZarrConfig` (compressor, level,
            chunk strategy). Defaults: Blosc LZ4 level 1 with shuffle, ADAPTIVE.

    Save keywords: ``chunks``, ``axes`` ("tczyx", "zyx", "yx", ...),
    ``pyramid_levels``, ``channel_names``, ``channel_colors``, ``scale``,
    ``compressor``, ``compression_level``, ``attrs``, ``metadata``,
    ``overwrite``. NumPy arrays, framework tensors and dask arrays (written
    slab by slab) are accepted.
    Load keywords: ``lazy`` (dask array, reads nothing yet), ``level``
    (pyramid level of an OME-Zarr image), ``framework`` ("torch", "jax", ...).
    """

    _backend_type = "zarr"
    #: save_batch lays a batch out as one N-D array: never split it into pieces.
    splits_batches: ClassVar[bool] = False

    def __init__(
        self,
        root: PathLike | None = None,
        storage_options: Mapping[str, Any] | None = None,
        config: ZarrConfig | None = None,
    ) -> None:
        self.config = config or ZarrConfig()
        self.storage_options = dict(storage_options or {})
        if root is None:
            self.root: str | None = None
        else:
            text = os.fspath(root)
            # a local root is fixed now, so a later chdir does not move it
            self.root = (text if "://" in text else os.path.abspath(text)).rstrip("/")
        self._local = _LocalFS()
        self._remote: dict[str, _FsspecFS] = {}
        self._lock = threading.Lock()

    def __getstate__(self) -> dict[str, Any]:
        """Picklable (for process pools): settings only; connections are re-made."""
        return {"root": self.root, "storage_options": self.storage_options, "config": self.config}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["root"], state["storage_options"], state["config"])  # type: ignore[misc]

    def __repr__(self) -> str:
        return f"ZarrBackend(root={self.root!r}, config={self.config!r})"

    # ------------------------------------------------------------------ paths

    def _fs_for(self, url: str) -> tuple[_FS, str]:
        if "://" in url:
            protocol, _, rest = url.partition("://")
            if protocol == "file":
                return self._local, os.path.abspath(rest)
            with self._lock:
                fs = self._remote.get(protocol)
                if fs is None:
                    fs = _FsspecFS(protocol, self.storage_options)
                    self._remote[protocol] = fs
            return fs, rest.rstrip("/")
        return self._local, os.path.abspath(url)

    def _absolute(self, path: PathLike) -> str:
        p = os.fspath(path)
        if self.root is None:
            return p
        if "://" in p:
            return p
        if self.root and (p == self.root or p.startswith(self.root + "/")):
            return p
        rel = p.replace("\\", "/").strip("/")
        if rel in ("", "."):
            return self.root
        return self.root + "/" + rel

    def _locate(self, path: PathLike) -> _Loc:
        display = os.fspath(path)
        fs, full = self._fs_for(self._absolute(display))
        parts = [p for p in full.split("/") if p not in ("", ".")]
        lead = "/" if full.startswith("/") else ""
        # 1. the first component named *.zarr ends the store
        for i, part in enumerate(parts):
            if part.lower().endswith(".zarr"):
                return _Loc(fs, lead + "/".join(parts[: i + 1]), "/".join(parts[i + 1 :]), display)
        # 2. the topmost existing ancestor holding zarr metadata is the store
        for i in range(1, len(parts) + 1):
            candidate = lead + "/".join(parts[:i])
            if self._has_zarr_meta(fs, candidate):
                return _Loc(fs, candidate, "/".join(parts[i:]), display)
        # 3. otherwise the whole path is a (new) store
        return _Loc(fs, lead + "/".join(parts), "", display)

    @staticmethod
    def _has_zarr_meta(fs: _FS, path: str) -> bool:
        if isinstance(fs, _LocalFS):
            return any(os.path.isfile(os.path.join(path, m)) for m in (_META, *_V2_META))
        return any(r is not None for r in fs.read_many([fs.join(path, m) for m in (_META, *_V2_META)]))

    def _where(self, loc: _Loc, key: str | None = None) -> str:
        key = loc.key if key is None else key
        return f"{key or '/'!r} in store {loc.fs.url(loc.store)!r}"

    # ------------------------------------------------------------------ metadata

    def _read_meta(self, fs: _FS, path: str) -> tuple[dict[str, Any], int] | None:
        raws = fs.read_many([fs.join(path, _META), fs.join(path, ".zarray"), fs.join(path, ".zgroup")])
        raw3, rawa, rawg = raws
        try:
            if raw3 is not None:
                meta = json.loads(raw3)
                if meta.get("zarr_format") == 3:
                    return meta, 3
                return None
            if rawa is not None or rawg is not None:
                meta = json.loads(rawa if rawa is not None else rawg)  # type: ignore[arg-type]
                meta["node_type"] = "array" if rawa is not None else "group"
                zattrs = fs.read(fs.join(path, ".zattrs"))
                meta["attributes"] = json.loads(zattrs) if zattrs else {}
                return meta, 2
        except (ValueError, UnicodeDecodeError) as exc:
            raise ImageLoadError(f"zarr: unreadable metadata at {fs.url(path)!r}: {exc}") from exc
        return None

    def _node(self, loc: _Loc) -> _Node | None:
        """What lives at ``loc`` (array, group, or a member of a batch), or None."""
        got = self._read_meta(loc.fs, loc.full)
        if got is not None:
            meta, fmt = got
            kind = "array" if meta.get("node_type") == "array" else "group"
            return _Node(kind, loc.full, meta, fmt)
        if loc.key:
            parent_key, _, name = loc.key.rpartition("/")
            parent_path = loc.fs.join(loc.store, parent_key) if parent_key else loc.store
            got = self._read_meta(loc.fs, parent_path)
            if got is not None:
                parent = _Node("array" if got[0].get("node_type") == "array" else "group", parent_path, got[0], got[1])
                names = parent.names
                if names is not None and name in names:
                    return _Node("member", parent_path, parent.meta, parent.zarr_format, names.index(name), parent)
        return None

    def _image_array(self, node: _Node, level: int, loc: _Loc) -> _Node:
        """The array of pyramid ``level`` of an OME image group."""
        ome = node.ome
        assert ome is not None
        datasets = ome["multiscales"][0].get("datasets") or []
        if not 0 <= level < len(datasets):
            raise StorageResolutionError(
                f"zarr: image {self._where(loc)} has {len(datasets)} levels; level {level} does not exist"
            )
        apath = loc.fs.join(node.path, str(datasets[level]["path"]))
        got = self._read_meta(loc.fs, apath)
        if got is None or got[0].get("node_type") != "array":
            raise ImageLoadError(
                f"zarr: image {self._where(loc)} lists level {datasets[level]['path']!r} "
                "but that array is missing"
            )
        return _Node("array", apath, got[0], got[1])

    # ------------------------------------------------------------------ save

    def _prepare(self, data: Any, where: str, allow_lazy: bool = False) -> Any:
        """``data`` as a little-endian NumPy array (or, if ``allow_lazy``, a dask array)."""
        to_numpy: Callable[[Any], Any]
        try:
            from polystore.frameworks import to_numpy  # the core's converter, when present
        except ImportError:  # pragma: no cover - core not built yet
            to_numpy = np.asarray
        if _is_dask(data):
            if allow_lazy and data.ndim >= 1 and data.size:
                dtype = np.dtype(data.dtype)
                _check_dtype(dtype, where)
                return data.astype(dtype.newbyteorder("<")) if dtype.byteorder == ">" else data
            data = data.compute()
        elif hasattr(data, "compute") and not isinstance(data, np.ndarray):
            data = data.compute()
        try:
            arr = to_numpy(data)
        except Exception as exc:
            raise UnsupportedFormatError(
                f"zarr backend: cannot store {type(data).__name__} at {where!r}: {exc}"
            ) from exc
        arr = np.asarray(arr)
        _check_dtype(arr.dtype, where)
        if arr.dtype.byteorder == ">":
            arr = arr.astype(arr.dtype.newbyteorder("<"))
        return arr

    def save(self, data: Any, file_path: PathLike, **kwargs: Any) -> None:
        """Write ``data`` as a chunked array (or OME-Zarr image when ``axes=`` is given).

        Keywords: ``chunks`` (tuple/int; clipped to the array), ``axes``
        ("tczyx" subset in that order; writes OME-NGFF 0.5 multiscales),
        ``pyramid_levels`` (extra 2x-downsampled levels, y/x only),
        ``channel_names`` / ``channel_colors`` (hex "RRGGBB"), ``scale``
        (physical size per axis), ``compressor`` / ``compression_level``
        (override the config), ``attrs`` (user attributes), ``overwrite``
        (default True; False raises if the path exists), ``metadata`` (a
        JSON-able dict, read back by :meth:`load_metadata`).
        """
        loc = self._locate(file_path)
        arr = self._prepare(data, loc.display, allow_lazy=True)
        image = self._image_from_kwargs(arr, kwargs)
        self._save_image(loc, image, kwargs)

    def _image_from_kwargs(self, arr: np.ndarray, kwargs: dict[str, Any], lead_axis: bool = False) -> _Image:
        axes = kwargs.get("axes")
        if axes is not None:
            axes = "".join(axes) if not isinstance(axes, str) else axes
            _validate_axes(axes, arr.ndim)
        chunks = resolve_chunks(arr.shape, arr.dtype, kwargs.get("chunks"), self.config)
        if lead_axis and kwargs.get("chunks") is None:
            chunks = (1,) + chunks[1:]
        levels = int(kwargs.get("pyramid_levels") or 0)
        if levels and axes is None:
            raise ValueError("pyramid_levels needs axes= (OME-Zarr multiscales)")
        if axes is not None:
            _check_channels(arr.shape, axes, kwargs.get("channel_names"), kwargs.get("channel_colors"))
        attrs = dict(kwargs.get("attrs") or {})
        metadata = kwargs.get("metadata")
        if metadata is not None:
            if not isinstance(metadata, Mapping):
                raise TypeError(f"metadata= must be a dict, not {type(metadata).__name__}")
            attrs["polystore_metadata"] = _jsonable(dict(metadata))
        return _Image(
            arr,
            chunks,
            axes,
            levels,
            kwargs.get("channel_names"),
            kwargs.get("channel_colors"),
            kwargs.get("scale"),
            attrs=attrs,
        )

    def _save_image(self, loc: _Loc, image: _Image, kwargs: Mapping[str, Any]) -> None:
        unknown = set(kwargs) - _SAVE_KWARGS
        if unknown:
            raise TypeError(f"zarr backend: unexpected save keyword(s): {', '.join(sorted(unknown))}")
        codec = _codec_for(kwargs.get("compressor"), kwargs.get("compression_level"), self.config)
        overwrite = bool(kwargs.get("overwrite", True))
        fs = loc.fs
        target = loc.full
        name = (loc.key or loc.store).rstrip("/").rpartition("/")[2]
        if name.lower().endswith(".zarr"):
            name = name[:-5]
        existing = self._node(loc)
        if existing is not None and not overwrite:
            raise ImageSaveError(f"zarr: {self._where(loc)} already exists (overwrite=False)")
        if image.names is None and loc.key:
            # a path inside a batch: replace that member, or add a new one
            holder = existing.member_of if existing is not None and existing.kind == "member" else None
            parent_key, _, member_name = loc.key.rpartition("/")
            ploc = _Loc(loc.fs, loc.store, parent_key, loc.display.rstrip("/").rpartition("/")[0])
            if holder is None and existing is None:
                parent_node = self._node(ploc)
                if parent_node is not None and parent_node.names is not None:
                    holder = parent_node
            if holder is not None:
                if image.axes is not None:
                    raise ImageSaveError(f"zarr: {self._where(loc)} is in a batch; axes= cannot apply")
                self._merge_into_batch(ploc, holder, [member_name], [image.data], kwargs)
                return
        refusal = self._replace_refusal(loc, existing)
        if refusal:
            raise ImageSaveError(refusal)
        image.zarr_format = self._format_for(loc, kwargs.get("zarr_format"))
        fmt = image.zarr_format
        try:
            self._ensure_groups(loc.fs, loc.store, loc.key, parents_only=True, zarr_format=fmt)

            def build(dest: str) -> None:
                if image.axes is None:
                    self._write_array(
                        fs, dest, image.data, image.chunks, codec, image.attrs, None, image.names, fmt
                    )
                else:
                    self._write_ome(fs, dest, image, codec, name)

            if isinstance(fs, _LocalFS):
                parent = os.path.dirname(target)
                tmp = os.path.join(parent, f".{os.path.basename(target)}{_TMP_MARK}{uuid.uuid4().hex[:8]}")
                try:
                    build(tmp)
                    self._swap_into_place(tmp, target)
                finally:
                    if os.path.lexists(tmp):
                        shutil.rmtree(tmp, ignore_errors=True)
            else:
                if fs.isdir(target):
                    fs.rmtree(target)
                build(target)
        except (StorageError, TypeError, ValueError):
            raise
        except Exception as exc:
            raise ImageSaveError(f"zarr: could not write {self._where(loc)}: {exc}") from exc

    def _format_for(self, loc: _Loc, requested: Any) -> int:
        """The zarr format of a new node: the store's own, else ``requested``, else the config's."""
        fmt = int(requested) if requested is not None else None
        if fmt not in (None, 2, 3):
            raise ValueError(f"zarr_format must be 2 or 3, got {requested!r}")
        if loc.key:
            got = self._read_meta(loc.fs, loc.store)
            if got is not None:
                if fmt is not None and fmt != got[1]:
                    raise ImageSaveError(
                        f"zarr: store {loc.fs.url(loc.store)!r} is zarr v{got[1]}; cannot add a v{fmt} node"
                    )
                return got[1]
        return fmt or self.config.zarr_format

    def _replace_refusal(self, loc: _Loc, existing: _Node | None) -> str | None:
        """Why saving at ``loc`` must not replace what is there (None: it may).

        Arrays, images, batches, empty groups and leftovers of interrupted
        writes are replaced; a group holding other nodes, or a non-empty folder
        that is not zarr, is never deleted by a save.
        """
        if existing is not None:
            if existing.kind == "group" and not existing.is_image and existing.names is None:
                if any(f or d for _, f, d in self._children(loc, existing)):
                    return (
                        f"zarr: {self._where(loc)} is a group with content; saving there would delete it "
                        "(delete it first with delete(path, recursive=True))"
                    )
            return None
        entries = loc.fs.listdir(loc.full)
        if not entries:
            return None
        if loc.key and self._has_zarr_meta(loc.fs, loc.store):
            return None  # chunks of an interrupted write: replace them
        return (
            f"zarr: {loc.fs.url(loc.full)!r} is a folder that is not a zarr array or group; "
            "refusing to replace it"
        )

    @staticmethod
    def _swap_into_place(tmp: str, target: str) -> None:
        """Rename the finished ``tmp`` tree to ``target``; the old tree survives until then."""
        if os.path.lexists(target):
            old = os.path.join(
                os.path.dirname(target), f".{os.path.basename(target)}{_OLD_MARK}{uuid.uuid4().hex[:8]}"
            )
            os.rename(target, old)
            os.rename(tmp, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, target)

    def _ensure_groups(
        self, fs: _FS, store: str, key: str, parents_only: bool, zarr_format: int | None = None
    ) -> None:
        """Make the store root and every group on the way to ``key`` exist."""
        parts = [p for p in key.split("/") if p]
        if parents_only:
            parts = parts[:-1]
        paths = [store] + [fs.join(store, "/".join(parts[: i + 1])) for i in range(len(parts))]
        if not parts and not key and parents_only:
            # saving at the store root: only the store's parent directory must exist
            if isinstance(fs, _LocalFS):
                os.makedirs(os.path.dirname(store) or ".", exist_ok=True)
            return
        fmt = zarr_format or self.config.zarr_format
        for p in paths:
            got = self._read_meta(fs, p)
            if got is None:
                if isinstance(fs, _LocalFS):
                    os.makedirs(p, exist_ok=True)
                _write_group(fs, p, {}, fmt)
            elif p == store:
                fmt = got[1]  # new groups follow the store's format
                if got[0].get("node_type") == "array":
                    raise ImageSaveError(
                        f"zarr: cannot create {key!r} in store {fs.url(store)!r}: "
                        f"{fs.url(p)!r} is an array, not a group"
                    )
            elif got[0].get("node_type") == "array":
                raise ImageSaveError(
                    f"zarr: cannot create {key!r} in store {fs.url(store)!r}: "
                    f"{fs.url(p)!r} is an array, not a group"
                )

    def _write_array(
        self,
        fs: _FS,
        dest: str,
        data: np.ndarray,
        chunks: tuple[int, ...],
        codec: _Codec,
        attrs: Mapping[str, Any],
        dimension_names: Sequence[str] | None,
        names: Sequence[str | None] | None = None,
        zarr_format: int = 3,
    ) -> None:
        """Write every chunk of ``data`` under ``dest``, then its metadata (last)."""
        skip_empty = not self.config.write_empty_chunks
        self._write_chunks(fs, dest, data, chunks, codec, zarr_format=zarr_format, skip_empty=skip_empty)
        self._write_array_meta(
            fs, dest, tuple(data.shape), np.dtype(data.dtype), chunks, codec, attrs, dimension_names,
            names, zarr_format,
        )

    def _write_array_meta(
        self,
        fs: _FS,
        dest: str,
        shape: tuple[int, ...],
        dtype: np.dtype[Any],
        chunks: tuple[int, ...],
        codec: _Codec,
        attrs: Mapping[str, Any],
        dimension_names: Sequence[str] | None,
        names: Sequence[str | None] | None,
        zarr_format: int,
    ) -> None:
        """Write the metadata of an array whose chunks are all written (this makes it exist)."""
        info: dict[str, Any] = {"dense": bool(self.config.write_empty_chunks)}
        if names is not None:
            info["names"] = list(names)
        all_attrs = {**attrs, "polystore": info}
        if zarr_format == 2:
            fs.write_atomic(fs.join(dest, ".zattrs"), _dumps(all_attrs))
            meta2 = _array_metadata_v2(shape, dtype, chunks, codec)
            fs.write_atomic(fs.join(dest, ".zarray"), _dumps(meta2))  # last: now it exists
            return
        meta = _array_metadata(shape, dtype, chunks, codec, all_attrs, dimension_names)
        fs.write_atomic(fs.join(dest, _META), _dumps(meta))

    def _write_chunks(
        self,
        fs: _FS,
        dest: str,
        data: np.ndarray,
        chunks: tuple[int, ...],
        codec: _Codec,
        lead_offset: int = 0,
        zarr_format: int = 3,
        separator: str = "/",
        skip_empty: bool = False,
    ) -> None:
        """Encode and write every chunk of ``data`` (chunk index 0 shifted by ``lead_offset``).

        With ``skip_empty`` (``ZarrConfig(write_empty_chunks=False)``) chunks
        holding only the fill value are not written, as zarr does by default.

        A dask array is computed and written one slab of about ``_SLAB_BYTES``
        (whole chunks along axis 0) at a time, so it never has to fit in RAM.
        """
        if not isinstance(data, np.ndarray):
            step = chunks[0]
            row_bytes = int(np.prod(data.shape[1:], dtype=np.int64)) * data.dtype.itemsize
            rows = max(step, (_SLAB_BYTES // max(1, row_bytes)) // step * step)
            for start in range(0, data.shape[0], rows):
                slab = np.ascontiguousarray(np.asarray(data[start : start + rows].compute()))
                self._write_chunks(
                    fs, dest, slab, chunks, codec, lead_offset + start // step, zarr_format, separator,
                    skip_empty,
                )
            return
        numcodec = codec.numcodec()
        grid = [range(max(1, math.ceil(s / c))) if s else range(0) for s, c in zip(data.shape, chunks)]
        indices = list(itertools.product(*grid)) if data.ndim else [()]
        fill = _fill_value(data.dtype)

        def encode(idx: tuple[int, ...]) -> bytes | np.ndarray | None:
            sel = tuple(slice(i * c, (i + 1) * c) for i, c in zip(idx, chunks))
            block = data[sel]
            if skip_empty and not np.any(block):
                return None  # all fill value (0 / False): left out
            if block.shape != chunks:
                padded = np.full(chunks, fill if not isinstance(fill, list) else 0, dtype=data.dtype)
                padded[tuple(slice(0, s) for s in block.shape)] = block
                block = padded
            block = np.ascontiguousarray(block)
            if numcodec is None:
                return block  # raw little-endian bytes: written straight from the buffer
            return bytes(numcodec.encode(block))

        def key(idx: tuple[int, ...]) -> str:
            if lead_offset and idx:
                idx = (idx[0] + lead_offset,) + idx[1:]
            if zarr_format == 2:
                return dest + "/" + (separator.join(str(i) for i in idx) if idx else "0")
            return dest + "/c" + "".join(separator + str(i) for i in idx)

        if isinstance(fs, _LocalFS):
            for d in {os.path.dirname(key(idx)) for idx in indices}:
                os.makedirs(d, exist_ok=True)
            os.makedirs(dest, exist_ok=True)

            def work(idx: tuple[int, ...]) -> None:
                blob: Any = encode(idx)
                if blob is None:
                    path = key(idx)
                    if os.path.lexists(path):  # a member rewritten as empty
                        os.remove(path)
                    return
                with open(key(idx), "wb") as f:
                    f.write(blob)

            if len(indices) <= 2:
                for idx in indices:
                    work(idx)
            else:
                for fut in [_pool().submit(work, idx) for idx in indices]:
                    fut.result()
            return

        def encoded() -> Iterator[tuple[str, bytes]]:
            step = 16
            for i in range(0, len(indices), step):
                part = indices[i : i + step]
                for idx, blob in zip(part, _pool().map(encode, part)):
                    if blob is not None:
                        yield key(idx), blob if isinstance(blob, bytes) else blob.tobytes()

        fs.write_many(encoded())

    def _merge_into_batch(
        self,
        ploc: _Loc,
        holder: _Node,
        names: Sequence[str],
        arrays: Sequence[Any],
        kwargs: Mapping[str, Any],
    ) -> None:
        """Save images into an existing batch like files into a folder.

        A name the batch already has is replaced in place; new names are
        appended along axis 0 (their chunks first, then the metadata with the
        longer shape and name list, so an interrupted append leaves the batch
        as it was). Images must match the batch's image shape and dtype.
        """
        target = holder
        where = self._where(ploc)
        if holder.kind == "group":
            ome = holder.ome
            if ome is None or len(ome["multiscales"][0].get("datasets") or []) != 1:
                raise ImageSaveError(
                    f"zarr: cannot add images to the batch {where}: it is a pyramid; save the whole batch again"
                )
            target = self._image_array(holder, 0, ploc)
        meta = target.meta
        reader = self._reader(ploc, target)
        bad = [k for k in kwargs if k not in ("overwrite", "compressor", "compression_level", "chunks", "axes")]
        axes = kwargs.get("axes")
        if axes is not None:
            have = holder.ome["multiscales"][0].get("axes") if holder.ome is not None else None
            have_axes = "".join(a["name"] if isinstance(a, dict) else str(a) for a in have) if have else None
            if "".join(axes) != have_axes:
                raise ImageSaveError(
                    f"zarr: the batch {where} has axes {have_axes!r}; cannot add images with axes {axes!r}"
                )
        shape = tuple(meta.get("shape", ()))[1:]
        dtype = _dtype_from_meta(meta) if target.zarr_format == 3 else np.dtype(meta.get("dtype", "u1"))
        for arr in arrays:
            if reader is None or reader.chunks[0] != 1 or tuple(arr.shape) != reader.shape[1:] or bad:
                raise ImageSaveError(
                    f"zarr: the batch {where} holds images of shape {shape} and dtype {dtype}; "
                    f"cannot store one of shape {tuple(arr.shape)} there with keywords {sorted(kwargs)} "
                    "(delete the batch or save under another folder)"
                )
            if np.dtype(arr.dtype) != reader.dtype:
                raise ImageSaveError(
                    f"zarr: the batch {where} holds {reader.dtype} images, not {np.dtype(arr.dtype)}"
                )
        assert reader is not None
        fmt = 2 if reader.v2_keys and target.zarr_format == 2 else 3
        existing = list(holder.names or [])
        fresh: list[tuple[str, Any]] = []
        for name, arr in zip(names, arrays):
            if name in existing:
                self._write_chunks(
                    ploc.fs, target.path, arr[None], reader.chunks, reader.codec, existing.index(name),
                    fmt, reader.sep,
                )
            else:
                fresh.append((name, arr))
        if not fresh:
            return
        start = reader.shape[0]
        stack = np.stack([np.asarray(a) for _, a in fresh])
        self._write_chunks(ploc.fs, target.path, stack, reader.chunks, reader.codec, start, fmt, reader.sep)
        new_names = existing + [n for n, _ in fresh]
        new_shape = [start + len(fresh), *reader.shape[1:]]
        fs = ploc.fs
        # metadata last: until here the appended chunks lie beyond the array's shape
        if target.zarr_format == 2:
            zarray = {k: v for k, v in target.meta.items() if k not in ("attributes", "node_type")}
            zarray["shape"] = new_shape
            attrs = dict(target.attrs)
            if target is holder:
                attrs["polystore"] = {**dict(attrs.get("polystore") or {}), "names": new_names}
            fs.write_atomic(fs.join(target.path, ".zattrs"), _dumps(attrs))
            fs.write_atomic(fs.join(target.path, ".zarray"), _dumps(zarray))
        else:
            meta3 = dict(target.meta)
            meta3["shape"] = new_shape
            attrs = dict(target.attrs)
            if "names" in dict(attrs.get("polystore") or {}):
                attrs["polystore"] = {**dict(attrs.get("polystore") or {}), "names": new_names}
            meta3["attributes"] = attrs
            fs.write_atomic(fs.join(target.path, _META), _dumps(meta3))
        if holder is not target:  # OME batch: the names live in the image group
            gattrs = dict(holder.attrs)
            gattrs["polystore"] = {**dict(gattrs.get("polystore") or {}), "names": new_names}
            if holder.zarr_format == 2:
                fs.write_atomic(fs.join(holder.path, ".zattrs"), _dumps(gattrs))
            else:
                gmeta = dict(holder.meta)
                gmeta["attributes"] = gattrs
                fs.write_atomic(fs.join(holder.path, _META), _dumps(gmeta))

    def _write_ome(self, fs: _FS, dest: str, image: _Image, codec: _Codec, name: str) -> None:
        """Write an OME-NGFF 0.5 image group: levels "0".."N", then the group metadata."""
        assert image.axes is not None
        axes = image.axes
        data: Any = image.data  # NumPy or dask
        base_scale = [float(s) for s in image.scale] if image.scale is not None else [1.0] * data.ndim
        if len(base_scale) != data.ndim:
            raise ValueError(f"scale has {len(base_scale)} entries for {data.ndim} axes")
        datasets = []
        levels = image.pyramid_levels + 1
        shapes = [tuple(int(s) for s in data.shape)]
        for _ in range(1, levels):
            shapes.append(_downsampled_shape(shapes[-1]))
        level_chunks = [tuple(min(c, max(1, s)) for c, s in zip(image.chunks, shp)) for shp in shapes]
        paths = [fs.join(dest, str(level)) for level in range(levels)]
        skip_empty = not self.config.write_empty_chunks
        fmt = image.zarr_format
        seen = _ChannelRange(axes, int(data.shape[axes.index("c")])) if "c" in axes else None
        if data.ndim >= 3 and data.shape[0] > 0:
            # slab by slab along axis 0 (never y or x), every level of a slab at once:
            # neither the image nor its pyramid has to fit in RAM
            step = level_chunks[0][0]
            row_bytes = int(np.prod(data.shape[1:], dtype=np.int64)) * data.dtype.itemsize
            rows = max(step, (_SLAB_BYTES // max(1, row_bytes)) // step * step)
            for start in range(0, data.shape[0], rows):
                slab = data[start : start + rows]
                slab = np.ascontiguousarray(slab.compute() if _is_dask(slab) else slab)
                if seen is not None and slab.dtype.kind in "iuf":
                    seen.update(slab, start)
                for level in range(levels):
                    if level:
                        slab = _downsample_yx(slab, axes)
                    self._write_chunks(
                        fs, paths[level], slab, level_chunks[level], codec, start // step, fmt, "/",
                        skip_empty,
                    )
        else:
            level_data = data.compute() if _is_dask(data) else data
            for level in range(levels):
                if level:
                    level_data = _downsample_yx(level_data, axes)
                self._write_chunks(
                    fs, paths[level], level_data, level_chunks[level], codec, zarr_format=fmt,
                    skip_empty=skip_empty,
                )
        for level in range(levels):
            self._write_array_meta(
                fs, paths[level], shapes[level], np.dtype(data.dtype), level_chunks[level], codec, {},
                list(axes), image.names if level == 0 else None, fmt,
            )
            factor = [2.0**level if a in "yx" else 1.0 for a in axes]
            datasets.append(
                {
                    "path": str(level),
                    "coordinateTransformations": [
                        {"type": "scale", "scale": [s * f for s, f in zip(base_scale, factor)]}
                    ],
                }
            )
        multiscale = {
            "name": name or "image",
            "axes": [_axis_entry(a) for a in axes],
            "datasets": datasets,
        }
        omero = None
        if "c" in axes:
            omero = _omero(
                data.shape, np.dtype(data.dtype), axes, image.channel_names, image.channel_colors, seen
            )
        group_attrs: dict[str, Any] = dict(image.attrs)
        if image.zarr_format == 2:  # OME-NGFF 0.4: metadata at the top level of .zattrs
            group_attrs["multiscales"] = [{"version": "0.4", **multiscale}]
            if omero is not None:
                group_attrs["omero"] = omero
        else:
            ome: dict[str, Any] = {"version": "0.5", "multiscales": [multiscale]}
            if omero is not None:
                ome["omero"] = omero
            group_attrs["ome"] = ome
        if image.names is not None:
            group_attrs["polystore"] = {"names": list(image.names)}
        _write_group(fs, dest, group_attrs, image.zarr_format)

    # ------------------------------------------------------------------ load

    def load(self, file_path: PathLike, **kwargs: Any) -> Any:
        """Read the array (or member of a batch, or level 0 of an OME image) at ``file_path``.

        ``lazy=True`` returns a dask array that reads nothing until computed
        (and then only the chunks its slices touch). ``level=k`` picks a
        pyramid level of an OME-Zarr image.
        """
        lazy = bool(kwargs.pop("lazy", False))
        level = int(kwargs.pop("level", 0))
        framework = kwargs.pop("framework", None)
        if kwargs:
            raise TypeError(f"zarr backend: unexpected load keyword(s): {', '.join(sorted(kwargs))}")
        loc = self._locate(file_path)
        node = self._resolve_for_load(loc)
        index = None
        if node.kind == "member":
            index = node.index
            assert node.member_of is not None
            node = node.member_of
        if node.kind == "group":
            if node.ome is None:
                raise ImageLoadError(
                    f"zarr: {self._where(loc)} is a group, not an array or OME-Zarr image"
                )
            node = self._image_array(node, level, loc)
        data = self._read_node(loc, node, index, lazy)
        if framework and not lazy:
            from polystore.frameworks import from_numpy

            return from_numpy(data, framework)
        return data

    def _resolve_for_load(self, loc: _Loc) -> _Node:
        node = self._node(loc)
        if node is not None:
            return node
        fs = loc.fs
        if not fs.isdir(loc.store) and not self._has_zarr_meta(fs, loc.store):
            raise PathNotFoundError(loc.display, "zarr")
        if not self._has_zarr_meta(fs, loc.store):
            raise StorageResolutionError(
                f"zarr: {fs.url(loc.store)!r} is not a zarr store (no zarr.json/.zgroup/.zarray); "
                f"cannot load {loc.key or '/'!r}"
            )
        if fs.isdir(loc.full):
            raise ImageLoadError(
                f"zarr: {self._where(loc)} exists but has no zarr metadata "
                "(not a zarr node, or a write was interrupted before its metadata was written)"
            )
        raise PathNotFoundError(f"{loc.key or '/'} (in store {fs.url(loc.store)})", "zarr")

    def _reader(self, loc: _Loc, node: _Node) -> _ArrayReader | None:
        if node.zarr_format == 2:
            return self._reader_v2(loc, node)
        codec = _codec_from_metadata(node.meta)
        dtype = _dtype_from_meta(node.meta)
        grid = node.meta.get("chunk_grid") or {}
        if codec is None or dtype is None or grid.get("name") != "regular":
            return None
        rel = node.path[len(loc.store) :].strip("/")
        return _ArrayReader(loc.fs, node.path, node.meta, codec, self._where(loc, rel))

    def _reader_v2(self, loc: _Loc, node: _Node) -> _ArrayReader | None:
        """Our reader for v2 arrays that are C-ordered, filter-free, blosc or raw."""
        meta = node.meta
        comp = meta.get("compressor")
        if meta.get("filters") or meta.get("order", "C") != "C" or "dtype" not in meta:
            return None
        try:
            dtype = np.dtype(meta["dtype"])
        except TypeError:
            return None
        if dtype.kind not in "biufc" or dtype.byteorder == ">" or dtype.fields is not None:
            return None
        if comp is None:
            codec = _Codec(None)
        elif isinstance(comp, dict) and comp.get("id") == "blosc":
            shuffle = {0: "noshuffle", 1: "shuffle", 2: "bitshuffle", -1: "shuffle"}.get(comp.get("shuffle", 1))
            if shuffle is None or comp.get("shuffle", 1) == -1:
                return None
            codec = _Codec(str(comp.get("cname", "lz4")), int(comp.get("clevel", 5)), shuffle)
        else:
            return None
        as_v3 = {
            "shape": meta["shape"],
            "data_type": dtype.name,
            "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": meta["chunks"]}},
            "chunk_key_encoding": {
                "name": "v2",
                "configuration": {"separator": meta.get("dimension_separator") or "."},
            },
            "fill_value": meta.get("fill_value") if meta.get("fill_value") is not None else 0,
            "attributes": meta.get("attributes") or {},
        }
        rel = node.path[len(loc.store) :].strip("/")
        return _ArrayReader(loc.fs, node.path, as_v3, codec, self._where(loc, rel))

    def _zarr_array(self, loc: _Loc, node: _Node) -> Any:
        rel = node.path[len(loc.store) :].strip("/")
        try:
            store = loc.fs.zarr_store(loc.store)
            return zarr.open_array(
                store=store, path=rel, mode="r", zarr_format=3 if node.zarr_format == 3 else 2
            )
        except Exception as exc:
            raise ImageLoadError(f"zarr: cannot open array {self._where(loc, rel)}: {exc}") from exc

    def _read_node(self, loc: _Loc, node: _Node, index: int | None, lazy: bool) -> Any:
        reader = self._reader(loc, node)
        rel = node.path[len(loc.store) :].strip("/")
        if lazy:
            return self._lazy(loc, node, reader, index)
        if reader is not None:
            if index is None:
                return reader.read([0] * reader.ndim, list(reader.shape))
            return reader[index]
        arr = self._zarr_array(loc, node)
        try:
            return np.asarray(arr[()] if index is None else arr[index])
        except Exception as exc:
            raise ImageLoadError(
                f"zarr: cannot read array {self._where(loc, rel)} (a chunk is corrupted or unreadable): {exc}"
            ) from exc

    def _lazy(self, loc: _Loc, node: _Node, reader: _ArrayReader | None, index: int | None) -> Any:
        try:
            import dask.array as _dask_array
        except ImportError:  # pragma: no cover - dask is in the zarr extra
            arr = self._zarr_array(loc, node)
            return arr if index is None else arr[index]
        da: Any = _dask_array
        if reader is not None:
            out = da.from_array(
                reader,
                chunks=reader.chunks,
                asarray=False,
                fancy=False,
                lock=False,
                meta=np.empty((0,) * reader.ndim, dtype=reader.dtype),
                name=f"polystore-zarr-{uuid.uuid4().hex}",
            )
        else:
            out = da.from_zarr(self._zarr_array(loc, node))
        return out if index is None else out[index]

    # ------------------------------------------------------------------ batches

    def save_batch(
        self, data_list: Sequence[Any], identifiers: Sequence[PathLike], **kwargs: Any
    ) -> None:
        """Save N images; same-shape images with one parent become ONE N-D array.

        ``"s.zarr/f0"``, ``"s.zarr/f1"``, ... (same parent, same shape and
        dtype) are written as one array at the parent (``"s.zarr"``) with axis 0
        of length N and chunk size 1 along it, and the names in its attributes;
        ``load("s.zarr/f1")`` reads only that image's chunks and
        ``load("s.zarr")`` returns the whole stack. With ``axes=`` (one letter
        more than an image has, e.g. "zyx" for a batch of yx planes) the
        parent is written as an OME-Zarr image instead. A lone image, and
        images whose parent or shape differ, are saved one by one. Into an
        existing batch, images are replaced or appended (see
        ``docs/zarr-layout.md``).
        """
        if len(data_list) != len(identifiers):
            raise ValueError(f"save_batch: {len(data_list)} data items but {len(identifiers)} paths")
        if not data_list:
            return
        groups: dict[tuple[str, str], list[int]] = {}
        locs = [self._locate(p) for p in identifiers]
        arrays = [self._prepare(d, loc.display) for d, loc in zip(data_list, locs)]
        for i, loc in enumerate(locs):
            parent_key, _, name = loc.key.rpartition("/")
            if not name:
                groups.setdefault(("", f"single{i}"), []).append(i)
                continue
            groups.setdefault((loc.fs.url(loc.store), parent_key), []).append(i)
        for (store_url, parent_key), members in groups.items():
            shapes = {(arrays[i].shape, arrays[i].dtype.str) for i in members}
            names = [locs[i].key.rpartition("/")[2] for i in members]
            if store_url == "" or len(members) == 1 or len(shapes) != 1 or len(set(names)) != len(names):
                single_kwargs = {k: v for k, v in kwargs.items() if k != "axes"}
                for i in members:
                    self.save(arrays[i], identifiers[i], **single_kwargs)
                continue
            first = locs[members[0]]
            parent_display = first.display.rstrip("/").rpartition("/")[0]
            loc = _Loc(first.fs, first.store, parent_key, parent_display)
            parent = self._node(loc)
            if parent is not None and parent.names is not None and parent.kind != "member":
                # an existing batch: replace/append like files in a folder, never drop its other images
                self._merge_into_batch(loc, parent, names, [arrays[i] for i in members], kwargs)
                continue
            if (parent is not None and parent.kind == "member") or self._replace_refusal(loc, parent):
                # the parent holds other things: keep them, save the images one by one
                single_kwargs = {k: v for k, v in kwargs.items() if k != "axes"}
                for i in members:
                    self.save(arrays[i], identifiers[i], **single_kwargs)
                continue
            stack = np.stack([arrays[i] for i in members])
            image = self._image_from_kwargs(stack, dict(kwargs), lead_axis=True)
            image.names = names
            self._save_image(loc, image, kwargs)

    def load_batch(self, file_paths: Sequence[PathLike], **kwargs: Any) -> list[Any]:
        """Read every path in order; members of one batch array are read in one pass."""
        lazy = bool(kwargs.get("lazy", False))
        out: list[Any] = [None] * len(file_paths)
        pending: dict[str, tuple[_Loc, _Node, list[tuple[int, int]]]] = {}
        for pos, path in enumerate(file_paths):
            loc = self._locate(path)
            node = self._node(loc) if not lazy else None
            if node is not None and node.kind == "member" and node.member_of is not None:
                parent = node.member_of
                if parent.kind == "group":
                    if parent.ome is None:
                        raise ImageLoadError(f"zarr: {self._where(loc)} is not readable")
                    parent = self._image_array(parent, 0, loc)
                entry = pending.setdefault(parent.path, (loc, parent, []))
                entry[2].append((pos, node.index))
            else:
                out[pos] = self.load(path, **kwargs)
        for loc, node, items in pending.values():
            reader = self._reader(loc, node)
            indices = [i for _, i in items]
            lo, hi = min(indices), max(indices) + 1
            if reader is not None and hi - lo <= 2 * len(indices):
                block = reader.read([lo] + [0] * (reader.ndim - 1), [hi] + list(reader.shape[1:]))
                for pos, i in items:
                    out[pos] = block[i - lo]
            else:
                for pos, i in items:
                    out[pos] = self._read_node(loc, node, i, False)
        return out

    # ------------------------------------------------------------------ listing

    def _children(self, loc: _Loc, node: _Node | None) -> list[tuple[str, bool, bool]]:
        """(name, is_file, is_dir) of entries directly inside ``loc``."""
        fs = loc.fs
        if node is not None:
            if node.kind == "member":
                return []
            names = node.names
            if names is not None:
                return [(n, True, False) for n in names if n is not None]
            if node.kind == "array" or node.is_image:
                return []
        entries = fs.listdir(loc.full)
        if entries is None:
            return []
        entries = sorted(e for e in entries if not _is_hidden(e) and e not in _V2_META and e != ".zattrs")
        inside_store = node is not None or self._has_zarr_meta(fs, loc.store)
        paths = [fs.join(loc.full, e) for e in entries]
        out: list[tuple[str, bool, bool]] = []
        if not inside_store or isinstance(fs, _LocalFS):
            for name, p in zip(entries, paths):
                got = self._read_meta(fs, p)
                out.append(self._classify(name, got, fs, p, inside_store))
            return out
        metas = fs.read_many([fs.join(p, _META) for p in paths])
        for name, p, raw in zip(entries, paths, metas):
            got = None
            if raw is not None:
                got = (json.loads(raw), 3)
            elif self._has_zarr_meta(fs, p):
                got = self._read_meta(fs, p)
            out.append(self._classify(name, got, fs, p, inside_store))
        return out

    @staticmethod
    def _classify(
        name: str, got: tuple[dict[str, Any], int] | None, fs: _FS, path: str, inside_store: bool
    ) -> tuple[str, bool, bool]:
        if got is None:
            if inside_store:
                return (name, False, False)  # chunk dirs, interrupted writes: not nodes
            # outside stores only folders count (they may hold stores); other files are not zarr
            return (name, False, os.path.isdir(path) if isinstance(fs, _LocalFS) else fs.isdir(path))
        n = _Node("array" if got[0].get("node_type") == "array" else "group", path, got[0], got[1])
        if n.names is not None:
            return (name, False, True)
        return (name, n.is_file, not n.is_file)

    def list_dir(self, path: PathLike) -> list[str]:
        """Names of the groups, arrays, images and batch members directly inside ``path``."""
        loc = self._locate(path)
        node = self._node(loc)
        if node is None and not loc.fs.isdir(loc.full):
            raise PathNotFoundError(loc.display, "zarr")
        if node is not None and node.is_file:
            raise NotADirectoryError(f"zarr: {self._where(loc)} is an array, not a group")
        return [name for name, f, d in self._children(loc, node) if f or d]

    def list_files(
        self,
        directory: PathLike,
        pattern: str | None = None,
        extensions: Iterable[str] | None = None,
        recursive: bool = False,
    ) -> list[str]:
        """Arrays, OME images and batch members under ``directory`` (paths, sorted)."""
        exts = None
        if extensions is not None:
            exts = tuple(e.lower() if e.startswith(".") else "." + e.lower() for e in extensions)
        base = os.fspath(directory).rstrip("/") or "/"
        loc = self._locate(base)
        node = self._node(loc)
        if node is None and not loc.fs.isdir(loc.full):
            raise PathNotFoundError(base, "zarr")
        if node is not None and node.is_file:
            raise NotADirectoryError(f"zarr: {self._where(loc)} is an array, not a group")
        found: list[str] = []

        def walk(display: str, wloc: _Loc, wnode: _Node | None) -> None:
            for name, is_file, is_dir in self._children(wloc, wnode):
                child_display = display.rstrip("/") + "/" + name
                if is_file:
                    if pattern is not None and not fnmatch.fnmatch(name, pattern):
                        continue
                    if exts is not None and not name.lower().endswith(exts):
                        continue
                    found.append(child_display)
                elif is_dir and recursive:
                    cloc = self._locate(child_display)
                    walk(child_display, cloc, self._node(cloc))

        walk(base, loc, node)
        return sorted(found)

    def exists(self, path: PathLike) -> bool:
        """True for an array, image, batch member, group or directory at ``path``."""
        loc = self._locate(path)
        return self._node(loc) is not None or loc.fs.isdir(loc.full) and not self._is_junk(loc)

    def _is_junk(self, loc: _Loc) -> bool:
        """A directory inside a store without metadata (chunk dirs, interrupted writes)."""
        return bool(loc.key) and self._has_zarr_meta(loc.fs, loc.store)

    def is_file(self, path: PathLike) -> bool:
        """True for an array, an OME image or a member of a batch."""
        node = self._node(self._locate(path))
        return node is not None and node.is_file

    def is_dir(self, path: PathLike) -> bool:
        """True for a group, a batch array (it lists its members) or a plain directory."""
        loc = self._locate(path)
        node = self._node(loc)
        if node is not None:
            return not node.is_file
        return loc.fs.isdir(loc.full) and not self._is_junk(loc)

    def ensure_directory(self, directory: PathLike) -> str:
        """Create the store and the groups on the way to ``directory``."""
        loc = self._locate(directory)
        if isinstance(loc.fs, _LocalFS):
            os.makedirs(os.path.dirname(loc.store) or ".", exist_ok=True)
        self._ensure_groups(loc.fs, loc.store, loc.key, parents_only=False)
        return os.fspath(directory)

    def delete(self, path: PathLike, recursive: bool = False) -> None:
        """Remove an array, image or group (non-empty groups need ``recursive=True``).

        Deleting a member of a batch removes its name from the batch index;
        its pixels stay in the batch array until the batch is rewritten.
        """
        loc = self._locate(path)
        node = self._node(loc)
        fs = loc.fs
        if node is None:
            if fs.isdir(loc.full):
                if fs.listdir(loc.full) and not recursive:
                    raise OSError(f"zarr: directory {loc.display!r} is not empty (use recursive=True)")
                fs.rmtree(loc.full)
                return
            raise PathNotFoundError(loc.display, "zarr")
        if node.kind == "member":
            parent = node.member_of
            assert parent is not None
            names = list(parent.names or [])
            names[node.index] = None
            meta = dict(parent.meta)
            attrs = dict(meta.get("attributes") or {})
            info = dict(attrs.get("polystore") or {})
            info["names"] = names
            attrs["polystore"] = info
            meta["attributes"] = attrs
            if parent.zarr_format == 2:
                fs.write_atomic(fs.join(parent.path, ".zattrs"), _dumps(attrs))
            else:
                fs.write_atomic(fs.join(parent.path, _META), _dumps(meta))
            return
        if node.kind == "group" and not node.is_image and not recursive:
            if any(f or d for _, f, d in self._children(loc, node)):
                raise OSError(f"zarr: group {self._where(loc)} is not empty (use recursive=True)")
        fs.rmtree(loc.full)

    def copy(self, source: PathLike, destination: PathLike) -> None:
        """Copy an array, image, group or batch member to ``destination``."""
        src = self._locate(source)
        node = self._node(src)
        if node is None:
            raise PathNotFoundError(src.display, "zarr")
        dst = self._locate(destination)
        if node.kind == "member" or src.fs is not dst.fs:
            self.save(self.load(source), destination)
            return
        if self._node(dst) is not None or dst.fs.isdir(dst.full):
            raise ImageSaveError(f"zarr: copy destination {self._where(dst)} already exists")
        if dst.key:
            self._ensure_groups(dst.fs, dst.store, dst.key, parents_only=True)
        elif isinstance(dst.fs, _LocalFS):
            os.makedirs(os.path.dirname(dst.store) or ".", exist_ok=True)
        dst.fs.copytree(src.full, dst.full)

    def move(self, source: PathLike, destination: PathLike) -> None:
        """Move an array, image or group to ``destination`` (a rename on local disk)."""
        src = self._locate(source)
        node = self._node(src)
        if node is None:
            raise PathNotFoundError(src.display, "zarr")
        dst = self._locate(destination)
        if node.kind != "member" and isinstance(src.fs, _LocalFS) and dst.fs is src.fs:
            if self._node(dst) is not None or os.path.exists(dst.full):
                raise ImageSaveError(f"zarr: move destination {self._where(dst)} already exists")
            if dst.key:
                self._ensure_groups(dst.fs, dst.store, dst.key, parents_only=True)
            else:
                os.makedirs(os.path.dirname(dst.store) or ".", exist_ok=True)
            os.rename(src.full, dst.full)
            return
        self.copy(source, destination)
        self.delete(source, recursive=True)

    # ------------------------------------------------------------------ extras

    def cleanup(self, directory: PathLike) -> list[str]:
        """Remove what killed writers left under ``directory`` (local stores); return it.

        An interrupted save leaves a hidden ``.<name>.polystore-tmp-*`` (or,
        if killed between the two renames of an overwrite, ``-old-*``)
        directory next to its target. Reads and listings ignore them; this
        deletes them. Do not run it while another process is saving there.
        """
        loc = self._locate(directory)
        removed: list[str] = []
        if not isinstance(loc.fs, _LocalFS):
            return removed
        for dirpath, dirnames, _files in os.walk(loc.full):
            for d in list(dirnames):
                if d.startswith(".") and (_TMP_MARK in d or _OLD_MARK in d):
                    shutil.rmtree(os.path.join(dirpath, d), ignore_errors=True)
                    removed.append(os.path.join(dirpath, d))
                    dirnames.remove(d)
        return sorted(removed)

    def load_metadata(self, file_path: PathLike) -> dict[str, Any] | None:
        """The ``metadata=`` dict saved with the array/image (or its batch), or None."""
        loc = self._locate(file_path)
        node = self._node(loc)
        if node is None:
            raise PathNotFoundError(loc.display, "zarr")
        holder = node.member_of if node.kind == "member" and node.member_of else node
        value = holder.attrs.get("polystore_metadata")
        return dict(value) if isinstance(value, dict) else None

    def info(self, path: PathLike) -> dict[str, Any]:
        """Shape, dtype, chunks, axes and kind of what is stored at ``path``.

        Always: ``kind`` ("array", "group", "image" or "member") and
        ``zarr_format``; for arrays, images and members also ``shape``,
        ``dtype`` and ``chunks``. An OME-Zarr image (and a member of a batch
        saved as one, whose axes and scale lose the batch axis) also reports
        what a viewer needs to show it:

        - ``axes`` (axis names joined, e.g. "czyx"), ``axis_names`` (list) and
          ``levels`` (pyramid levels; ``load(path, level=k)`` reads level k);
        - ``scale``: physical size per axis of level 0, when the image has one;
        - ``channel_axis``: position of the channel axis, when there is one;
        - ``channel_names`` (OMERO labels, None where missing),
          ``channel_colors`` (hex "RRGGBB") and ``contrast_limits`` (OMERO
          ``window`` start/end per channel), each only when every channel has
          a valid entry.
        """
        loc = self._locate(path)
        node = self._node(loc)
        if node is None:
            raise PathNotFoundError(loc.display, "zarr")
        out: dict[str, Any] = {"kind": "image" if node.is_image else node.kind, "zarr_format": node.zarr_format}
        arr_node = node.member_of if node.kind == "member" and node.member_of else node
        if arr_node.kind == "group" and arr_node.ome is not None:
            ome = arr_node.ome
            out["axes"] = "".join(a["name"] for a in ome["multiscales"][0]["axes"])
            out["levels"] = len(ome["multiscales"][0]["datasets"])
            display = _ome_display(ome)
            if node.kind == "member":
                display = _drop_lead_axis(display)
                out["axes"] = "".join(display["axis_names"])
            out.update(display)
            arr_node = self._image_array(arr_node, 0, loc)
        if arr_node.kind == "array":
            meta = arr_node.meta
            shape = tuple(meta.get("shape", ()))
            out["shape"] = shape[1:] if node.kind == "member" else shape
            out["dtype"] = str(_dtype_from_meta(meta) or meta.get("dtype"))
            if "chunk_grid" in meta:
                out["chunks"] = tuple(meta["chunk_grid"]["configuration"]["chunk_shape"])
            elif "chunks" in meta:
                out["chunks"] = tuple(meta["chunks"])
        return out


#: Alias used by the application polystore was extracted from (seed 004).
ZarrStorageBackend = ZarrBackend

_SAVE_KWARGS = frozenset(
    {
        "chunks",
        "axes",
        "pyramid_levels",
        "channel_names",
        "channel_colors",
        "scale",
        "compressor",
        "compression_level",
        "attrs",
        "overwrite",
        "metadata",
        "zarr_format",
    }
)


def _is_num(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _ome_display(ome: Mapping[str, Any]) -> dict[str, Any]:
    """Axis names, level-0 scale and OMERO channel names/colours/windows of an OME image."""
    ms = ome["multiscales"][0]
    axes = [a if isinstance(a, dict) else {"name": str(a)} for a in ms.get("axes") or []]
    names = [str(a.get("name", i)) for i, a in enumerate(axes)]
    out: dict[str, Any] = {"axis_names": names}
    datasets = ms.get("datasets") or []
    transforms = datasets[0].get("coordinateTransformations") if datasets and isinstance(datasets[0], dict) else None
    for transform in transforms or []:
        values = transform.get("scale") if isinstance(transform, dict) and transform.get("type") == "scale" else None
        if isinstance(values, list) and len(values) == len(names) and all(_is_num(v) and v > 0 for v in values):
            out["scale"] = [float(v) for v in values]
    channel = next(
        (i for i, a in enumerate(axes) if a.get("type") == "channel" or ("type" not in a and a.get("name") == "c")),
        None,
    )
    if channel is None:
        return out
    out["channel_axis"] = channel
    omero = ome.get("omero")
    channels = omero.get("channels") if isinstance(omero, dict) else None
    if not isinstance(channels, list) or not channels or not all(isinstance(c, dict) for c in channels):
        return out
    out["channel_names"] = [str(c["label"]) if c.get("label") else None for c in channels]
    colors = [c.get("color") for c in channels]
    if all(isinstance(c, str) and len(c) == 6 and all(ch in "0123456789abcdefABCDEF" for ch in c) for c in colors):
        out["channel_colors"] = [str(c).upper() for c in colors]
    windows = [c.get("window") for c in channels]
    if all(
        isinstance(w, dict) and _is_num(w.get("start")) and _is_num(w.get("end")) and w["start"] < w["end"]
        for w in windows
    ):
        out["contrast_limits"] = [[float(w["start"]), float(w["end"])] for w in windows]
    return out


def _drop_lead_axis(display: dict[str, Any]) -> dict[str, Any]:
    """:func:`_ome_display` for one member of a batch image (axis 0 is the batch axis)."""
    out = dict(display)
    out["axis_names"] = display["axis_names"][1:]
    if "scale" in out:
        out["scale"] = display["scale"][1:]
    channel = out.pop("channel_axis", None)
    if channel is None or channel == 0:  # a member of a batch along c is one channel
        for key in ("channel_names", "channel_colors", "contrast_limits"):
            out.pop(key, None)
    else:
        out["channel_axis"] = channel - 1
    return out


def _is_dask(data: Any) -> bool:
    return type(data).__module__.startswith("dask.") and hasattr(data, "dask") and hasattr(data, "chunks")


def _jsonable(value: Any) -> Any:
    """``value`` with NumPy scalars/arrays turned into plain JSON types."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def _validate_axes(axes: str, ndim: int) -> None:
    if len(axes) != ndim:
        raise ValueError(f"axes {axes!r} has {len(axes)} letters for a {ndim}-D array")
    if not 2 <= ndim <= 5:
        raise ValueError(f"OME-Zarr images have 2 to 5 axes, got {ndim} ({axes!r})")
    if any(a not in OME_AXES for a in axes) or len(set(axes)) != len(axes):
        raise ValueError(f"axes {axes!r} must be distinct letters from {OME_AXES!r}")
    order = [OME_AXES.index(a) for a in axes]
    if order != sorted(order):
        raise ValueError(f"axes {axes!r} must follow OME-NGFF order t, c, z, y, x")
    if not axes.endswith("yx"):
        raise ValueError(f"axes {axes!r} must end with 'yx'")


def _axis_entry(axis: str) -> dict[str, str]:
    entry = {"name": axis, "type": _AXIS_TYPES[axis]}
    return entry


def _downsampled_shape(shape: tuple[int, ...]) -> tuple[int, ...]:
    """Shape after :func:`_downsample_yx` (odd y/x edges dropped; too small: unchanged)."""
    ny, nx = shape[-2] // 2, shape[-1] // 2
    if ny == 0 or nx == 0:
        return shape
    return shape[:-2] + (ny, nx)


def _downsample_yx(data: np.ndarray, axes: str) -> np.ndarray:
    """2x2 mean over y and x (odd edges dropped), keeping the dtype."""
    ny, nx = data.shape[-2] // 2 * 2, data.shape[-1] // 2 * 2
    if ny == 0 or nx == 0:
        return data
    d = data[..., :ny, :nx]
    acc = d[..., 0::2, 0::2].astype(np.float32)
    acc += d[..., 1::2, 0::2]
    acc += d[..., 0::2, 1::2]
    acc += d[..., 1::2, 1::2]
    acc *= 0.25
    if data.dtype.kind in "iub":
        acc = np.rint(acc)
    return acc.astype(data.dtype)


def _check_channels(
    shape: Sequence[int], axes: str, names: Sequence[str] | None, colors: Sequence[str] | None
) -> None:
    """Refuse channel names/colours that do not match the channel axis (before writing)."""
    if (names is not None or colors is not None) and "c" not in axes:
        raise ValueError(f"channel_names/channel_colors need a 'c' axis; axes are {axes!r}")
    if "c" not in axes:
        return
    n = int(shape[axes.index("c")])
    if names is not None and len(names) != n:
        raise ValueError(f"{len(names)} channel_names for {n} channels")
    if colors is not None and len(colors) != n:
        raise ValueError(f"{len(colors)} channel_colors for {n} channels")
    for color in colors or ():
        text = str(color).lstrip("#")
        if len(text) != 6 or any(ch not in "0123456789abcdefABCDEF" for ch in text):
            raise ValueError(f"channel colour {color!r} is not a hex RRGGBB string")


class _ChannelRange:
    """Running per-channel min/max (on a 4x4-subsampled copy) for the OMERO display window."""

    def __init__(self, axes: str, n: int) -> None:
        self.c = axes.index("c")
        self.lo = np.full(n, np.inf)
        self.hi = np.full(n, -np.inf)

    def update(self, slab: np.ndarray, first_index: int) -> None:
        """Fold in ``slab``, whose axis 0 starts at ``first_index`` of the image."""
        sub = np.moveaxis(slab[..., ::4, ::4], self.c, 0)
        if sub.size == 0:
            return
        flat = sub.reshape(sub.shape[0], -1)
        if flat.dtype.kind == "f":
            lo, hi = np.nanmin(flat, axis=1), np.nanmax(flat, axis=1)
        else:
            lo, hi = flat.min(axis=1), flat.max(axis=1)
        idx = slice(first_index, first_index + sub.shape[0]) if self.c == 0 else slice(None)
        self.lo[idx] = np.minimum(self.lo[idx], lo)
        self.hi[idx] = np.maximum(self.hi[idx], hi)


def _omero(
    shape: Sequence[int],
    dtype: np.dtype[Any],
    axes: str,
    names: Sequence[str] | None,
    colors: Sequence[str] | None,
    seen: _ChannelRange | None = None,
) -> dict[str, Any]:
    """OMERO channel metadata: labels, colours, and a display window from the data's range."""
    n = int(shape[axes.index("c")])
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        lo, hi = float(info.min), float(info.max)
    else:
        lo, hi = 0.0, 1.0
    channels = []
    for i in range(n):
        color = (colors[i] if colors is not None else _DEFAULT_COLORS[i % len(_DEFAULT_COLORS)]).lstrip("#").upper()
        start, end = lo, hi
        if seen is not None and np.isfinite(seen.lo[i]) and np.isfinite(seen.hi[i]):
            start, end = float(seen.lo[i]), float(seen.hi[i])
            if end <= start:
                end = start + 1.0
            if dtype.kind == "f":
                lo, hi = min(lo, start), max(hi, end)
        channels.append(
            {
                "label": str(names[i]) if names is not None else f"channel {i}",
                "color": color,
                "active": True,
                "window": {"min": lo, "max": hi, "start": start, "end": end},
            }
        )
    return {"channels": channels, "rdefs": {"model": "color" if n > 1 else "greyscale"}}
