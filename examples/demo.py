"""The polystore demo: one small pipeline, every backend.

A synthetic two-channel time-lapse of one well is written and read back through
disk (TIFF hyperstack + .npy), memory and an OME-Zarr store, and streamed frame by
frame into a live napari viewer with ``fm.save(..., backend="napari")``, exactly
as a pipeline would. With a display the viewer window stays open; headless
(``--headless``, or ``POLYSTORE_HEADLESS=1`` as ``make demo`` sets under Xvfb)
it renders the viewer to ``<out>/viewer.png`` and exits.

Run: ``make demo`` (sets everything up), or ``python examples/demo.py --out out/demo``.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import shutil
import sys
import time
from pathlib import Path

import numpy as np

from polystore import BackendRegistry, FileManager

CHANNELS, FRAMES, SIZE = 2, 8, 256
COLORS = ("magenta", "green")


def synthetic_timelapse(seed: int = 0) -> np.ndarray:
    """(t, c, y, x) uint16: two fluorescent blobs drifting across a noisy field."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32)
    stack = np.empty((FRAMES, CHANNELS, SIZE, SIZE), np.uint16)
    for t in range(FRAMES):
        for c in range(CHANNELS):
            cy = SIZE * (0.3 + 0.4 * c) + 6 * t
            cx = SIZE * (0.25 + 0.5 * c) + 10 * t * (1 if c else -1)
            blob = 3000 * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * (18 + 4 * c) ** 2))
            stack[t, c] = (blob + rng.normal(300, 40, (SIZE, SIZE))).clip(0, 65535).astype(np.uint16)
    return stack


def step(message: str) -> None:
    """Print one line of progress."""
    print(f"[demo] {message}", flush=True)


def disk_and_memory(fm: FileManager, stack: np.ndarray, out: Path) -> None:
    """Per-frame TIFFs and a hyperstack on disk; the same frames in memory."""
    frames = [stack[t, c] for t in range(FRAMES) for c in range(CHANNELS)]
    names = [f"A01/t{t:02d}_c{c}.tif" for t in range(FRAMES) for c in range(CHANNELS)]
    fm.save_batch(frames, [out / "disk" / n for n in names], backend="disk")
    fm.save(stack, out / "disk" / "A01_hyperstack.tif", backend="disk", axes="tcyx",
            metadata={"well": "A01", "pixel_size_um": 0.65})
    back = fm.load_batch(fm.list_image_files(out / "disk" / "A01", backend="disk"), backend="disk")
    assert all(np.array_equal(a, b) for a, b in zip(frames, back))
    meta = fm.load_metadata(out / "disk" / "A01_hyperstack.tif", backend="disk")
    step(f"disk: wrote {len(frames)} TIFF frames + 1 ImageJ hyperstack ({meta}); read back equal")

    fm.save_batch(frames, [f"/demo/{n}" for n in names], backend="memory")
    again = fm.load_batch([f"/demo/{n}" for n in names], backend="memory")
    assert all(a is b for a, b in zip(frames, again))  # zero-copy
    step(f"memory: {len(fm.list_files('/demo', 'memory', recursive=True))} frames held, "
         "loaded back without copying")


def zarr_store(fm: FileManager, stack: np.ndarray, out: Path) -> None:
    """One OME-Zarr image per well, with channel names and colours."""
    store = out / "plate.zarr"
    fm.save(stack, store / "A01", backend="zarr", axes="tcyx", pyramid_levels=1,
            channel_names=["membrane", "nucleus"], channel_colors=["FF00FF", "00FF00"])
    lazy = fm.load(store / "A01", backend="zarr", lazy=True)
    assert np.array_equal(np.asarray(lazy[3, 1]), stack[3, 1])
    step(f"zarr: OME-Zarr image {store / 'A01'} shape {tuple(lazy.shape)}; frame (t=3, c=1) read lazily")


def pipeline(endpoint: str) -> None:
    """The 'pipeline' process: computes frames and saves them to the viewer."""
    fm = FileManager(BackendRegistry())
    from polystore.streaming.napari import NapariStreamingBackend

    fm.registry.register("napari", NapariStreamingBackend(endpoint=endpoint))
    stack = synthetic_timelapse()
    for t in range(FRAMES):
        for c in range(CHANNELS):
            fm.save(stack[t, c], f"A01/t{t:02d}_c{c}.tif", backend="napari", layer=f"A01 {COLORS[c]}",
                    index={"t": t}, axes="tyx", colormap=COLORS[c], contrast_limits=[200, 3300])
    fm.save(stack[-1].max(axis=0), "A01/max_projection.tif", backend="napari", colormap="gray")


def stream_into_viewer(stack: np.ndarray, out: Path, headless: bool) -> None:
    """Start a viewer listening, run the pipeline in another process, show or screenshot."""
    import napari
    from polystore_napari import StreamController
    from qtpy.QtWidgets import QApplication

    viewer = napari.Viewer(title="polystore demo", show=True)
    # loopback TCP on a free port: unlike ipc, it keeps frames a finished sender left queued
    controller = StreamController(viewer, "tcp://127.0.0.1:0")
    endpoint = controller.start()
    worker = multiprocessing.get_context("spawn").Process(target=pipeline, args=(endpoint,))
    worker.start()
    sent = FRAMES * CHANNELS + 1
    arrived = controller.wait_until_received(sent, lambda: worker.exitcode is not None, QApplication.processEvents)
    worker.join(30)
    if worker.exitcode != 0:
        raise SystemExit(f"demo: the pipeline process failed (exit code {worker.exitcode})")
    if not arrived:
        raise SystemExit("demo: the viewer did not receive every frame within 120 s")
    controller.tick()
    names = {layer.name for layer in viewer.layers}
    for c, color in enumerate(COLORS):
        layer = viewer.layers[f"A01 {color}"]
        assert np.array_equal(np.asarray(layer.data), stack[:, c]), f"layer {layer.name} differs"
    viewer.layers["A01/max_projection"].visible = False
    for color in COLORS:
        viewer.layers[f"A01 {color}"].blending = "additive"
    viewer.dims.set_point(0, FRAMES // 2)
    step(f"napari: streamed {sent} frames from a pipeline process over {endpoint}; "
         f"layers {sorted(names)} hold exactly what was sent")
    if headless:
        for _ in range(20):
            QApplication.processEvents()
            time.sleep(0.02)
        png = out / "viewer.png"
        viewer.screenshot(str(png), canvas_only=False)
        step(f"napari: headless, viewer rendered to {png}")
        controller.stop()
        viewer.close()
    else:
        step("napari: close the window to finish")
        napari.run()
        controller.stop()


def main(argv: list[str] | None = None) -> int:
    """Run the demo; returns 0 when every step read back what it wrote."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default="out/demo", help="output folder (replaced)")
    parser.add_argument("--headless", action="store_true", default=os.environ.get("POLYSTORE_HEADLESS") == "1",
                        help="render the viewer to PNG instead of opening a window")
    parser.add_argument("--no-viewer", action="store_true", help="skip the napari part")
    args = parser.parse_args(argv)
    out = Path(args.out)
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    fm = FileManager(BackendRegistry())
    stack = synthetic_timelapse()
    step(f"synthetic time-lapse: {stack.shape} (t, c, y, x) {stack.dtype}")
    disk_and_memory(fm, stack, out)
    zarr_store(fm, stack, out)
    if not args.no_viewer:
        stream_into_viewer(stack, out, args.headless)
    step(f"done; outputs in {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
