"""A processing pipeline that shows every result live in napari.

The pipeline "acquires" a time-lapse of one well, smooths each frame and
segments it, and saves the raw frame, the smoothed frame and the mask with
``fm.save(..., backend="napari")``: the same call that would write them to
disk. Each goes into an N-D layer at its time point (``index={"t": t}``), so
the viewer's time slider fills as the pipeline runs.

Three ways to run it:

* ``python examples/live_napari_pipeline.py``: starts a viewer process with the
  receiver listening (``NapariStreamingBackend(launch=True)``), runs the
  pipeline into it and leaves the viewer open;
* ``polystore serve napari`` in one shell, then
  ``python examples/live_napari_pipeline.py --endpoint tcp://127.0.0.1:5570``;
* ``python examples/live_napari_pipeline.py --screenshot out.png`` (what the
  test suite runs): the viewer lives in this process, the pipeline runs in a
  worker process, and the viewer is rendered to a PNG once every frame has
  arrived and been checked. Needs a display (Xvfb is fine, with
  ``QT_QPA_PLATFORM=xcb``).
"""

from __future__ import annotations

import argparse
import multiprocessing
import sys
import time
from pathlib import Path

import numpy as np

from polystore import BackendRegistry, FileManager

SIZE = 192


def acquire(t: int, seed: int = 0) -> np.ndarray:
    """A synthetic frame: three nuclei drifting over a noisy background (uint16)."""
    rng = np.random.default_rng(seed + t)
    yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32)
    frame = rng.normal(400, 60, (SIZE, SIZE)).astype(np.float32)
    for k, (y0, x0) in enumerate(((50, 40), (120, 90), (70, 150))):
        cy, cx = y0 + 3 * t, x0 + (4 - 2 * k) * t
        frame += 2500 * np.exp(-((yy - cy) ** 2 + (xx - cx) ** 2) / (2 * 11.0**2))
    return frame.clip(0, 65535).astype(np.uint16)


def smooth(frame: np.ndarray) -> np.ndarray:
    """3x3 box filter (NumPy only)."""
    padded = np.pad(frame.astype(np.float32), 1, mode="edge")
    acc = sum(padded[dy : dy + SIZE, dx : dx + SIZE] for dy in range(3) for dx in range(3))
    return (acc / 9).astype(np.uint16)


def segment(frame: np.ndarray) -> np.ndarray:
    """Foreground mask: pixels brighter than the background by a margin."""
    return (frame > np.median(frame) + 600).astype(np.uint8)


def run_pipeline(fm: FileManager, frames: int) -> None:
    """The pipeline itself: every result goes to the viewer with ``fm.save``."""
    for t in range(frames):
        raw = acquire(t)
        smoothed = smooth(raw)
        mask = segment(smoothed)
        fm.save(raw, f"A01/raw/t{t:03d}.tif", backend="napari", layer="A01 raw",
                index={"t": t}, axes="tyx", colormap="gray", contrast_limits=[300, 3000])
        fm.save(smoothed, f"A01/smoothed/t{t:03d}.tif", backend="napari", layer="A01 smoothed",
                index={"t": t}, axes="tyx", colormap="green", contrast_limits=[300, 3000])
        fm.save(mask, f"A01/mask/t{t:03d}.tif", backend="napari", layer="A01 mask",
                index={"t": t}, axes="tyx", colormap="magenta", contrast_limits=[0, 1])


def _worker(endpoint: str, frames: int) -> None:
    from polystore.streaming.napari import NapariStreamingBackend

    fm = FileManager(BackendRegistry(napari=NapariStreamingBackend(endpoint=endpoint)))
    run_pipeline(fm, frames)


def screenshot_run(png: Path, frames: int) -> None:
    """Viewer here, pipeline in a worker process; check every layer, then render to ``png``."""
    import napari
    from polystore_napari import StreamController
    from qtpy.QtWidgets import QApplication

    viewer = napari.Viewer(title="polystore: live pipeline", show=True)
    controller = StreamController(viewer, "tcp://127.0.0.1:0")
    endpoint = controller.start()
    worker = multiprocessing.get_context("spawn").Process(target=_worker, args=(endpoint, frames))
    worker.start()
    expected = 3 * frames
    arrived = controller.wait_until_received(expected, lambda: worker.exitcode is not None, QApplication.processEvents)
    worker.join(30)
    if worker.exitcode != 0:
        raise SystemExit(f"the pipeline process failed (exit code {worker.exitcode})")
    if not arrived:
        raise SystemExit("live pipeline: the viewer did not receive every frame within 120 s")
    controller.tick()
    raw = np.asarray(viewer.layers["A01 raw"].data)
    mask = np.asarray(viewer.layers["A01 mask"].data)
    assert raw.shape == (frames, SIZE, SIZE), raw.shape
    assert all(np.array_equal(raw[t], acquire(t)) for t in range(frames)), "raw frames differ"
    assert all(np.array_equal(mask[t], segment(smooth(acquire(t)))) for t in range(frames)), "masks differ"
    viewer.layers["A01 smoothed"].visible = False
    viewer.layers["A01 mask"].blending = "additive"
    viewer.layers["A01 mask"].opacity = 0.5
    viewer.dims.set_point(0, frames - 1)
    for _ in range(50):  # until the canvas has drawn (software GL under Xvfb can lag)
        for _ in range(5):
            QApplication.processEvents()
            time.sleep(0.02)
        if np.asarray(viewer.screenshot(canvas_only=True))[..., :3].std() > 5:
            break
    png.parent.mkdir(parents=True, exist_ok=True)
    viewer.screenshot(str(png), canvas_only=False)
    print(f"{expected} images streamed and checked; viewer rendered to {png}")
    controller.stop()
    viewer.close()


def main(argv: list[str] | None = None) -> int:
    """Run the pipeline into a viewer (see the module docstring)."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=12, help="time points to process")
    parser.add_argument("--endpoint", default=None, help="send to a viewer already listening here")
    parser.add_argument("--screenshot", type=Path, default=None, help="render the viewer to this PNG and exit")
    args = parser.parse_args(argv)
    if args.screenshot is not None:
        screenshot_run(args.screenshot, args.frames)
        return 0
    from polystore.streaming.napari import NapariStreamingBackend

    if args.endpoint:
        backend = NapariStreamingBackend(endpoint=args.endpoint)
    else:
        backend = NapariStreamingBackend(launch=True)
        print(f"started a napari viewer (pid {backend.viewer_pid}) listening on {backend.endpoint}")
    fm = FileManager(BackendRegistry(napari=backend))
    run_pipeline(fm, args.frames)
    backend.close()
    print(f"sent {3 * args.frames} images to {backend.endpoint}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
