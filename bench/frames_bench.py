"""``python -m bench frames``: 2-D frames appended one by one into one TCZYX OME-Zarr image.

2048x2048 uint16 frames (a noisy image, compressible like a camera's) are
saved in acquisition order (t, then c, then z) with Blosc LZ4 + shuffle
(level 5 by default, the level ome-writers uses; ``--clevel``) and chunks of
one (1024, 1024) quarter-frame:

- polystore: ``ZarrBackend.declare_image`` (unlimited t), then
  ``save(frame, path, index={"t":, "c":, "z":})`` per frame, ``flush()``;
- ome-writers (pip ``ome-writers``, the OME writer for acquisition) with
  each of its zarr backends installed (tensorstore, acquire-zarr,
  zarrs-python, zarr-python): ``create_stream(AcquisitionSettings(...,
  compression="blosc-lz4"))`` then ``stream.append(frame)`` per frame;
- tensorstore (zarr3 driver) and zarr-python directly: the array of the full
  shape created first, then ``array[t, c, z] = frame`` per frame.

Each implementation runs in its own process, so the peak RSS printed is its
own (the frames are made once per process, 8 MiB). Default t=4, c=2, z=8
(64 frames, 512 MiB); ``--t 20`` is the issue-13 shape t=20, c=2, z=8: 320
frames, 2.5 GiB (the issue's "640 frames, 5 GiB" needs ``--z 16``).
The ratios are each one's frames/s over the fastest's; the closing lines are
polystore's over the fastest ome-writers backend (issue 13 target: >= 1.0x)
and over the fastest of all. ``--repeat N`` runs N rounds, each running every
implementation once (so a change of load hits all of them), and keeps each
one's best.
"""

from __future__ import annotations

import argparse
import importlib
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


CLEVEL = {"level": 5}  # set from --clevel in the measuring process


def _polystore(path: str, t: int, c: int, z: int, frame: np.ndarray) -> None:
    from polystore.zarr import ZarrBackend

    backend = ZarrBackend()
    backend.declare_image(
        path, (None, c, z, *SHAPE_YX), "uint16", chunks=(1, 1, 1, *CHUNKS_YX), compression_level=CLEVEL["level"]
    )
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
                {"name": "blosc", "configuration": {"cname": "lz4", "clevel": CLEVEL["level"], "shuffle": "shuffle",
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
        compressors=BloscCodec(cname="lz4", clevel=CLEVEL["level"], shuffle="shuffle"), overwrite=True,
    )
    for i, j, k in _order(t, c, z):
        arr[i, j, k] = frame


def _ome_writers(backend: str) -> Any:
    """ome-writers' stream with its zarr ``backend``: one ``append`` per frame (level 5, its own)."""

    def run(path: str, t: int, c: int, z: int, frame: np.ndarray) -> None:
        from ome_writers import AcquisitionSettings, OmeZarrFormat, create_stream, dims_from_standard_axes

        dims = dims_from_standard_axes(
            {"t": t, "c": c, "z": z, "y": SHAPE_YX[0], "x": SHAPE_YX[1]},
            chunk_shapes={"y": CHUNKS_YX[0], "x": CHUNKS_YX[1]},
        )
        settings = AcquisitionSettings(
            root_path=path, dimensions=dims, dtype="uint16", format=OmeZarrFormat(backend=backend),
            compression="blosc-lz4", overwrite=True,
        )
        with create_stream(settings) as stream:
            for _ in range(t * c * z):
                stream.append(frame)

    return run


_IMPORTS = {
    "polystore": ["polystore.zarr"],
    "ome-writers": ["ome_writers"],
    "tensorstore": ["tensorstore"],
    "acquire-zarr": ["acquire_zarr"],
    "zarrs-python": ["zarr", "zarrs"],
    "zarr-python": ["zarr"],
}

IMPLS = {
    "polystore": _polystore,
    **{f"ome-writers/{b}": _ome_writers(b) for b in ("tensorstore", "acquire-zarr", "zarrs-python", "zarr-python")},
    "tensorstore": _tensorstore,
    "zarr-python": _zarr_python,
}


def _one(impl: str, t: int, c: int, z: int) -> None:
    """Run one implementation in this process; print frames/s and peak RSS as JSON."""
    frame = _frame()
    for module in _IMPORTS[impl.partition("/")[0] if impl.startswith("ome-") else impl] + _IMPORTS.get(
        impl.partition("/")[2], []
    ):
        importlib.import_module(module)  # imports are not timed
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
    parser.add_argument("--clevel", type=int, default=5, help="Blosc LZ4 level of polystore, tensorstore, zarr-python")
    parser.add_argument("--repeat", type=int, default=1, help="rounds (each runs every implementation); best kept")
    parser.add_argument("--only", default=None, help="comma-separated implementations to run (default: all)")
    parser.add_argument("--one", choices=sorted(IMPLS), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    CLEVEL["level"] = args.clevel
    if args.one:
        _one(args.one, args.t, args.c, args.z)
        return 0
    chosen = [i for i in IMPLS if args.only is None or i in args.only.split(",")]
    print(
        f"frames 2048x2048 uint16, t={args.t} c={args.c} z={args.z} ({args.t * args.c * args.z} frames), "
        f"blosc LZ4 level {args.clevel} (ome-writers: 5), chunks (1, 1, 1, 1024, 1024); "
        f"load {os.getloadavg()[0]:.1f} at start"
    )
    got: dict[str, dict[str, float]] = {}
    failed: dict[str, str] = {}
    for round_ in range(args.repeat):  # rounds interleave the libraries: load changes hit all alike
        for impl in chosen:
            if impl in failed:
                continue
            out = subprocess.run(
                [sys.executable, "-m", "bench", "frames", "--one", impl, "--t", str(args.t), "--c", str(args.c),
                 "--z", str(args.z), "--clevel", str(args.clevel)],
                capture_output=True, text=True,
            )
            if out.returncode != 0:
                failed[impl] = out.stderr.strip().splitlines()[-1] if out.stderr.strip() else "failed"
                print(f"  {impl:<26} not run ({failed[impl]})")
                continue
            one = json.loads(out.stdout.strip().splitlines()[-1])
            best = got.setdefault(impl, {"fps": 0.0, "rss_mib": 0.0})
            best["fps"], best["rss_mib"] = max(best["fps"], one["fps"]), max(best["rss_mib"], one["rss_mib"])
            print(f"  {impl:<26} {one['fps']:8.1f} frames/s  peak RSS {one['rss_mib']:7.0f} MiB  (round {round_ + 1})")
    if args.repeat > 1:
        print(f"best of {args.repeat} rounds:")
        for impl, v in got.items():
            print(f"  {impl:<26} {v['fps']:8.1f} frames/s  peak RSS {v['rss_mib']:7.0f} MiB")
    if got:
        fastest = max(v["fps"] for v in got.values())
        print("  frames/s / fastest: " + ", ".join(f"{k} {v['fps'] / fastest:.2f}x" for k, v in got.items()))
    print(f"  load {os.getloadavg()[0]:.1f} at end (the machine is shared: compare ratios within one run)")
    compared: set[str] = set()
    for group in ("ome-writers/", ""):  # the target: vs the fastest ome-writers backend; then vs any
        others = {k: v["fps"] for k, v in got.items() if k != "polystore" and k.startswith(group)}
        if "polystore" in got and others and max(others, key=lambda k: others[k]) not in compared:
            best = max(others, key=lambda k: others[k])
            compared.add(best)
            report(f"frames appended one by one (vs {best})", got["polystore"]["fps"], others[best], "fr/s",
                   1.0 if group else None)
    return 0
