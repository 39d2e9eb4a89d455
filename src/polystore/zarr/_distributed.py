"""Saving on a dask.distributed cluster: chunk-aligned blocks written by the workers, metadata by the client.

The layout on disk is the one :mod:`polystore.zarr._write` writes (the
workers run its chunk writer); only who runs it changes. The client:

1. rechunks the dask array to *blocks*, each a whole number of zarr chunks
   on every axis (and of every pyramid level's chunks on y and x), so no two
   tasks ever write the same chunk;
2. sends one task per block: the block's pixels (computed on the workers by
   dask) and a small plain spec (:func:`store_spec`: protocol, storage
   options, level paths, chunk shapes, codec config). A worker rebuilds the
   store handle from the spec (:func:`fs_from_spec`, cached per process),
   writes the block's chunks of every level and returns the block's
   per-channel min/max;
3. waits for every task; only when all succeeded it writes the metadata
   itself (arrays first, the image group last). The store's publish step
   (:meth:`~polystore.zarr._fs._FS.publish`) wraps all of this: on a local
   store the workers write into the hidden build folder that is swapped in
   after the metadata; on an object store an OME image's levels go to a new
   generation inside the image that its group metadata switches in
   (:mod:`polystore.zarr._generations`, no copy), and a plain array's chunks
   to a hidden staging prefix that :func:`publish_on_cluster` copies into
   place before the metadata. Either way a failed or abandoned save leaves
   the old content.

``docs/distributed.md`` describes deployment, credentials and failures.
"""

from __future__ import annotations

import contextlib
import json
import math
import sys
import threading
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from polystore.config import ZarrConfig
from polystore.zarr._cluster_tasks import cluster_workers, flat_results, grouped, run_tasks
from polystore.zarr._codec import _Codec
from polystore.zarr._fs import _FS, _TMP_MARK, _FsspecFS, _LocalFS
from polystore.zarr._nodes import _Image
from polystore.zarr._ome import _ChannelRange, _downsample_yx
from polystore.zarr._write import _ChunkWriter, level_layout

__all__ = [
    "active_client", "store_spec", "fs_from_spec", "write_on_cluster", "publish_on_cluster", "remove_staging",
    "BLOCK_BYTES",
]

#: A block (one task) grows along its non-y/x axes, chunk by chunk, up to about this many bytes.
BLOCK_BYTES = 16 * 1024 * 1024

_FS_CACHE: dict[str, _FS] = {}
_FS_LOCK = threading.Lock()


def active_client(requested: Any = None) -> Any:
    """The dask.distributed client a save should use, or None (write in this process).

    ``requested`` is a ``distributed.Client``, ``False`` (never use a
    cluster) or None: the
    client that is current (``distributed.get_client()`` / default client),
    if ``distributed`` was imported at all; polystore never imports it itself
    for a save without a client.
    """
    if requested is False:
        return None
    if requested is not None:
        return requested
    if "distributed" not in sys.modules:
        return None
    import distributed

    try:
        return distributed.default_client()  # type: ignore[no-untyped-call]
    except ValueError:
        return None


def store_spec(fs: _FS) -> dict[str, Any]:
    """A plain, JSON-able description of ``fs`` a worker rebuilds it from (no live connection)."""
    return fs.spec()


def fs_from_spec(spec: Mapping[str, Any]) -> _FS:
    """The store handle for ``spec`` (:func:`store_spec`), made once per process."""
    key = json.dumps(spec, sort_keys=True, default=str)
    with _FS_LOCK:
        fs = _FS_CACHE.get(key)
        if fs is None:
            if spec["protocol"] == "file":
                fs = _LocalFS()
            else:
                fs = _FsspecFS(spec["protocol"], spec["storage_options"], int(spec["request_batch_bytes"]),
                               bool(spec.get("use_tensorstore", True)))
            _FS_CACHE[key] = fs
    return fs


_SIZED: list[int] = []


