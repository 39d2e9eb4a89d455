"""Compressors: the Blosc codec polystore writes, and reading a store's codec back."""

from __future__ import annotations

import ctypes
import os
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
import numcodecs.blosc
from numcodecs import Blosc

from polystore.config import ZarrCompressor, ZarrConfig
from polystore.zarr._dtypes import _dtype_from_meta


_BLOSC_NAMES = {
    ZarrCompressor.LZ4: "lz4",
    ZarrCompressor.ZSTD: "zstd",
    ZarrCompressor.BLOSC_LZ4HC: "lz4hc",
    ZarrCompressor.BLOSC_ZLIB: "zlib",
}
_SHUFFLE_IDS = {"noshuffle": 0, "shuffle": 1, "bitshuffle": 2}


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

    def encode_chunk(self, block: np.ndarray, numcodec: Blosc | None) -> bytes | memoryview:
        """``block`` (C-contiguous) encoded as ``numcodec.encode(block)`` would, maybe in a reused buffer.

        ``numcodec`` is :meth:`numcodec`'s object (None: raw bytes, a view of
        ``block``). Without Blosc's own threads (``numcodecs.blosc.use_threads``
        False, which zarr-python sets, or None off the main thread) numcodecs
        compresses with Blosc's one-thread context call into a new buffer of
        the input's size, then copies the frame into a second, exact-size
        bytes object. Here the same C call writes into this thread's scratch
        buffer and a view of it is returned: the same frame without two large
        allocations per chunk (in a dask worker, whose environment
        (``MALLOC_TRIM_THRESHOLD_``) makes glibc map and unmap every allocation
        above 128 KiB, each costs page faults and a zeroing pass over its
        memory). The view is valid until this thread encodes again: write it
        out first. Where numcodecs would use Blosc's threads, or the C call is
        not exported, this is ``numcodec.encode``.
        """
        if numcodec is None:
            return block.reshape(-1).view(np.uint8).data
        compress = _blosc_compress_ctx()
        use = numcodecs.blosc.use_threads
        if (
            compress is None
            or not isinstance(numcodec, Blosc)  # another codec object (a wrapper): its own encode
            or use is True
            or (use is None and threading.current_thread() is threading.main_thread())
            or numcodec.shuffle not in (0, 1, 2)  # AUTOSHUFFLE is resolved by numcodecs
            or block.nbytes > numcodecs.blosc.MAX_BUFFERSIZE
        ):
            return bytes(numcodec.encode(block))
        typesize = getattr(numcodec, "_typesize", None) or block.itemsize
        need = block.nbytes + numcodecs.blosc.MAX_OVERHEAD
        scratch: np.ndarray | None = getattr(_SCRATCH, "buf", None)
        if scratch is None or scratch.nbytes < need:
            scratch = _SCRATCH.buf = np.empty(need, np.uint8)
        got = compress(
            numcodec.clevel, numcodec.shuffle, typesize, block.nbytes, block.ctypes.data,
            scratch.ctypes.data, need, numcodec.cname.encode(), numcodec.blocksize, 1,
        )
        if got <= 0:
            raise RuntimeError(f"error during blosc compression: {got}")
        return scratch.data[:got]


_SCRATCH = threading.local()
_COMPRESS: list[Any] = []


def _blosc_compress_ctx() -> Any:
    """``blosc_compress_ctx`` of the Blosc library inside numcodecs' extension (None if not exported).

    The extension links c-blosc statically and exports its C API; a call
    through ctypes releases the GIL, as numcodecs' own call does.
    """
    if not _COMPRESS:
        fn: Any = None
        try:
            fn = ctypes.CDLL(numcodecs.blosc.__file__).blosc_compress_ctx
            fn.argtypes = [
                ctypes.c_int, ctypes.c_int, ctypes.c_size_t, ctypes.c_size_t, ctypes.c_void_p, ctypes.c_void_p,
                ctypes.c_size_t, ctypes.c_char_p, ctypes.c_size_t, ctypes.c_int,
            ]
            fn.restype = ctypes.c_int
        except (OSError, AttributeError, TypeError):
            fn = None
        _COMPRESS.append(fn)
    return _COMPRESS[0]


