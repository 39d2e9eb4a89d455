"""The zarr suite's lazy (dask) and object-store (moto S3) rows, for issue 9's delegation rule.

Lazy: the same LZ4 stores the suite wrote (polystore, zarr-python, tensorstore;
same data, chunks and codec) opened lazily and computed, each trial opening
the array as ``load(path, lazy=True)`` does: one 8 MB frame
(``[mid].compute()``) and the whole array (``.compute()``, dask's default
threaded scheduler). zarr-python is wrapped with ``dask.array.from_zarr``
(with its default codec pipeline and with zarrs), tensorstore with
``dask.array.from_array`` over an adapter that reads each block.

Object store (``python -m bench zarr --s3``): a local moto S3 server (one
Python process: these figures say nothing about real S3, only how the
clients compare on it); ``--s3-frames`` frames are written by polystore,
zarr-python (``FsspecStore`` over s3fs) and tensorstore (``s3`` kvstore),
then read whole, one frame eagerly, and one frame lazily. polystore's reads
there go through tensorstore (``_ts_delegate``), and so does a new array's
save (tensorstore encodes and sends its chunks, ``_ts_write``); its own path
(codec over s3fs, ``ZarrConfig(use_tensorstore=False)``) is timed beside
them, and the delegation rule's ratio is the own path's.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from bench._timing import report

Cases = dict[str, tuple[Callable[[], Any], Callable[[], None] | None]]


class _TSBlocks:
    """A tensorstore array as dask's ``from_array`` wants it (``__getitem__`` returns NumPy)."""

    def __init__(self, store: Any) -> None:
        self.store = store
        self.shape = tuple(store.shape)
        self.dtype = np.dtype(store.dtype.numpy_dtype)
        self.ndim = len(self.shape)

    def __getitem__(self, item: Any) -> np.ndarray:
        return np.asarray(self.store[item].read().result())


def _lazy_fns(open_ours: Callable[[], Any], zarr_path: str | None, ts_spec: dict[str, Any] | None,
              zarr_store: Callable[[], Any] | None = None) -> dict[str, Callable[[], Any]]:
    """A function per implementation that opens the array lazily (a dask array)."""
    import dask.array as da
    import zarr

    from bench.zarr_bench import CHUNKS

    def zarr_open(pipeline: str | None) -> Any:
        target: Any = zarr_store() if zarr_store is not None else zarr_path
        if pipeline is None:
            return da.from_zarr(zarr.open_array(target, mode="r"))
        with zarr.config.set({"codec_pipeline.path": pipeline}):
            arr = zarr.open_array(target, mode="r")
        return da.from_zarr(arr)

    fns: dict[str, Callable[[], Any]] = {
        "ours": open_ours,
        "zarr": lambda: zarr_open(None),
        "zarrs": lambda: zarr_open("zarrs.ZarrsCodecPipeline"),
    }
    if ts_spec is not None:
        import tensorstore as ts

        fns["ts"] = lambda: da.from_array(_TSBlocks(ts.open(ts_spec).result()), chunks=CHUNKS, asarray=False)
    return fns


def _usable(fns: dict[str, Callable[[], Any]], check: Callable[[Any], bool]) -> dict[str, Callable[[], Any]]:
    """The implementations that run here and give the right data (others are reported as n/a)."""
    kept = {}
    for name, fn in fns.items():
        try:
            ok = check(fn())
        except Exception as exc:  # noqa: BLE001 - a library that cannot read this store is left out
            print(f"    ({name}: n/a here: {type(exc).__name__}: {str(exc)[:120]})", flush=True)
            continue
        if ok:
            kept[name] = fn
        else:
            print(f"    ({name}: n/a here: wrong data)", flush=True)
    return kept