def _match_worker_threads() -> None:
    """In a dask worker, encode with as many threads as the worker runs tasks (once per process).

    A worker started with ``--nthreads N`` runs N tasks at once, each on its
    own thread; polystore's encode pool (one thread per core by default)
    would add its threads on top, so one worker would already fill the
    machine and a second worker process on it gain little. Here the pool
    gets one thread per task thread: with ``--nthreads 1`` a task encodes
    and writes its chunks on its own thread (a local store) or on the one
    pool thread while it sends them (object stores), so a worker uses about
    as many cores as dask gave it. ``POLYSTORE_ZARR_THREADS`` still
    overrides this.
    """
    if _SIZED:
        return
    import os

    from polystore.zarr._workers import resize_pool

    with _FS_LOCK:
        if _SIZED:
            return
        _SIZED.append(1)
        if os.environ.get("POLYSTORE_ZARR_THREADS", "").isdigit():
            return
        try:
            import distributed

            nthreads = int(distributed.get_worker().state.nthreads)
        except (ImportError, ValueError, AttributeError):
            return  # not in a worker: keep the defaults
        resize_pool("write", nthreads)


def block_shape(
    shape: Sequence[int],
    chunks: Sequence[int],
    axes: str | None,
    levels: int,
    itemsize: int,
    dask_chunks: Sequence[Sequence[int]] | None = None,
) -> tuple[int, ...]:
    """The shape of one task's block: whole chunks of every level, grown to about :data:`BLOCK_BYTES`.

    When the dask array's own chunks already are such blocks (regular, whole
    chunks of every level), they are kept: no rechunking.
    """
    block = []
    for i, c in enumerate(chunks):
        yx = axes is not None and axes[i] in "yx"
        block.append(min(int(shape[i]), c * (2 ** (levels - 1) if yx else 1)))
    if dask_chunks is not None:
        own = [int(d[0]) if d else 1 for d in dask_chunks]
        if all(
            all(x == o for x in d[:-1]) and (d[-1] <= o) and (o % b == 0 or o >= s)
            for d, o, b, s in zip(dask_chunks, own, block, shape)
        ):
            return tuple(max(1, o) for o in own)
    for i in reversed(range(len(block))):  # grow the innermost non-y/x axis first (z, then c, then t)
        if axes is not None and axes[i] in "yx" or len(block) > 1 and axes is None and i >= len(block) - 2:
            continue
        while block[i] < shape[i] and math.prod(block) * itemsize * 2 <= BLOCK_BYTES:
            block[i] = min(int(shape[i]), block[i] + chunks[i])
    return tuple(max(1, b) for b in block)


