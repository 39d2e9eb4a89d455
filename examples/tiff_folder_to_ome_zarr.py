"""Convert a folder of per-frame TIFFs into one OME-Zarr store, one image per well.

Microscopes often write one TIFF per well, time point and channel
(``A01/t003_c1.tif``). This example groups such files by well, stacks them
into a (t, c, y, x) array and saves each well as an OME-Zarr image with
channel names and colours: ``fm.save(stack, "plate.zarr/A01", backend="zarr",
axes="tcyx", ...)``. It then reads one plane back lazily, as a viewer would.

The command line does the file-for-file version of this (each TIFF becomes
its own image, resumably): ``polystore cp tiffs/ plate.zarr``.

Run: ``python examples/tiff_folder_to_ome_zarr.py [SRC] [--out DST]``; without
SRC it first writes a small sample folder next to DST.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

from polystore import BackendRegistry, FileManager

NAME = re.compile(r"t(?P<t>\d+)_c(?P<c>\d+)\.tiff?$", re.IGNORECASE)


def write_sample(folder: Path, wells: tuple[str, ...] = ("A01", "B02"), frames: int = 4, channels: int = 2) -> None:
    """A small plate: one uint16 TIFF per well, time point and channel."""
    fm = FileManager(BackendRegistry())
    rng = np.random.default_rng(1)
    yy, xx = np.mgrid[0:128, 0:128].astype(np.float32)
    for w, well in enumerate(wells):
        for t in range(frames):
            for c in range(channels):
                cy, cx = 40 + 12 * t + 20 * c, 50 + 15 * w + 8 * t
                blob = 3000 * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * (10 + 6 * c) ** 2))
                image = (blob + rng.normal(300, 30, (128, 128))).clip(0, 65535).astype(np.uint16)
                fm.save(image, folder / well / f"t{t:03d}_c{c}.tif", backend="disk")


def convert(src: Path, dst: Path, channel_names: list[str] | None = None) -> dict[str, tuple[int, ...]]:
    """Write one OME-Zarr image per well folder of ``src`` into the store ``dst``; return the shapes."""
    fm = FileManager(BackendRegistry())
    by_well: dict[str, dict[tuple[int, int], str]] = defaultdict(dict)
    for path in fm.list_image_files(src, backend="disk", extensions={".tif", ".tiff"}, recursive=True):
        match = NAME.search(Path(path).name)
        if match:
            well = Path(path).parent.name
            by_well[well][(int(match["t"]), int(match["c"]))] = path
    shapes = {}
    for well, files in sorted(by_well.items()):
        frames = 1 + max(t for t, _ in files)
        channels = 1 + max(c for _, c in files)
        planes = fm.load_batch([files[(t, c)] for t in range(frames) for c in range(channels)], backend="disk")
        stack = np.stack(planes).reshape(frames, channels, *planes[0].shape)
        names = channel_names or [f"channel {c}" for c in range(channels)]
        fm.save(stack, dst / well, backend="zarr", axes="tcyx", channel_names=names[:channels],
                metadata={"source": str(src / well)})
        shapes[well] = stack.shape
    return shapes


def main(argv: list[str] | None = None) -> int:
    """Convert SRC (or a generated sample) into DST and check one plane."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("src", nargs="?", type=Path, default=None, help="folder of well folders of TIFFs")
    parser.add_argument("--out", dest="dst", type=Path, default=Path("out/plate.zarr"), help="OME-Zarr store to write")
    args = parser.parse_args(argv)
    src = args.src
    if src is None:
        src = args.dst.parent / "sample-tiffs"
        write_sample(src)
        print(f"wrote a sample plate to {src}")
    shapes = convert(src, args.dst, ["membrane", "nucleus"])
    fm = FileManager(BackendRegistry())
    for well, shape in shapes.items():
        lazy = fm.load(args.dst / well, backend="zarr", lazy=True)  # nothing read yet
        plane = np.asarray(lazy[1, 0])  # reads only the chunks of t=1, c=0
        original = fm.load(src / well / "t001_c0.tif", backend="disk")
        assert np.array_equal(plane, original), f"{well}: plane differs"
        print(f"{args.dst / well}: OME-Zarr image {shape} (t, c, y, x); t=1 c=0 read back equal")
    return 0


if __name__ == "__main__":
    sys.exit(main())
