"""Configuration objects: backend names, zarr compression/chunking, memory spill (VFS).

Plain dataclasses and enums; importing this module imports no optional runtime.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

__all__ = [
    "Backend",
    "MaterializationBackend",
    "ZarrCompressor",
    "ZarrChunkStrategy",
    "CompressorConfig",
    "ZarrConfig",
    "VFSConfig",
]


class Backend(str, enum.Enum):
    """Names of the built-in backends; ``Backend.DISK.value == "disk"``."""

    DISK = "disk"
    MEMORY = "memory"
    ZARR = "zarr"
    STREAMING = "streaming"
    NAPARI = "napari"
    FIJI = "fiji"


class MaterializationBackend(str, enum.Enum):
    """Backends that persist results (where a pipeline's final output goes)."""

    DISK = "disk"
    ZARR = "zarr"


class ZarrCompressor(str, enum.Enum):
    """Compression codecs for zarr arrays."""

    NONE = "none"
    LZ4 = "lz4"  # Blosc LZ4 with byte shuffle: the fast default
    ZSTD = "zstd"  # Blosc Zstd with byte shuffle: smaller, slower
    BLOSC_LZ4HC = "lz4hc"
    BLOSC_ZLIB = "zlib"


class ZarrChunkStrategy(str, enum.Enum):
    """How chunk shapes are chosen when ``chunks=`` is not given."""

    ADAPTIVE = "adaptive"  # from shape and dtype: see docs/zarr-layout.md
    FIXED = "fixed"  # ZarrConfig.chunks, clipped to the array shape
    SINGLE = "single"  # one chunk per array


@dataclass(frozen=True)
class CompressorConfig:
    """A compressor by name, as the existing package configured zarr (``CompressorConfig("zstd")``).

    ``name`` is a :class:`ZarrCompressor` value (``"none"``, ``"lz4"``,
    ``"zstd"``, ``"lz4hc"``, ``"zlib"``). ``ZarrConfig(compressor=CompressorConfig(...))``
    is accepted and means ``ZarrConfig(compressor=ZarrCompressor(name))``.
    """

    name: str = "none"

    def __post_init__(self) -> None:
        ZarrCompressor(self.name)  # ValueError naming the bad value

    @property
    def compressor(self) -> ZarrCompressor:
        """The :class:`ZarrCompressor` this names."""
        return ZarrCompressor(self.name)

    def create_compressor(self, level: int | None, shuffle: bool = True) -> Any:
        """A numcodecs compressor object for this name (None for ``"none"``); needs the zarr extra."""
        if self.compressor is ZarrCompressor.NONE:
            return None
        from numcodecs import Blosc

        cname = {"lz4": "lz4", "zstd": "zstd", "lz4hc": "lz4hc", "zlib": "zlib"}[self.name]
        return Blosc(cname=cname, clevel=1 if level is None else level,
                     shuffle=Blosc.SHUFFLE if shuffle else Blosc.NOSHUFFLE)


@dataclass(frozen=True)
class ZarrConfig:
    """How the zarr backend compresses and chunks arrays. Defaults favour speed."""

    compressor: ZarrCompressor = ZarrCompressor.LZ4
    compression_level: int = 1
    chunk_strategy: ZarrChunkStrategy = ZarrChunkStrategy.ADAPTIVE
    #: Used by FIXED: chunk shape for the trailing dimensions (clipped to the array).
    chunks: tuple[int, ...] | None = None
    #: Target bytes per chunk for ADAPTIVE.
    target_chunk_bytes: int = 2 * 1024 * 1024
    #: Skip zarr's all-fill-value scan of every chunk on write (it costs 2-3x).
    write_empty_chunks: bool = True
    #: Format of new stores: 3 (OME-NGFF 0.5 images) or 2 (OME-NGFF 0.4, for older readers).
    zarr_format: int = 3
    #: Bytes of a dask array computed at once when saving it (whole chunks along axis 0).
    slab_bytes: int = 256 * 1024 * 1024
    #: Seconds a save into a batch waits for another process's lock on it before ImageSaveError.
    lock_timeout: float = 60.0
    #: Times a load starts over when the array changed under it (then ImageLoadError).
    read_retries: int = 20
    #: Object stores: bytes of encoded chunks sent in one batch of concurrent PUTs, and
    #: (divided by the chunk size, at least 8) chunks fetched in one batch of GETs.
    #: Larger batches keep more requests in flight and more bytes in RAM.
    request_batch_bytes: int = 64 * 1024 * 1024
    #: Largest chunk whose read and decode buffers each reading thread of polystore's own
    #: reader keeps for the next chunk (larger chunks get fresh buffers each time). Up to about twice this stays
    #: allocated per read thread while the process lives.
    keep_buffer_bytes: int = 64 * 1024 * 1024
    #: Frames saved with ``index=`` that wait for the rest of their chunk row: at most this many
    #: bytes of buffers per image (at least one chunk row), then the oldest row is written as it is.
    frame_buffer_bytes: int = 256 * 1024 * 1024
    #: Blocks of a lazy load (``load(..., lazy=True)``) read by polystore's own reader: whole
    #: chunks, merged (last axis first, slabs in C order) up to this many bytes per dask block,
    #: decoded in parallel inside the block's task (fewer dask tasks: docs/performance.md);
    #: 0 keeps one block per chunk. A slice of a block reads only the chunks it touches.
    lazy_block_bytes: int = 8 * 1024 * 1024
    #: Whole-array loads and writes of new arrays on local stores use zarrs' Rust codec pipeline
    #: when the ``zarrs`` package (0.2.x) is installed (it was faster: docs/performance.md);
    #: False keeps polystore's own codec path everywhere. Batch members always use the own path.
    use_zarrs: bool = True
    #: Object stores (S3), where the ``tensorstore`` package is installed and the ``storage_options``
    #: translate exactly into its S3 kvstore (``polystore.zarr._ts_kvstore``): reads of arrays go
    #: through tensorstore's zarr driver; a new v3 array's chunks are encoded and sent by its zarr3
    #: driver and other chunks sent through its kvstore, polystore writing the metadata last (it was
    #: faster, with far less CPU per request than s3fs: docs/performance.md). False keeps polystore's
    #: own codec over s3fs.
    use_tensorstore: bool = True

    def __post_init__(self) -> None:
        if isinstance(self.compressor, CompressorConfig):  # the existing package's spelling
            object.__setattr__(self, "compressor", self.compressor.compressor)
        if self.lock_timeout <= 0 or self.read_retries < 1 or self.slab_bytes < 1 or min(self.request_batch_bytes, self.keep_buffer_bytes, self.frame_buffer_bytes) < 1:
            raise ValueError("lock_timeout, slab_bytes, request_batch_bytes, keep_buffer_bytes and frame_buffer_bytes must be > 0 and read_retries >= 1")
        if self.lazy_block_bytes < 0:
            raise ValueError(f"lazy_block_bytes must be >= 0, got {self.lazy_block_bytes}")
        if not 0 <= self.compression_level <= 9:
            raise ValueError(f"compression_level must be 0..9, got {self.compression_level}")
        if self.zarr_format not in (2, 3):
            raise ValueError(f"zarr_format must be 2 or 3, got {self.zarr_format}")


@dataclass(frozen=True)
class VFSConfig:
    """Memory backend limits: keep arrays in RAM up to ``memory_limit_gb``, then spill.

    ``intermediate_backend`` is where pipeline intermediates live (memory);
    ``materialization_backend`` is where they go once memory is full (zarr).
    """

    intermediate_backend: Backend = Backend.MEMORY
    materialization_backend: MaterializationBackend = MaterializationBackend.ZARR
    memory_limit_gb: float | None = None
    #: Where spilled arrays are written (a zarr store path or URL).
    spill_path: str | None = None