def write_block(spec: Mapping[str, Any], index: Sequence[int], block: Any) -> dict[str, Any]:
    """Worker side: write the chunks of every level that block ``index`` covers; return its channel range.

    ``spec`` is the plain dict :func:`write_on_cluster` builds; ``block`` the
    block's pixels (a NumPy array computed by dask on this worker).
    """
    _match_worker_threads()
    data = np.ascontiguousarray(np.asarray(block))
    fs = fs_from_spec(spec["store"])
    writer = _ChunkWriter()
    writer.config = ZarrConfig()
    codec = _Codec(**spec["codec"])
    axes: str | None = spec["axes"]
    full = spec["block"]
    out: dict[str, Any] = {"c0": 0, "lo": None, "hi": None}
    c = axes.index("c") if axes is not None and "c" in axes else None
    if c is not None and data.dtype.kind in "iuf" and data.size:
        y0, x0 = index[-2] * full[-2], index[-1] * full[-1]
        # the same 4x4 subsample a local save takes (phase of the whole image)
        sub = np.moveaxis(data[..., (-y0) % 4 :: 4, (-x0) % 4 :: 4], c, 0)
        if sub.size:
            rest = tuple(range(1, sub.ndim))  # reduced in place: no copy of the strided subsample
            lo, hi = (np.nanmin, np.nanmax) if sub.dtype.kind == "f" else (np.min, np.max)
            out = {"c0": index[c] * full[c], "lo": lo(sub, axis=rest).tolist(), "hi": hi(sub, axis=rest).tolist()}
    for level, (path, chunks) in enumerate(zip(spec["paths"], spec["chunks"])):
        chunks = tuple(chunks)
        if level:
            if data.shape[-2] < 2 or data.shape[-1] < 2:
                break  # nothing of this block is left on this level (the odd edge is dropped)
            assert axes is not None
            data = _downsample_yx(data, axes)
        offset = []
        for i, (b, ch) in enumerate(zip(full, chunks)):
            yx = axes is not None and axes[i] in "yx"
            offset.append(index[i] * (b >> level if yx else b) // ch)
        writer._write_chunks(
            fs, path, data, chunks, codec, zarr_format=spec["fmt"], skip_empty=spec["skip_empty"],
            grid_offset=offset, new_array=True,  # a level of a new generation or staging prefix
        )
    return out


def _write_here(block: np.ndarray, spec: Mapping[str, Any], block_info: Any = None) -> np.ndarray:
    """:func:`write_block` as a dask block function: a 1x..x1 object array holding its result."""
    out = np.empty((1,) * block.ndim, dtype=object)
    out[(0,) * block.ndim] = write_block(spec, block_info[0]["chunk-location"], block)
    return out


def write_on_cluster(
    writer: _ChunkWriter, client: Any, fs: _FS, dest: str, image: _Image, codec: _Codec, name: str
) -> None:
    """Write ``image`` (a dask array) at ``dest`` with tasks on ``client``'s workers; metadata last, here.

    Raises :class:`~polystore.exceptions.ImageSaveError` when a task failed
    (after every other task has stopped, so nothing writes on afterwards);
    then no metadata was written.
    """
    write_blocks(writer, client, fs, dest, image, codec, name)(dest)


def write_blocks(
    writer: _ChunkWriter,
    client: Any,
    fs: _FS,
    dest: str,
    image: _Image,
    codec: _Codec,
    name: str,
    prefix: str = "",
) -> Callable[[str], None]:
    """Have the workers write every chunk of ``image`` under ``dest``; return the metadata writer.

    The returned function writes the metadata (arrays first, the image group
    last) under the folder it is given: ``dest`` itself, or the place the
    chunks were moved to (:func:`publish_on_cluster`). An OME image's level
    ``k`` is ``<dest>/<prefix><k>`` (``prefix``: a generation, see
    :mod:`polystore.zarr._generations`). Raises
    :class:`~polystore.exceptions.ImageSaveError` when a task failed, after
    every other task has stopped.
    """
    data: Any = image.data
    levels = image.pyramid_levels + 1 if image.axes is not None else 1
    if image.axes is not None and image.scale is not None and len(image.scale) != data.ndim:
        raise ValueError(f"scale has {len(image.scale)} entries for {data.ndim} axes")
    shapes, level_chunks = level_layout(data.shape, image.chunks, levels)
    if image.axes is None:
        level_chunks = [tuple(image.chunks)]
        paths = [dest]
    else:
        paths = [fs.join(dest, f"{prefix}{level}") for level in range(levels)]
    itemsize = np.dtype(data.dtype).itemsize
    full = block_shape(data.shape, image.chunks, image.axes, levels, itemsize, data.chunks)
    spec = {
        "store": store_spec(fs),
        "paths": paths,
        "chunks": [list(c) for c in level_chunks],
        "codec": {"cname": codec.cname, "clevel": codec.clevel, "shuffle": codec.shuffle},
        "fmt": image.zarr_format,
        "skip_empty": not writer.config.write_empty_chunks,
        "axes": image.axes,
        "block": list(full),
    }
    blocks = data.rechunk(full)
    # blockwise, so dask fuses making a block and writing it into one task (no block moves between workers)
    written = blocks.map_blocks(
        _write_here, spec=spec, dtype=object, chunks=tuple((1,) * len(c) for c in blocks.chunks),
        meta=np.empty((0,) * data.ndim, dtype=object), name=f"write_block-{uuid.uuid4().hex}",
    )
    workers = cluster_workers(client)
    block_bytes = math.prod(full) * itemsize
    tasks = grouped(list(written.to_delayed(optimize_graph=True).ravel()), block_bytes, workers["threads"])
    done = run_tasks(client, tasks, f"zarr: could not write {fs.url(dest)!r} on the cluster", workers["hosts"])
    results = [np.asarray(r, dtype=object).flat[0] for r in flat_results(done)]
    if image.axes is None:

        def array_meta(at: str) -> None:
            writer._write_array_meta(
                fs, at, shapes[0], np.dtype(data.dtype), level_chunks[0], codec, image.attrs, None,
                image.names, image.zarr_format,
            )

        return array_meta
    seen = None
    if "c" in image.axes:
        seen = _ChannelRange(image.axes, int(data.shape[image.axes.index("c")]))
        for got in results:
            if got["lo"] is not None:
                span = slice(got["c0"], got["c0"] + len(got["lo"]))
                seen.lo[span] = np.minimum(seen.lo[span], got["lo"])
                seen.hi[span] = np.maximum(seen.hi[span], got["hi"])

    def ome_meta(at: str) -> None:
        writer._write_ome_meta(fs, at, image, codec, name, level_chunks, seen, prefix)

    return ome_meta


def publish_on_cluster(
    writer: _ChunkWriter,
    client: Any,
    fs: _FS,
    target: str,
    image: _Image,
    codec: _Codec,
    name: str,
    guard: contextlib.AbstractContextManager[Any] = contextlib.nullcontext(),
    in_store: bool = True,
) -> None:
    """Save ``image`` at ``target`` on the cluster so that the old content stays readable until the new is whole.

    Stores that rename (local disks) build in the hidden folder their
    :meth:`~polystore.zarr._fs._FS.publish` swaps in. On object stores an
    OME image is written as a new generation inside the image group and
    switched in by its metadata (:mod:`polystore.zarr._generations`: no
    copy), when the image is a node inside its store (``in_store``; the
    store root is staged: a store without metadata that holds only a
    generation would show as a folder). Otherwise (a plain array, an image
    at a store root), as object stores cannot rename a tree, the workers
    write the chunks under a hidden *staging* prefix beside the target (``.<name>.polystore-tmp-<id>``, which listings
    and reads ignore) while the old image stays as it was; only when every
    task succeeded does the client publish: delete the old image (metadata
    first), copy the staged chunks into place on the server (no pixels pass
    through the client), write the metadata last, and delete the staging
    prefix, together with the staging prefixes earlier saves of ``target``
    left behind (a killed client's, whose orphaned tasks wrote on). A failed
    save deletes its own staging prefix and leaves the old image untouched.
    """
    if fs.supports_rename:
        fs.publish(target, lambda dest: write_on_cluster(writer, client, fs, dest, image, codec, name), guard)
        return
    if image.axes is not None and in_store:
        from polystore.zarr._generations import publish_generation

        publish_generation(writer, client, fs, target, image, codec, name, guard)
        return
    staging = staging_path(fs, target, uuid.uuid4().hex[:8])
    try:
        write_meta = write_blocks(writer, client, fs, staging, image, codec, name)

        def build(dest: str) -> None:
            fs.copytree(staging, dest)
            write_meta(dest)

        fs.publish(target, build, guard)
    finally:
        with contextlib.suppress(OSError):
            fs.rmtree(staging)
    remove_staging(fs, target)


def staging_path(fs: _FS, target: str, token: str) -> str:
    """The hidden staging prefix of a cluster save of ``target`` on an object store."""
    parent, _, base = target.rstrip("/").rpartition("/")
    return fs.join(parent, f".{base}{_TMP_MARK}{token}") if parent else f".{base}{_TMP_MARK}{token}"


def remove_staging(fs: _FS, target: str) -> list[str]:
    """Delete every staging prefix of ``target`` (:func:`staging_path`); return them.

    Called after a cluster save of ``target`` published; a save of the same
    path running at the same time from another client would lose its chunks
    (saving one path from two clients at once is a race in any case).
    """
    parent, _, base = target.rstrip("/").rpartition("/")
    mark = f".{base}{_TMP_MARK}"
    removed = []
    for entry in fs.listdir(parent) or []:
        if entry.startswith(mark):
            path = fs.join(parent, entry) if parent else entry
            with contextlib.suppress(OSError):
                fs.rmtree(path)
                removed.append(path)
    return removed