def _rows(title: str, times: dict[str, float], unit_scale: float, unit: str, higher: bool) -> None:
    from bench.zarr_bench import _NAMES, CPU

    ours = times["ours"]
    for name, theirs in times.items():
        if name in ("ours", "own"):
            continue
        report(f"{title} vs {_NAMES[name]}", unit_scale / ours if higher else 1e3 * ours,
               unit_scale / theirs if higher else 1e3 * theirs, unit, None, higher_is_better=higher)
    best = min((v, k) for k, v in times.items() if k not in ("ours", "own"))
    own = times.get("own", ours)  # the rule judges polystore's own codec path
    ratio = best[0] / own
    verdict = "keep own path" if ratio >= 1.3 else "own path < 1.3x: delegation rule applies"
    cpu = ", ".join(f"{_NAMES[k]} {1e3 * CPU[k]:.1f}" for k in times if k in CPU)
    extra = f"; own codec path / delegated: {ours / own:.2f}x" if "own" in times else ""
    print(f"{title + ', own codec path vs best library, info':<48} best {_NAMES[best[1]]}: ratio {ratio:5.2f}x "
          f"({verdict}){extra}; cpu ms: {cpu}", flush=True)


def lazy_rows(backend: Any, own: Any, tag: str, data: np.ndarray, zarr_path: str, ts_path: str, repeat: int) -> None:
    """Lazy frame and lazy whole-array rows (the suite's stores, local); ``own`` has ``use_zarrs=False``."""
    from bench.zarr_bench import CPU, _round_robin

    mid = data.shape[0] // 2
    ts_spec = {"driver": "zarr3", "kvstore": {"driver": "file", "path": ts_path}}
    fns = _lazy_fns(lambda: backend.load(f"ours-{tag}.zarr", lazy=True), zarr_path, ts_spec)
    fns["own"] = lambda: own.load(f"ours-{tag}.zarr", lazy=True)
    fns = _usable(fns, lambda arr: bool(np.array_equal(arr[mid].compute(), data[mid])))
    CPU.clear()
    frame = _round_robin({k: (lambda f=f: f()[mid].compute(), None) for k, f in fns.items()}, max(20, 10 * repeat), 0)
    _rows(f"lazy: one 8 MB frame {tag}", frame, 1.0, "ms", False)
    CPU.clear()
    whole = _round_robin({k: (lambda f=f: f().compute(), None) for k, f in fns.items()}, max(4, repeat),
                         data.nbytes + (64 << 20))
    _rows(f"lazy: whole array {tag}", whole, data.nbytes / 1e9, "GB/s", True)


@contextlib.contextmanager
def _moto_options() -> Iterator[dict[str, Any]]:
    from bench.distributed_bench import _moto

    with _moto() as (options, _server):
        import boto3

        endpoint = options["client_kwargs"]["endpoint_url"]
        boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="bench", aws_secret_access_key="bench",
                     region_name="us-east-1").create_bucket(Bucket="bench")
        yield options


