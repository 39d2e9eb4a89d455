"""Fiji bridge throughput: ``fm.save(..., backend="fiji")`` into the ImageJ bridge vs raw
pyzmq -> JeroMQ PUSH/PULL, 2048x2048 uint16 frames, in the same run.

    python -m bench fiji [--frames 100] [--trials 3] [--size 2048]

"raw" is a pyzmq PUSH sending ``[json header, buffer]`` (copy=False) to a bare
JeroMQ PULL that only counts messages (``polystore.fiji.RawSink``). "polystore"
is ``FileManager.save`` through ``FijiStreamingBackend`` into the real bridge,
which validates each header and decodes every frame into the ImageJ image
(the live-view case: each save replaces the pixels of one image). A trial ends
when the receiver reports the last frame handled. Trials alternate between the
two; the best of each is compared (medians are printed too). A second bridge
JVM runs the t-series case (``index={"t": i}``, every frame kept) against the
same raw baseline.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np

from bench._timing import report

ROOT = Path(__file__).resolve().parents[1]


def _jar() -> Path:
    jar = ROOT / "fiji_bridge" / "build" / "polystore_bridge.jar"
    subprocess.run(["sh", str(ROOT / "fiji_bridge" / "build.sh")], check=True, capture_output=True)
    return jar


def _free_ports(n: int) -> list[int]:
    import socket

    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process (Linux /proc), 0.0 where unavailable."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def main(argv: list[str]) -> int:
    """Run the benchmark; print one comparison line per metric. Returns 0."""
    parser = argparse.ArgumentParser(prog="python -m bench fiji", description=__doc__.split("\n\n")[0])
    parser.add_argument("--frames", type=int, default=100, help="frames per trial (default %(default)s)")
    parser.add_argument("--trials", type=int, default=7, help="trials per side (default %(default)s)")
    parser.add_argument("--size", type=int, default=2048, help="frame edge in pixels (default %(default)s)")
    parser.add_argument("--java-option", action="append", default=[],
                        help="JVM option given to BOTH the raw sink and the bridge, e.g. -XX:+UseParallelGC")
    args = parser.parse_args(argv)

    import zmq

    from polystore import FileManager
    from polystore.streaming.fiji import FijiBridge, FijiControl, FijiStreamingBackend, bridge_classpath

    jar = _jar()
    frame = np.random.default_rng(0).integers(0, 65536, (args.size, args.size), dtype=np.uint16)
    mb = frame.nbytes / 1e6
    n = args.frames

    raw_port, raw_control = _free_ports(2)
    classpath = ":".join(bridge_classpath(jar))
    sink = subprocess.Popen(
        ["java", *args.java_option, "-Djava.awt.headless=true", "-cp", classpath, "polystore.fiji.RawSink", str(raw_port), str(raw_control)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # as FijiBridge starts the bridge (same CFS autogroup treatment)
    )
    try:
        sink_control = FijiControl(f"tcp://127.0.0.1:{raw_control}", timeout=0.5)
        deadline = time.monotonic() + 30
        while True:
            try:
                sink_control.request("count")
                break
            except Exception:
                if time.monotonic() > deadline or sink.poll() is not None:
                    raise
                time.sleep(0.05)

        ctx = zmq.Context.instance()
        push = ctx.socket(zmq.PUSH)
        push.setsockopt(zmq.SNDHWM, 64)
        push.connect(f"tcp://127.0.0.1:{raw_port}")
        header = {
            "v": 1, "kind": "image", "stream": "raw", "seq": 0, "path": "bench.tif", "dtype": frame.dtype.str,
            "shape": list(frame.shape), "order": "C", "nbytes": frame.nbytes, "layer": None, "axes": None,
            "index": None, "display": {}, "meta": {}, "sent": 0.0,
        }
        sent_raw = 0

        def raw_trial(count: int) -> float:
            nonlocal sent_raw
            start = time.perf_counter()
            for i in range(count):
                header["seq"] = sent_raw + i
                header["sent"] = time.time()
                push.send_multipart([json.dumps(header).encode(), frame], copy=False)
            sent_raw += count
            while int(sink_control.request("count")["received"]) < sent_raw:
                time.sleep(0.001)
            return time.perf_counter() - start

        results: dict[str, list[float]] = {"raw": [], "fiji": [], "raw2": [], "series": []}
        cpu: dict[str, float] = {"raw": 0.0, "fiji": 0.0, "raw2": 0.0, "series": 0.0}
        statuses: list[dict[str, Any]] = []

        def run_bridge(kind: str) -> None:
            # A fresh bridge JVM per case: the t-series keeps 800 MB per trial, which
            # must not leave GC work or a grown heap behind for the live case.
            port, control = _free_ports(2)
            with FijiBridge(port, control, gui=False, jar=jar, java_options=args.java_option) as bridge:
                backend = FijiStreamingBackend(port, control_port=control, send_timeout=30.0)
                fm = FileManager({"fiji": backend})

                def live_trial(count: int) -> float:
                    start = time.perf_counter()
                    for _ in range(count):
                        fm.save(frame, "bench/live.tif", backend="fiji")
                    backend.flush(timeout=120)
                    return time.perf_counter() - start

                def series_trial(count: int) -> float:
                    start = time.perf_counter()
                    for t in range(count):
                        fm.save(frame, f"bench/t{t}.tif", backend="fiji", layer="bench/series", index={"t": t})
                    backend.flush(timeout=120)
                    elapsed = time.perf_counter() - start
                    backend.control.close_image("bench/series")
                    return elapsed

                trial = live_trial if kind == "fiji" else series_trial
                raw_key = "raw" if kind == "fiji" else "raw2"
                raw_trial(30)  # warm up both JVMs (JIT) and the connections
                trial(30)
                assert bridge.pid is not None
                for _ in range(args.trials):
                    frame.view(np.uint8)[::4096] += 0  # touch the buffer (see FACTS: freed-RAM effect)
                    before = _cpu_seconds(sink.pid)
                    results[raw_key].append(raw_trial(n))
                    cpu[raw_key] += _cpu_seconds(sink.pid) - before
                    before = _cpu_seconds(bridge.pid)
                    results[kind].append(trial(n))
                    cpu[kind] += _cpu_seconds(bridge.pid) - before
                statuses.append(bridge.control.status())
                backend.close()

        run_bridge("fiji")
        run_bridge("series")
        push.close(0)
    finally:  # stop our own sink by its PID, whatever happened
        try:
            FijiControl(f"tcp://127.0.0.1:{raw_control}", timeout=1.0).request("quit")
            sink.wait(10)
        except Exception:  # noqa: BLE001
            sink.kill()
            sink.wait(10)

    raw_best, fiji_best = min(results["raw"]), min(results["fiji"])
    raw2_best, series_best = min(results["raw2"]), min(results["series"])
    print(f"fiji bench: {n} frames of {args.size}x{args.size} uint16 ({mb:.1f} MB) per trial, "
          f"{args.trials} trials each, best trial compared; JVM options: {args.java_option or 'none'}")
    print("  raw trials (s):         " + ", ".join(f"{t:.3f}" for t in results["raw"]))
    print("  fiji live trials (s):   " + ", ".join(f"{t:.3f}" for t in results["fiji"]))
    print("  raw trials (s):         " + ", ".join(f"{t:.3f}" for t in results["raw2"]))
    print("  fiji series trials (s): " + ", ".join(f"{t:.3f}" for t in results["series"]))
    report("live image: fm.save -> bridge vs raw, frames/s", n / fiji_best, n / raw_best, "fr/s", 0.9)
    report("live image: fm.save -> bridge vs raw, MB/s", n * mb / fiji_best, n * mb / raw_best, "MB/s", 0.9)
    report("t-series (every frame kept) vs raw, frames/s", n / series_best, n / raw2_best, "fr/s", 0.9)
    report("t-series (every frame kept) vs raw, MB/s", n * mb / series_best, n * mb / raw2_best, "MB/s", 0.9)
    med = {k: sorted(v)[len(v) // 2] for k, v in results.items()}
    print(f"  median-trial ratios: live {med['raw'] / med['fiji']:.2f}x, "
          f"t-series {med['raw2'] / med['series']:.2f}x (the machine is shared: medians move with load)")
    # Each raw trial runs right before its polystore trial: the ratio within a pair sees
    # (nearly) the same load, so the median of the pair ratios is the least noisy figure.
    pairs = {
        "live": sorted(r / f for r, f in zip(results["raw"], results["fiji"])),
        "t-series": sorted(r / f for r, f in zip(results["raw2"], results["series"])),
    }
    print("  paired-trial ratios (raw time / polystore time, trial by trial): "
          + "; ".join(f"{name} median {v[len(v) // 2]:.2f}x, range {v[0]:.2f}-{v[-1]:.2f}x"
                      for name, v in pairs.items()))
    per_frame = {k: 1000 * v / (n * args.trials) for k, v in cpu.items()}
    print(f"  receiving JVM CPU per frame: raw sink {per_frame['raw']:.2f} ms, bridge live "
          f"{per_frame['fiji']:.2f} ms; raw sink {per_frame['raw2']:.2f} ms, bridge t-series "
          f"{per_frame['series']:.2f} ms (load-independent)")
    for name, status in zip(("live", "series"), statuses):
        print(f"  {name} bridge: placed={status['placed']} replaced={status['replaced']} "
              f"dropped={status['dropped']} malformed={status['malformed']}")
    return 0
