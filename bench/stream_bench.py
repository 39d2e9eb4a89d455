"""``python -m bench stream``: streaming throughput and into-the-viewer figures.

Part 1: throughput of small and large frames against raw pyzmq, see
:mod:`bench.stream_throughput` (what each side does).

Part 2: an unpaced sender calls NapariStreamingBackend.save (2048x2048 uint16,
one live layer) into a real napari viewer process under Xvfb for --seconds
(default 30). The viewer docks the Stream receiver, checks that its canvas is
visible and at least 800x600 pixels (else the run fails), and records every
draw of that canvas that shows a new frame: frames drawn per second,
save-to-draw latency (the save call's clock in the header to the draw, same
machine) p50/p95, and RSS growth after a 3 s warm-up; the sender records how
long each ``save`` took. A run in which nothing was drawn fails loudly (exit
code 1). Targets: >= 20 frames/s, p50 <= 50 ms, p95 <= 120 ms, RSS growth
<= 200 MB, save p50 <= 1 ms.

Options: --quick (fewer frames, 10 s viewer run), --seconds N, --no-viewer,
--raw-socket-defaults, --raw-malloc-default (see :mod:`bench.stream_throughput`).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench._timing import report_absolute
from bench.stream_throughput import free_port, part1

BIG = (2048, 2048)  # uint16: 8 MiB


# -- child processes -------------------------------------------------------------
def _child_viewer(endpoint: str, seconds: float, out: str) -> None:
    import napari
    import psutil
    from qtpy.QtCore import QTimer

    from polystore_napari._widgets import StreamReceiverWidget

    from qtpy.QtWidgets import QApplication

    viewer = napari.Viewer(show=True)
    widget = StreamReceiverWidget(viewer, endpoint=endpoint, listen=False)
    viewer.window.add_dock_widget(widget, name="Stream receiver")
    controller = widget.controller
    native = viewer.window._qt_viewer.canvas.native
    for _ in range(200):  # let the window lay out (and grow) before measuring
        QApplication.processEvents()
        if native.isVisible() and native.width() >= 800 and native.height() >= 600:
            break
        time.sleep(0.02)
    canvas_size = (native.width(), native.height(), bool(native.isVisible()))
    pending: list[float] = []
    latencies: list[float] = []
    draws: list[float] = []
    rss: list[tuple[float, int]] = []
    proc = psutil.Process()
    state = {"first": 0.0}

    def on_applied(updates: list[Any]) -> None:
        pending.extend(u.sent for u in updates)

    def on_draw(_event: Any) -> None:
        if pending and native.isVisible() and native.width() >= 800 and native.height() >= 600:
            now = time.time()
            if not state["first"]:
                state["first"] = now
            latencies.extend(now - s for s in pending)
            draws.append(now)
            pending.clear()

    controller.on_applied = on_applied
    tick_ms: list[float] = []
    original_tick = controller.tick

    def timed_tick() -> int:
        t0 = time.perf_counter()
        n = original_tick()
        if n:
            tick_ms.append(1000 * (time.perf_counter() - t0))
        return n

    controller.tick = timed_tick  # type: ignore[method-assign]  # the widget looks it up per call
    viewer.window._qt_viewer.canvas._scene_canvas.events.draw.connect(on_draw)
    cpu: list[tuple[float, float]] = []  # (time, the viewer process's CPU seconds): CPU per frame drawn

    def sample() -> None:
        now = time.time()
        rss.append((now, proc.memory_info().rss))
        times = proc.cpu_times()
        cpu.append((now, times.user + times.system))

    sampler = QTimer()
    sampler.timeout.connect(sample)
    sampler.start(250)
    widget.start()
    Path(out + ".ready").write_text("ok")

    def finish() -> None:
        first = state["first"]
        warm = first + 3.0
        shown = [t for t in draws if t >= warm]
        span = (shown[-1] - shown[0]) if len(shown) > 1 else float("nan")
        base = [r for t, r in rss if t >= warm]
        used = [(t, c) for t, c in cpu if t >= warm]
        drawn = [t for t in shown if len(used) > 1 and used[0][0] <= t <= used[-1][0]]
        stats = controller.status()
        result = {
            "frames_shown_per_s": (len(shown) - 1) / span if span == span and span > 0 else 0.0,
            "latency_p50_ms": 1000 * float(np.percentile(latencies[len(latencies) // 10 :], 50)) if latencies else float("nan"),
            "latency_p95_ms": 1000 * float(np.percentile(latencies[len(latencies) // 10 :], 95)) if latencies else float("nan"),
            "rss_growth_mb": (max(base) - base[0]) / 1e6 if base else float("nan"),
            "rss_start_mb": rss[0][1] / 1e6 if rss else float("nan"),
            "received": stats.received,
            "coalesced": stats.coalesced,
            "shown_updates": stats.shown,
            "malformed": stats.malformed,
            "gaps": stats.gaps,
            "apply_ms_p50": float(np.percentile(tick_ms, 50)) if tick_ms else float("nan"),
            "cpu_ms_per_frame": 1000 * (used[-1][1] - used[0][1]) / len(drawn) if drawn else float("nan"),
            "draws": len(draws),
            "canvas": canvas_size,
            "canvas_end": (native.width(), native.height(), bool(native.isVisible())),
        }
        Path(out).write_text(json.dumps(result))
        widget.stop()
        viewer.close()

    QTimer.singleShot(int(seconds * 1000), finish)
    napari.run()


# -- part 2 ------------------------------------------------------------------------
def _display_env() -> tuple[dict[str, str], subprocess.Popen[bytes] | None]:
    env = dict(os.environ)
    env.setdefault("QT_QPA_PLATFORM", "xcb")
    if env.get("DISPLAY"):
        return env, None
    xvfb = shutil.which("Xvfb") or "/usr/bin/Xvfb"
    display = f":{100 + os.getpid() % 500}"
    proc = subprocess.Popen([xvfb, display, "-screen", "0", "1600x1200x24", "-nolisten", "tcp"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    time.sleep(1.0)
    env["DISPLAY"] = display
    return env, proc


def part2(seconds: float) -> list[str]:
    from polystore.streaming import NoReceiverError
    from polystore.streaming.napari import NapariStreamingBackend

    env, xvfb = _display_env()
    endpoint = f"tcp://127.0.0.1:{free_port()}"
    out = tempfile.mktemp(prefix="polystore-viewer-", suffix=".json")
    viewer = subprocess.Popen(
        [sys.executable, "-m", "bench.stream_bench", "--child-viewer", endpoint, str(seconds + 6), out],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    lines: list[str] = []
    try:
        deadline = time.monotonic() + 120
        while not os.path.exists(out + ".ready"):
            if viewer.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("viewer process did not start")
            time.sleep(0.1)
        from polystore import BackendRegistry, FileManager

        backend = NapariStreamingBackend(endpoint=endpoint, send_timeout=5)
        fm = FileManager(BackendRegistry(napari=backend))
        frames = []
        for k in range(2):
            frame = np.zeros(BIG, np.uint16)
            frame[::64] = 60000  # stripes that move between the two frames
            frames.append(np.roll(frame, 32 * k, axis=0))
        sent = 0
        save_times: list[float] = []
        stop_at = time.monotonic() + seconds + 4
        while time.monotonic() < stop_at:  # unpaced
            t0 = time.perf_counter()
            try:
                fm.save(frames[sent % 2], "bench/live.tif", backend="napari", contrast_limits=[0, 60000])
            except NoReceiverError:
                break
            save_times.append(time.perf_counter() - t0)
            sent += 1
        conflated = backend.sender.conflated
        backend.close()
        viewer.wait(timeout=120)
        result = json.loads(Path(out).read_text())
    finally:
        if viewer.poll() is None:
            viewer.send_signal(signal.SIGTERM)
            viewer.wait(10)
        if xvfb is not None:
            xvfb.terminate()
            xvfb.wait()
        for path in (out, out + ".ready"):
            if os.path.exists(path):
                os.unlink(path)
    p50_save = 1000 * float(np.percentile(save_times, 50)) if save_times else float("nan")
    p99_save = 1000 * float(np.percentile(save_times, 99)) if save_times else float("nan")
    width, height, visible = result["canvas"]
    lines.append(f"into the viewer ({seconds:.0f} s unpaced, 2048x2048 uint16, live layer): {sent} saves "
                 f"({sent / (seconds + 4):.0f}/s), {conflated} replaced in the send slot before sending; viewer "
                 f"received {result['received']}, coalesced {result['coalesced']}, malformed {result['malformed']}; "
                 f"GUI apply p50 {result['apply_ms_p50']:.1f} ms per update; viewer process CPU "
                 f"{result['cpu_ms_per_frame']:.1f} ms per frame drawn; canvas {width}x{height} "
                 f"{'visible' if visible else 'NOT visible'}, {result['draws']} draws counted")
    if not visible or width < 800 or height < 600:
        for line in lines:
            print(line, flush=True)
        raise SystemExit(f"FAIL: the viewer's canvas is {width}x{height} (visible={visible}), not a visible "
                         ">= 800x600 canvas: nothing a user would see was measured")
    if result["draws"] == 0:
        for line in lines:
            print(line, flush=True)
        raise SystemExit("FAIL: the canvas drew no streamed frame at all")
    fps, p50, p95, rss = (result["frames_shown_per_s"], result["latency_p50_ms"], result["latency_p95_ms"],
                          result["rss_growth_mb"])
    for line in lines:
        print(line, flush=True)
    lines.append(report_absolute("viewer: frames drawn per second", fps, "fr/s", 20.0, higher_is_better=True))
    lines.append(report_absolute("viewer: save-to-draw latency p50 (ms)", p50, "ms", 50.0))
    lines.append(report_absolute("viewer: save-to-draw latency p95 (ms)", p95, "ms", 120.0))
    lines.append(report_absolute("sender: fm.save p50 (ms), unpaced live", p50_save, "ms", 1.0,
                                 detail=f"p99 {p99_save:.2f} ms"))
    lines.append(report_absolute("viewer: RSS growth over the run (MB)", rss, "MB", 200.0,
                                 detail=f"start {result['rss_start_mb']:.0f} MB"))
    return lines


def main(argv: list[str]) -> int:
    """Run the streaming benchmarks; see the module docstring."""
    if argv and argv[0] == "--child-viewer":
        _child_viewer(argv[1], float(argv[2]), argv[3])
        return 0
    parser = argparse.ArgumentParser(prog="python -m bench stream")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--seconds", type=float, default=None)
    parser.add_argument("--no-viewer", action="store_true")
    parser.add_argument("--raw-socket-defaults", action="store_true",
                        help="raw pyzmq side with pyzmq's default socket options, not polystore's")
    parser.add_argument("--raw-malloc-default", action="store_true",
                        help="raw receiving process without the malloc settle ours does when it binds")
    args = parser.parse_args(argv)
    if args.raw_socket_defaults:
        from bench.stream_throughput import RAW_DEFAULTS_ENV

        os.environ[RAW_DEFAULTS_ENV] = "1"
        print("raw side: pyzmq's default socket options", flush=True)
    if args.raw_malloc_default:
        from bench.stream_throughput import RAW_MALLOC_ENV

        os.environ[RAW_MALLOC_ENV] = "1"
        print("raw side: glibc's malloc thresholds as a fresh process has them", flush=True)
    print("## stream: StreamingBackend vs raw pyzmq (same run, receiver in another process)", flush=True)
    print(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())} ({os.cpu_count()} cores)", flush=True)
    part1(args.quick)
    if not args.no_viewer:
        part2(args.seconds or (10.0 if args.quick else 30.0))
    print(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