def s3_rows(data: np.ndarray, repeat: int) -> None:
    """Write, read whole, read one frame and one lazy frame on moto S3: polystore vs the libraries."""
    import zarr
    from zarr.codecs import BloscCodec
    from zarr.storage import FsspecStore

    from bench.zarr_bench import CHUNKS, CPU, _round_robin, _tensorstore_spec
    from polystore.config import ZarrCompressor, ZarrConfig
    from polystore.zarr import ZarrBackend

    mid = data.shape[0] // 2
    with _moto_options() as options:
        endpoint = options["client_kwargs"]["endpoint_url"]
        os.environ.update(AWS_ACCESS_KEY_ID="bench", AWS_SECRET_ACCESS_KEY="bench", AWS_REGION="us-east-1")
        backend = ZarrBackend(root="s3://bench/p", storage_options=options,
                              config=ZarrConfig(compressor=ZarrCompressor.LZ4))
        # the rule judges polystore's own path (its codec over s3fs); reads and saves are delegated to tensorstore
        own = ZarrBackend(root="s3://bench/p", storage_options=options,
                          config=ZarrConfig(compressor=ZarrCompressor.LZ4, use_tensorstore=False))

        def zstore() -> Any:
            return FsspecStore.from_url("s3://bench/z.zarr", storage_options=options, read_only=False)

        def zarr_write() -> None:
            z = zarr.create_array(zstore(), shape=data.shape, dtype=data.dtype, chunks=CHUNKS, overwrite=True,
                                  compressors=BloscCodec(cname="lz4", clevel=1, shuffle="shuffle"))
            z[:] = data

        spec = _tensorstore_spec("", data, True)
        spec["kvstore"] = {"driver": "s3", "bucket": "bench", "path": "t.zarr/", "endpoint": endpoint,
                           "aws_region": "us-east-1", "aws_credentials": {"type": "environment"}}

        def ts_write() -> None:
            import tensorstore as ts

            ts.open(spec).result()[...] = data

        # a new array's save is delegated too (tensorstore encodes and sends the chunks, polystore writes
        # the metadata: ``_ts_write``); the own path's save is timed beside it
        writes: Cases = {"ours": (lambda: backend.save(data, "s.zarr", chunks=CHUNKS), None),
                         "own": (lambda: own.save(data, "own.zarr", chunks=CHUNKS), None),
                         "zarr": (zarr_write, None), "ts": (ts_write, None)}
        print(f"\n## moto S3 ({endpoint}): {data.shape} {data.dtype} ({data.nbytes / 2**20:.0f} MiB), LZ4, "
              f"load average {os.getloadavg()[0]:.1f}", flush=True)
        for name in list(writes):
            try:
                writes[name][0]()
            except Exception as exc:  # noqa: BLE001 - e.g. tensorstore without S3 credentials support
                print(f"    ({name}: n/a here: {type(exc).__name__}: {str(exc)[:120]})", flush=True)
                del writes[name]
        CPU.clear()
        start = time.perf_counter()
        wtimes = _round_robin(writes, repeat, 0)
        _rows("S3 write lz4", wtimes, data.nbytes / 1e9, "GB/s", True)
        ts_read = {k: v for k, v in spec.items() if k in ("driver", "kvstore")}

        def zarr_array(pipeline: str | None) -> Any:
            if pipeline is None:
                return zarr.open_array(zstore(), mode="r")
            with zarr.config.set({"codec_pipeline.path": pipeline}):
                return zarr.open_array(zstore(), mode="r")

        def ts_open() -> Any:
            import tensorstore as ts

            return ts.open(ts_read).result()

        eager: dict[str, Callable[[Any], Any]] = {
            "ours": lambda sel: backend.load("s.zarr") if sel is None else backend.load("s.zarr")[sel],
            "own": lambda sel: own.load("s.zarr") if sel is None else own.load("s.zarr")[sel],
            "zarr": lambda sel: zarr_array(None)[... if sel is None else sel],
            "zarrs": lambda sel: zarr_array("zarrs.ZarrsCodecPipeline")[... if sel is None else sel],
        }
        if "ts" in writes:
            eager["ts"] = lambda sel: ts_open()[... if sel is None else sel].read().result()
        eager = {k: f for k, f in eager.items() if k in _usable(
            {k: (lambda f=f: f(mid)) for k, f in eager.items()}, lambda got: bool(np.array_equal(got, data[mid])))}
        CPU.clear()
        _rows("S3 read whole lz4", _round_robin({k: (lambda f=f: f(None), None) for k, f in eager.items()},
                                                 repeat, 0), data.nbytes / 1e9, "GB/s", True)
        # one frame: polystore's eager load of a member of a batch, the libraries' frame of their array
        backend.save_batch(list(data), [f"b.zarr/f{i}" for i in range(data.shape[0])], chunks=CHUNKS)
        eager["ours"] = lambda sel: backend.load(f"b.zarr/f{mid}")
        eager["own"] = lambda sel: own.load(f"b.zarr/f{mid}")
        CPU.clear()
        _rows("S3 one 8 MB frame lz4", _round_robin({k: (lambda f=f: f(mid), None) for k, f in eager.items()},
                                                     max(6, 3 * repeat), 0), 1.0, "ms", False)
        lazy_fns = _lazy_fns(lambda: backend.load("s.zarr", lazy=True), None, ts_read if "ts" in writes else None,
                             zarr_store=zstore)
        lazy_fns["own"] = lambda: own.load("s.zarr", lazy=True)
        lazy = _usable(lazy_fns, lambda arr: bool(np.array_equal(arr[mid].compute(), data[mid])))
        CPU.clear()
        _rows("S3 lazy: one 8 MB frame lz4", _round_robin({k: (lambda f=f: f()[mid].compute(), None)
                                                           for k, f in lazy.items()}, max(6, 3 * repeat), 0),
              1.0, "ms", False)
        print(f"(S3 part took {time.perf_counter() - start:.0f} s)", flush=True)
