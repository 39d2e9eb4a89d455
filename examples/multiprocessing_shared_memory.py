"""Worker processes share one memory backend through a ``multiprocessing.Manager`` dict.

``MemoryBackend(shared_dict=manager.dict())`` keeps the store in the manager
process: every worker saves its results under file-like paths and the parent
lists and loads them, with the same FileManager calls as for disk. (Each
access is a round trip to the manager and objects are pickled across it: use
this for results and coordination, and the zarr backend for large arrays.)

Run: ``python examples/multiprocessing_shared_memory.py [--workers N]``.
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
from collections.abc import MutableMapping
from typing import Any

import numpy as np

from polystore import BackendRegistry, FileManager, MemoryBackend


def process_tile(shared: MutableMapping[str, Any], tile: int) -> str:
    """A worker: compute one tile and save it (and a summary) into the shared store."""
    fm = FileManager(BackendRegistry(memory=MemoryBackend(shared_dict=shared)))
    rng = np.random.default_rng(tile)
    image = rng.integers(0, 1000, (64, 64), dtype=np.uint16)
    path = f"/results/tile{tile:02d}.npy"
    fm.save(image, path, backend="memory")
    fm.save({"tile": tile, "mean": float(image.mean())}, f"/results/tile{tile:02d}.json", backend="memory")
    return path


def main(argv: list[str] | None = None) -> int:
    """Run the workers, then read every result back in the parent."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--tiles", type=int, default=8)
    args = parser.parse_args(argv)
    context = multiprocessing.get_context("spawn")
    with context.Manager() as manager:
        shared = manager.dict()
        fm = FileManager(BackendRegistry(memory=MemoryBackend(shared_dict=shared)))
        fm.ensure_directory("/results", backend="memory")
        with context.Pool(args.workers) as pool:
            paths = pool.starmap(process_tile, [(shared, tile) for tile in range(args.tiles)])

        listed = fm.list_files("/results", backend="memory", extensions={".npy"})
        assert listed == sorted(paths), (listed, paths)
        for tile, path in enumerate(sorted(paths)):
            image = fm.load(path, backend="memory")
            expected = np.random.default_rng(tile).integers(0, 1000, (64, 64), dtype=np.uint16)
            assert np.array_equal(image, expected)
            summary = fm.load(path.replace(".npy", ".json"), backend="memory")
            assert summary["tile"] == tile
        print(f"{len(listed)} tiles from {args.workers} worker processes, all read back in the parent")
    return 0


if __name__ == "__main__":
    sys.exit(main())
