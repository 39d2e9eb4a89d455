"""``python -m bench distributed``: saving a dask array on a dask.distributed LocalCluster (issue 14).

polystore (``ZarrBackend.save(..., client=)``: workers write chunk-aligned
blocks, the client publishes the metadata) against ``dask.array.to_zarr``
into a zarr-python array with the same chunks and codec (Blosc LZ4 level 1,
byte shuffle), on a LocalCluster of 1 and then 2 worker processes, to a
local store and to a moto S3 server, all in one run.

Both writers run on the same cluster, configured alike: worker processes
with ``threads_per_worker=1`` (one dask task at a time per worker).
polystore's workers size its encode pool to that (one thread per task
thread); zarr-python encodes in its own asyncio thread pool, which dask's
setting does not bound. The line under each figure prints the CPU cores the
worker processes kept busy during the best trial, and the cores the machine
had idle meanwhile (what other jobs left unused), so a scaling figure can be
read against what the machine gave. Each worker imports both writers before
any timing. On moto S3 polystore's save writes the image as a new generation
(zarr layout 2: every chunk once, at its final key) and, after every task
succeeded, writes the metadata that switches readers to it and deletes the
previous generation; all of this is included in its time. Under each S3
figure: the moto server's CPU time and the requests it served for each
writer in its best trial (moto is one Python process, so it can bound both).

Data: a uint16 TCZYX dask array made on the workers (a smooth pattern plus
noise, about 2:1 with LZ4 like camera images); zarr chunks 1x1x1x1024x1024,
dask chunks 1x1x4x1024x1024. Default 4 GiB (t=16, c=2, z=16, 2048x2048);
``--t N`` takes N time points (256 MiB each), ``--quick`` is ``--t 1``. Each figure is the best of its
trials (``--rounds``: the clusters of 1 and 2 workers take turns, one trial
per writer each round, so a slow spell of the machine hits both sizes; the
local rounds run before the moto rounds). The
scheduler's own cost is measured with no-op tasks and printed per chunk
written (polystore writes neighbouring blocks in groups, several per task).

Targets (issue 14): polystore >= 1.5x to_zarr; 2 workers >= 1.6x 1 worker
(local store). Needs the ``distributed`` and ``s3`` extras and ``moto[server]``.
"""

from __future__ import annotations

import argparse
import collections
import itertools
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import numpy as np
import psutil

from bench._timing import report, report_absolute

ZCHUNKS = (1, 1, 1, 1024, 1024)
DCHUNKS = (1, 1, 4, 1024, 1024)


_NOISE: dict[str, np.ndarray] = {}
_PLANES: dict[tuple[int, int, int, int], np.ndarray] = {}


