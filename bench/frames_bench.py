"""``python -m bench frames``: 2-D frames appended one by one into one TCZYX OME-Zarr image.

2048x2048 uint16 frames (a noisy image, compressible like a camera's) are
saved in acquisition order (t, then c, then z) with Blosc LZ4 level 1 +
shuffle and chunks of one (1024, 1024) quarter-frame:

- polystore: ``ZarrBackend.declare_image`` (unlimited t), then
  ``save(frame, path, index={"t":, "c":, "z":})`` per frame, ``flush()``;
- tensorstore (zarr3 driver) and zarr-python: the array of the full shape
  created first, then ``array[t, c, z] = frame`` per frame.

Each implementation runs in its own process, so the peak RSS printed is its
own (the frames are made once per process, 8 MiB). Default t=4, c=2, z=8
(64 frames, 512 MiB); ``--t 20`` is the issue-13 shape (640 frames, 5 GiB).
The ratio is polystore's frames/s over the fastest other library's
(issue 13 target: >= 1.0x; ome-writers itself is not installed here).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Any

import numpy as np

from bench._timing import report

SHAPE_YX = (2048, 2048)
CHUNKS_YX = (1024, 1024)


def _frame() -> np.ndarray:
    rng = np.random.default_rng(0)
    base = rng.integers(100, 400, SHAPE_YX, dtype=np.uint16)
    return base + np.arange(SHAPE_YX[1], dtype=np.uint16)[None, :] // 8


def _order(t: int, c: int, z: int) -> list[tuple[int, int, int]]:
    return [(i, j, k) for i in range(t) for j in range(c) for k in range(z)]


def _polystore(path: str, t: int, c: int, z: int, frame: np.ndarray) -> None:
    from polystore.zarr import ZarrBackend

    backend = ZarrBackend()
    backend.declare_image(path, (None, c, z, *SHAPE_YX), "uint16", chunks=(1, 1, 1, *CHUNKS_YX))
    for i, j, k in _order(t, c, z):
        backend.save(frame, path, index={"t": i, "c": j, "z": k})
    backend.flush()


def _tensorstore(path: str, t: int, c: int, z: int, frame: np.ndarray) -> None:
    import tensorstore as ts

    spec: dict[str, Any] = {
        "driver": "zarr3",
        "kvstore": {"driver": "file", "path": path},
        "metadata": {
            "shape": [t, c, z, *SHAPE_YX],
            "data_type": "uint16",
            "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": [1, 1, 1, *CHUNKS_YX]}},
            "codecs": [
                {"name": "bytes", "configuration": {"endian": "little"}},
                {"name": "blosc", "configuration": {"cname": "lz4", "clevel": 1, "shuffle": "shuffle",
                                                     "typesize": 2, "blocksize": 0}},
            ],
        },
        "create": True,
        "delete_existing": True,
    }
    arr = ts.open(spec).result()
    for i, j, k in _order(t, c, z):
        arr[i, j, k].write(frame).result()


def _zarr_python(path: str, t: int, c: int, z: int, frame: np.ndarray) -> None:
    import zarr
    from zarr.codecs import BloscCodec

    arr = zarr.create_array(
        path, shape=(t, c, z, *SHAPE_YX), dtype="uint16", chunks=(1, 1, 1, *CHUNKS_YX),
        compressors=BloscCodec(cname="lz4", clevel=1, shuffle="shuffle"), overwrite=True,
    )
    for i, j, k in _order(t, c, z):
        arr[i, j, k] = frame


IMPLS = {"polystore": _polystore, "tensorstore": _tensorstore, "zarr-python": _zarr_python}


def _one(impl: str, t: int, c: int, z: int) -> None:
    """Run one implementation in this process; print frames/s and peak RSS as JSON."""
    frame = _frame()
    folder = tempfile.mkdtemp(prefix="bench-frames-")
    try:
        start = time.perf_counter()
        IMPLS[impl](os.path.join(folder, "img.zarr"), t, c, z, frame)
        elapsed = time.perf_counter() - start
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"fps": t * c * z / elapsed, "rss_mib": rss}))


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench frames")
    parser.add_argument("--t", type=int, default=4)
    parser.add_argument("--c", type=int, default=2)
    parser.add_argument("--z", type=int, default=8)
    parser.add_argument("--one", choices=sorted(IMPLS), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        _one(args.one, args.t, args.c, args.z)
        return 0
    print(f"frames 2048x2048 uint16, t={args.t} c={args.c} z={args.z}, LZ4; load {os.getloadavg()[0]:.1f}")
    got: dict[str, dict[str, float]] = {}
    for impl in IMPLS:
        out = subprocess.run(
            [sys.executable, "-m", "bench", "frames", "--one", impl, "--t", str(args.t), "--c", str(args.c),
             "--z", str(args.z)],
            capture_output=True, text=True,
        )
        if out.returncode != 0:
            print(f"{impl}: not run ({out.stderr.strip().splitlines()[-1] if out.stderr.strip() else 'failed'})")
            continue
        got[impl] = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"  {impl:<12} {got[impl]['fps']:8.1f} frames/s  peak RSS {got[impl]['rss_mib']:7.0f} MiB")
    others = {k: v["fps"] for k, v in got.items() if k != "polystore"}
    if "polystore" in got and others:
        best = max(others, key=lambda k: others[k])
        report(f"frames appended one by one (vs {best})", got["polystore"]["fps"], others[best], "fr/s", 1.0)
    return 0
