"""``python -m bench annotations``: points and shapes into napari, polystore vs napari's own calls.

In one napari viewer (shown, under Xvfb when there is no display) with the
Stream receiver docked: the time from ``fm.save(obj, path, backend="napari")``
to the layer being in the viewer with all its data and drawn once, against
``viewer.add_points`` / ``viewer.add_shapes`` with the same data in the same
process, then drawn once. Cases: 100,000 points (2 properties) and 10,000
polygons of 50 vertices (issue 12: polystore >= 0.8x of the direct call,
i.e. its time at most 1.25x). The sender runs in the viewer's process here,
so the figures include encoding, ZeroMQ, validation and layer creation.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from typing import Any

import numpy as np

from bench._timing import report


def _wait(app: Any, done: Any, timeout: float = 300.0) -> None:
    deadline = time.perf_counter() + timeout
    while not done():
        app.processEvents()
        if time.perf_counter() > deadline:
            raise TimeoutError("the layer did not appear")
        time.sleep(0.0005)
    app.processEvents()  # draw once


def _cases(n_points: int, n_shapes: int, vertices: int) -> dict[str, Any]:
    from polystore.annotations import Points, Shapes

    rng = np.random.default_rng(0)
    points = Points(rng.uniform(0, 2000, (n_points, 2)),
                    properties={"id": np.arange(n_points), "score": rng.uniform(0, 1, n_points)})
    angles = np.linspace(0, 2 * np.pi, vertices, endpoint=False)
    ring = np.stack([np.sin(angles), np.cos(angles)], axis=1) * 8
    centres = rng.uniform(10, 1990, (n_shapes, 2))
    shapes = Shapes([ring + c for c in centres], shape_type="polygon", properties={"id": np.arange(n_shapes)})
    return {"points": points, "shapes": shapes}


def run(rounds: int, quick: bool) -> None:
    import napari
    from qtpy.QtWidgets import QApplication

    from polystore import BackendRegistry, FileManager
    from polystore.annotations import to_layer_data
    from polystore.streaming.napari import NapariStreamingBackend
    from polystore_napari._widgets import StreamReceiverWidget

    scale = 10 if quick else 1
    cases = _cases(100_000 // scale, 10_000 // scale, 50)
    viewer = napari.Viewer(show=True)
    app = QApplication.instance()
    widget = StreamReceiverWidget(viewer, endpoint="tcp://127.0.0.1:0")
    viewer.window.add_dock_widget(widget, name="Stream receiver")
    widget.start()
    backend = NapariStreamingBackend(endpoint=widget.controller.endpoint)
    fm = FileManager(BackendRegistry(napari=backend))
    try:
        for name, obj in _cases(50, 5, 50).items():  # warm up both paths (first layers of a kind are slow)
            fm.save(obj, f"warm/{name}.csv", backend="napari")
            _wait(app, lambda: f"warm/{name}" in viewer.layers)
            data, kwargs, layer_type = to_layer_data(obj)
            (viewer.add_points if layer_type == "points" else viewer.add_shapes)(data, name="warm", **kwargs)
            app.processEvents()
            viewer.layers.clear()
        for name, obj in cases.items():
            ours, raw = [], []
            for r in range(rounds):
                layer = f"bench/{name}{r}"
                start = time.perf_counter()
                fm.save(obj, f"{layer}.csv", backend="napari")
                _wait(app, lambda: layer in viewer.layers and len(viewer.layers[layer].data) == len(obj))
                ours.append(time.perf_counter() - start)
                viewer.layers.remove(layer)
                data, kwargs, layer_type = to_layer_data(obj)
                start = time.perf_counter()
                added = (viewer.add_points if layer_type == "points" else viewer.add_shapes)(data, name=layer, **kwargs)
                _wait(app, lambda: added in viewer.layers)
                raw.append(time.perf_counter() - start)
                viewer.layers.remove(layer)
            what = f"{len(obj):,} {name}" + (" (50 vertices)" if name == "shapes" else "")
            report(f"annotations: {what} into napari (best)", min(ours), min(raw), "s", 1.25, higher_is_better=False)
    finally:
        backend.close()
        widget.stop()
        viewer.close()


def main(argv: list[str]) -> int:
    """Run the benchmark; see the module docstring."""
    parser = argparse.ArgumentParser(prog="python -m bench annotations")
    parser.add_argument("--quick", action="store_true", help="a tenth of the data")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args(argv)
    if not os.environ.get("DISPLAY") and not os.environ.get("_BENCH_CHILD"):
        from bench.stream_bench import _display_env

        env, xvfb = _display_env()
        try:
            return subprocess.call([sys.executable, "-m", "bench", "annotations", *argv], env={**env, "_BENCH_CHILD": "1"})
        finally:
            if xvfb is not None:
                xvfb.terminate()
    os.environ.setdefault("QT_QPA_PLATFORM", "xcb")
    print("## annotations: fm.save(..., backend='napari') vs viewer.add_points/add_shapes (same run)", flush=True)
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())} ({os.cpu_count()} cores)", flush=True)
    run(args.rounds, args.quick)
    print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    return 0