def _plane(y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
    """The smooth plane over rows y0:y1 and columns x0:x1, made once per process and location.

    It depends on y and x only, so the blocks at one y/x location (every t,
    c and z) share it; a block costs its noise additions only, not four
    float32 temporaries of its plane each time.
    """
    key = (y0, y1, x0, x1)
    plane = _PLANES.get(key)
    if plane is None:
        y = np.arange(y0, y1, dtype=np.float32)[:, None]
        x = np.arange(x0, x1, dtype=np.float32)[None, :]
        plane = _PLANES[key] = (1000 + 400 * np.sin(y / 97.0) * np.cos(x / 61.0)).astype(np.uint16)
    return plane


def _pattern(block_info: Any = None, shape: tuple[int, ...] | None = None) -> np.ndarray:
    """A smooth plane plus noise (about 2:1 with LZ4), cheap to make: noise and planes are made once per process."""
    if block_info:
        loc = block_info[None]["array-location"]
        shape = tuple(hi - lo for lo, hi in loc)
    else:
        assert shape is not None
        loc = [(0, s) for s in shape]
    if "n" not in _NOISE:
        _NOISE["n"] = np.random.default_rng(0).integers(0, 64, size=(1 << 20) + 4096, dtype=np.uint16)
    plane = _plane(*loc[3], *loc[4])
    out = np.empty(shape, np.uint16)
    n = plane.size
    for i, idx in enumerate(np.ndindex(*shape[:-2])):
        shift = (sum(int(lo) for lo, _ in loc[:3]) * 131 + i * 4099) % 4096
        np.add(plane, _NOISE["n"][shift : shift + n].reshape(plane.shape), out=out[idx])
    return out


def _data(t: int) -> Any:
    import dask.array as da

    shape = (t, 2, 16, 2048, 2048)
    chunks = da.core.normalize_chunks(DCHUNKS, shape)
    return da.map_blocks(_pattern, dtype=np.uint16, chunks=chunks, meta=np.empty((0,) * 5, np.uint16))


class _Server:
    """The moto server process: CPU time it used and the requests it logged (werkzeug's access log)."""

    def __init__(self, pid: int, log: Any) -> None:
        self.proc = psutil.Process(pid)
        self.log = log

    def mark(self) -> tuple[float, int]:
        t = self.proc.cpu_times()
        self.log.flush()
        return float(t.user + t.system), self.log.seek(0, 2)

    def since(self, mark: tuple[float, int]) -> tuple[float, collections.Counter[str]]:
        """CPU seconds and requests (by kind: PUT, GET, list, delete, ...) since ``mark``."""
        cpu = self.mark()[0] - mark[0]
        self.log.seek(mark[1])
        kinds: collections.Counter[str] = collections.Counter()
        for line in self.log.read().splitlines():
            got = re.search(r'"([A-Z]+) (\S+) HTTP', line)
            if got:
                method, path = got.groups()
                query = path.partition("?")[2]
                kinds["list" if "list-type" in query or "prefix=" in query else
                      "delete" if "delete" in query else method] += 1
        return cpu, kinds


@contextmanager
def _moto() -> Iterator[tuple[dict[str, Any], _Server]]:
    exe = shutil.which("moto_server") or os.path.join(os.path.dirname(sys.executable), "moto_server")
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    log = tempfile.TemporaryFile(mode="w+")
    proc = subprocess.Popen([exe, "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=log)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(300):
            try:
                urllib.request.urlopen(url, timeout=1).close()
                break
            except OSError:
                time.sleep(0.1)
        options = {"key": "bench", "secret": "bench", "client_kwargs": {"endpoint_url": url, "region_name": "us-east-1"}}
        yield options, _Server(proc.pid, log)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


def _writers(root: str, options: dict[str, Any] | None, client: Any) -> dict[str, Callable[[Any], None]]:
    import zarr
    from zarr.codecs import BloscCodec

    from polystore.zarr import ZarrBackend

    backend = ZarrBackend(storage_options=options)

    def ours(data: Any) -> None:
        backend.save(data, f"{root}/ours.zarr/img", chunks=ZCHUNKS, axes="tczyx", client=client)

    def raw(data: Any) -> None:
        if options is None:
            store: Any = zarr.storage.LocalStore(f"{root}/raw.zarr")
        else:
            store = zarr.storage.FsspecStore.from_url(f"{root}/raw.zarr", storage_options=options)
        arr = zarr.create_array(
            store, name="img", shape=data.shape, chunks=ZCHUNKS, dtype=data.dtype, overwrite=True,
            compressors=BloscCodec(cname="lz4", clevel=1, shuffle="shuffle"),
        )
        data.to_zarr(arr, compute=True)

    return {"ours": ours, "raw": raw}


def _clear(root: str, options: dict[str, Any] | None) -> None:
    if options is None:
        shutil.rmtree(root, ignore_errors=True)
        os.makedirs(root, exist_ok=True)
        return
    import fsspec

    fs = fsspec.filesystem("s3", **options)
    for name in ("ours.zarr", "raw.zarr"):
        try:
            fs.rm(f"{root}/{name}".removeprefix("s3://"), recursive=True)
        except FileNotFoundError:
            pass
    fs.invalidate_cache()


def _worker_cpu(client: Any) -> float:
    """CPU seconds (user + system, all threads) the worker processes have used so far."""

    def used() -> float:
        t = psutil.Process().cpu_times()
        return float(t.user + t.system)

    return sum(client.run(used).values())


def _warm() -> None:
    """Import what both writers use, in a worker process."""
    import numcodecs  # noqa: F401
    import zarr  # noqa: F401

    import polystore.zarr._distributed  # noqa: F401
    import polystore.zarr._write  # noqa: F401


def _overhead_per_task(client: Any, n: int = 400) -> float:
    """Seconds the scheduler spends per task (no-op tasks, best of 3)."""
    best = float("inf")
    for _ in range(3):
        futures = client.map(lambda i: i, range(n), pure=False)
        t0 = time.perf_counter()
        client.gather(futures)
        best = min(best, time.perf_counter() - t0)
        del futures
    return best / n


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench distributed", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="256 MiB instead of 4 GiB (--t 1)")
    parser.add_argument("--t", type=int, default=16, help="time points, 256 MiB each (default 16: 4 GiB)")
    parser.add_argument("--rounds", "--repeat", type=int, default=2,
                        help="rounds of (1 worker, 2 workers), one trial per writer each; best is kept (default 2)")
    parser.add_argument("--no-s3", action="store_true", help="local store only")
    args = parser.parse_args(argv)
    import distributed

    from polystore.zarr._cluster_tasks import group_size
    from polystore.zarr._distributed import block_shape

    data = _data(1 if args.quick else max(1, args.t))
    nbytes = data.nbytes
    chunks = int(np.prod([-(-s // c) for s, c in zip(data.shape, ZCHUNKS)]))
    block = block_shape(data.shape, ZCHUNKS, "tczyx", 1, 2, data.chunks)
    blocks = int(np.prod([-(-s // b) for s, b in zip(data.shape, block)]))
    print(f"data {data.shape} uint16 = {nbytes / 2**30:.2f} GiB, {chunks} zarr chunks in {blocks} blocks; "
          f"load average {os.getloadavg()[0]:.2f}", flush=True)
    scratch = tempfile.mkdtemp(prefix="polystore-bench-dist-")
    # best time, cores and moto figures per (where, workers, writer); trials of 1 and 2 workers alternate
    # round by round, so a slow spell of this shared machine does not fall on one cluster size only
    times: dict[tuple[str, int, str], float] = collections.defaultdict(lambda: float("inf"))
    cores: dict[tuple[str, int, str], tuple[float, float]] = {}
    served: dict[tuple[str, int, str], tuple[float, collections.Counter[str]]] = {}
    per_task: dict[int, float] = {}
    try:
        with _moto() if not args.no_s3 else _nothing() as moto:
            options, server = moto if moto is not None else (None, None)
            if options is not None:
                import boto3

                endpoint = options["client_kwargs"]["endpoint_url"]
                boto3.client("s3", endpoint_url=endpoint, aws_access_key_id="bench", aws_secret_access_key="bench",
                             region_name="us-east-1").create_bucket(Bucket="bench")
            # every local trial before the moto server (a process on the same cores) holds any object
            stores = [("local", None)] + ([("moto S3", options)] if options is not None else [])
            for (where, opts), round_ in itertools.product(stores, range(max(1, args.rounds))):
                for workers in (1, 2):
                    with distributed.LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                                                  dashboard_address=":0", scheduler_port=0) as cluster, \
                            distributed.Client(cluster) as client:
                        client.run(_warm)  # imports on every worker before any timing (not charged to a writer)
                        if workers not in per_task:
                            per_task[workers] = _overhead_per_task(client)
                        if opts is None:
                            root = os.path.join(scratch, f"w{workers}")
                        else:
                            root = f"s3://bench/w{workers}-{uuid.uuid4().hex[:6]}"
                        for name, fn in _writers(root, opts, client).items():
                            _clear(root, opts)
                            cpu0, idle0 = _worker_cpu(client), psutil.cpu_times().idle
                            mark = server.mark() if opts is not None and server is not None else None
                            t0 = time.perf_counter()
                            fn(data)
                            took = time.perf_counter() - t0
                            key = (where, workers, name)
                            if took < times[key]:
                                times[key] = took
                                cores[key] = ((_worker_cpu(client) - cpu0) / took,
                                              (psutil.cpu_times().idle - idle0) / took)
                                if mark is not None and server is not None:
                                    served[key] = server.since(mark)
                        _clear(root, opts)
                print(f"  {where} round {round_ + 1} done, load average {os.getloadavg()[0]:.2f}", flush=True)
        for workers in (1, 2):
            for where in ("local", "moto S3"):
                if (where, workers, "ours") not in cores:
                    continue
                mbs = {name: nbytes / 2**20 / times[(where, workers, name)] for name in ("ours", "raw")}
                report(f"save {where}, {workers} worker(s) [MiB/s]", mbs["ours"], mbs["raw"], "MiB/s", 1.5)
                print("    cores busy in the worker processes / idle on the machine: " + ", ".join(
                    f"{name} {cores[(where, workers, name)][0]:.2f} / {cores[(where, workers, name)][1]:.2f}"
                    for name in ("ours", "raw")), flush=True)
                for name in ("ours", "raw"):
                    if (where, workers, name) in served:
                        cpu, kinds = served[(where, workers, name)]
                        took = times[(where, workers, name)]
                        print(f"    moto server for {name}: {cpu:.2f} s CPU ({cpu / took:.2f} cores), "
                              f"requests {dict(sorted(kinds.items()))}", flush=True)
            tasks = -(-blocks // group_size(blocks, int(np.prod(block)) * 2, workers))
            report_absolute(
                f"scheduler overhead per chunk, {workers} worker(s)", per_task[workers] * 1e3 * tasks / chunks, "ms",
                None, detail=f"{per_task[workers] * 1e3:.2f} ms per no-op task, {tasks} write tasks for {chunks} "
                f"chunks ({blocks} blocks)",
            )
        if ("local", 2, "ours") in cores and ("local", 1, "ours") in cores:
            two, one = (nbytes / 2**20 / times[("local", w, "ours")] for w in (2, 1))
            report("local save, 2 workers vs 1 [MiB/s]", two, one, "MiB/s", 1.6)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print(f"load average at the end {os.getloadavg()[0]:.2f}", flush=True)
    return 0


@contextmanager
def _nothing() -> Iterator[None]:
    yield None
