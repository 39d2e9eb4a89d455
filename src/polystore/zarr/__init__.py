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

Layout of this package (``polystore.zarr`` re-exports every name below, so
``from polystore.zarr import ...`` keeps working for all of them):

- ``backend``: :class:`ZarrBackend` (alias ``ZarrStorageBackend``), a facade: the
  public methods, each handing over to the modules below.
- ``_chunks``: :func:`adaptive_chunks`, :func:`resolve_chunks`.
- ``_codec``: the Blosc codec polystore writes; reading a store's codec back.
- ``_dtypes``: dtypes in zarr metadata and their fill values.
- ``_meta``: zarr v2/v3 array and group metadata documents.
- ``_model``: typed, validated metadata read from a store (``ArrayMeta``,
  ``GroupMeta``, ``Multiscale``); hostile metadata is refused here.
- ``_fs``: worker pools; the store-access seam (local and fsspec): containment,
  atomic publish, local/remote differences.
- ``_nodes``: what is at a path, where it is, what is to be written.
- ``_locate``: store boundary, root containment, node lookup (the backend's paths).
- ``_save``: saving one array or image (keywords, parent groups, atomic publish).
- ``_load``: loading (resolve, eager read pinned to one version, lazy dask arrays).
- ``_listing``: listings and ``info``.
- ``_tree``: delete, copy, move.
- ``_read``: reading chunks straight from a store.
- ``_write``: writing chunks (dask slab by slab), array metadata, OME pyramids;
  putting a finished tree in place, removing what killed writers left.
- ``_batch``: the batch layout (names, member units, lock, replace, append, delete).
- ``_pins``: one version per load (pinned folders, start over on a change).
- ``_ome``: OME-NGFF metadata (axes, pyramids, OMERO channels).

The tunables are fields of :class:`~polystore.config.ZarrConfig`; ``POLYSTORE_ZARR_THREADS``
(worker threads, process-wide like the pools) is the one environment setting.
"""

from __future__ import annotations

from polystore.exceptions import MissingDependencyError

try:
    import zarr  # noqa: F401
    from numcodecs import Blosc  # noqa: F401
except ImportError as _exc:  # pragma: no cover - exercised only without the extra
    raise MissingDependencyError("zarr", "zarr", "the zarr backend") from _exc

from polystore.zarr._chunks import (
    adaptive_chunks as adaptive_chunks,
    resolve_chunks as resolve_chunks,
)
from polystore.zarr._dtypes import (
    _check_dtype as _check_dtype,
    _dtype_from_meta as _dtype_from_meta,
    _fill_value as _fill_value,
)
from polystore.zarr._codec import (
    _BLOSC_NAMES as _BLOSC_NAMES,
    _Codec as _Codec,
    _SHUFFLE_IDS as _SHUFFLE_IDS,
    _codec_for as _codec_for,
    _codec_from_metadata as _codec_from_metadata,
)
from polystore.zarr._meta import (
    _META as _META,
    _V2_META as _V2_META,
    _array_metadata as _array_metadata,
    _array_metadata_v2 as _array_metadata_v2,
    _dumps as _dumps,
    _group_metadata as _group_metadata,
    _write_group as _write_group,
)
from polystore.zarr._workers import (
    _POOLS as _POOLS,
    _POOL_LOCK as _POOL_LOCK,
    _forget_pools_after_fork as _forget_pools_after_fork,
    _pool as _pool,
)
from polystore.zarr._fs import (
    _FS as _FS,
    _FsspecFS as _FsspecFS,
    _LocalFS as _LocalFS,
    _MMAP_FLAGS as _MMAP_FLAGS,
    _OLD_MARK as _OLD_MARK,
    _SCRATCH as _SCRATCH,
    _TMP_MARK as _TMP_MARK,
)
from polystore.zarr._nodes import (
    _Image as _Image,
    _Loc as _Loc,
    _Node as _Node,
    _is_hidden as _is_hidden,
)
from polystore.zarr._read import (
    _ArrayReader as _ArrayReader,
)
from polystore.zarr._ome import (
    OME_AXES as OME_AXES,
    _AXIS_TYPES as _AXIS_TYPES,
    _ChannelRange as _ChannelRange,
    _DEFAULT_COLORS as _DEFAULT_COLORS,
    _axis_entry as _axis_entry,
    _check_channels as _check_channels,
    _downsample_yx as _downsample_yx,
    _downsampled_shape as _downsampled_shape,
    _drop_lead_axis as _drop_lead_axis,
    _is_dask as _is_dask,
    _is_num as _is_num,
    _jsonable as _jsonable,
    _ome_display as _ome_display,
    _omero as _omero,
    _validate_axes as _validate_axes,
)
from polystore.zarr._write import (
    _ChunkWriter as _ChunkWriter,
)
from polystore.zarr.backend import (
    ZarrBackend as ZarrBackend,
    ZarrStorageBackend as ZarrStorageBackend,
    _SAVE_KWARGS as _SAVE_KWARGS,
)

__all__ = [
    "ZarrBackend",
    "ZarrStorageBackend",
    "adaptive_chunks",
    "resolve_chunks",
    "OME_AXES",
]