def blosc_frame_problem(raw: bytes | memoryview, nbytes: int | None, size: int | None = None) -> str | None:
    """Why ``raw`` is not one complete Blosc (1.x) frame holding ``nbytes`` bytes, or None.

    ``nbytes`` None skips the decompressed-size check; ``size`` is the
    frame's length when ``raw`` holds only its start (the header).

    Checked before decoding, because Blosc trusts its header: a frame cut
    short (a truncated file) decodes "without error" into garbage read past
    the buffer, or crashes the process. The 16-byte header holds the
    decompressed size (bytes 4-7), the block size (8-11) and the compressed
    size (12-15); an uncompressed ("memcpyed", flag bit 1) frame is the
    header plus the data, any other holds one start offset per block, each
    inside the frame.
    """
    size = len(raw) if size is None else size
    if size < 16:
        return f"{size} bytes, shorter than a Blosc header (16)"
    header = bytes(raw[:16])
    held = int.from_bytes(header[4:8], "little")
    blocksize = int.from_bytes(header[8:12], "little")
    cbytes = int.from_bytes(header[12:16], "little")
    if cbytes != size:
        return f"{size} bytes, but its Blosc header says {cbytes} (truncated or padded)"
    if nbytes is not None and held != nbytes:
        return f"it holds {held} bytes, expected {nbytes}"
    if header[2] & 0x2:  # memcpyed: the data follows the header as is
        return None if cbytes == held + 16 else f"uncompressed Blosc frame of {cbytes} bytes for {held}"
    if held == 0:
        return None
    if blocksize <= 0:
        return f"invalid Blosc block size {blocksize}"
    nblocks = -(-held // blocksize)
    table_end = 16 + 4 * nblocks
    if table_end > cbytes:
        return f"Blosc frame of {cbytes} bytes cannot hold {nblocks} block offsets"
    if len(raw) < table_end:
        return None  # only the header was given
    starts = np.frombuffer(raw, dtype="<i4", count=nblocks, offset=16)
    if nblocks and (int(starts.min()) < table_end or int(starts.max()) >= cbytes):
        return "a Blosc block offset points outside the frame"
    return None


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


def ends_with_blosc(meta: Mapping[str, Any]) -> bool:
    """True when the last codec of an array (v3 ``codecs``, v2 ``compressor``) is Blosc."""
    codecs = meta.get("codecs")
    if isinstance(codecs, list) and codecs:
        last = codecs[-1]
        return isinstance(last, dict) and last.get("name") == "blosc"
    comp = meta.get("compressor")
    return isinstance(comp, dict) and comp.get("id") == "blosc"


def blosc_file_problem(path: str) -> str | None:
    """Why the chunk file at ``path`` is not one whole Blosc frame, or None (also when it is missing)."""
    try:
        with open(path, "rb") as f:
            head = f.read(16)
            size = os.fstat(f.fileno()).st_size
    except OSError:
        return None  # missing (the fill value) or vanished meanwhile: zarr-python reports what it finds
    return blosc_frame_problem(head, None, size)


def truncated_blosc_chunk(folder: str, prefix: str = "") -> tuple[str, str] | None:
    """The first chunk file under local array ``folder`` that is not a whole Blosc frame: (key, why).

    For arrays read through zarr-python, whose Blosc decoder trusts the
    header too: each file's header is read and its compressed size compared
    with the file's size. ``prefix`` limits the check to keys starting with it.
    """
    for dirpath, dirnames, filenames in os.walk(folder):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if name.startswith(".") or name == "zarr.json":
                continue
            path = os.path.join(dirpath, name)
            key = os.path.relpath(path, folder).replace(os.sep, "/")
            if prefix and not key.startswith(prefix):
                continue
            problem = blosc_file_problem(path)
            if problem is not None:
                return key, problem
    return None
