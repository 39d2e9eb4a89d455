"""``python -m bench stream``, part 1: StreamingBackend against raw pyzmq, same run.

Separate processes (receiver in a child, sender in this
process), over ipc and tcp loopback, for 8 MiB and 128 KiB frames; raw and
ours alternate rounds (best of 3 with --quick, else 7). Both sides move the
same messages, [UTF-8 JSON header of the protocol's fields, the array's
buffer], through sockets with the same options:

* raw sender: a PUSH socket with polystore's sender options
  (``configure_push``: IMMEDIATE, SNDHWM sized to ~32 MiB, e.g. 256 messages
  of 128 KiB, SNDTIMEO/LINGER, reconnect interval), ``json.dumps`` of a new
  header dict per message, ``send_multipart([header, array], copy=False)``
  (payload not copied);
* our sender: ``StreamingBackend(mode="push").save(array, "p")``: validation
  of the data, the stream's header (built once, then only ``seq``/``sent``
  replaced), sequence numbers, fork and feedback checks, the same zero-copy
  two-part send;
* raw receiver: a PULL socket with polystore's receiver options
  (``configure_pull``: RCVHWM 16, LINGER 0, MAXMSGSIZE), per message
  ``recv_multipart(copy=False)`` (payload not copied, the header's bytes
  copied once), ``json.loads`` of the header and ``np.frombuffer(...).reshape``;
* our receiver: ``StreamingBackend(mode="pull").load("*")`` per message:
  the same zero-copy read (part by part, asking each frame whether more
  follow), every header rule of docs/streaming-protocol.md
  (a repeated header checks only ``seq`` and ``sent``), sequence/gap and
  byte counters, the ``Frame``, the array view.

``--raw-socket-defaults`` gives the raw side pyzmq's default options instead
(SNDHWM/RCVHWM 1000, no IMMEDIATE), the baseline of figures before 2026-12-01.

Prints GB/s and message rates and the ratio ours/raw (target >= 0.9), and for
each case the CPU time per message of each process (all its threads: Python,
ZeroMQ's I/O thread, pyzmq's zero-copy release thread) over the same rounds.

Run by :mod:`bench.stream_bench`; this module is also the receiving child
(``python -m bench.stream_throughput --child-raw|--child-ours ENDPOINT COUNT``).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from typing import Any

import numpy as np

from bench._timing import report

BIG = (2048, 2048)  # uint16: 8 MiB
SMALL = (256, 256)  # uint16: 128 KiB


#: ``python -m bench stream --raw-socket-defaults`` sets this (the receiving child inherits it):
#: the raw side then keeps pyzmq's default socket options (HWM 1000 both ways), as this
#: bench did before 2026-12-01, so figures from both baselines can be compared.
RAW_DEFAULTS_ENV = "BENCH_STREAM_RAW_SOCKET_DEFAULTS"


def _raw_uses_pyzmq_defaults() -> bool:
    return os.environ.get(RAW_DEFAULTS_ENV) == "1"


# -- the receiving child ---------------------------------------------------------
def _child_raw(endpoint: str, count: int) -> None:
    import zmq

    from polystore.streaming.protocol import DEFAULT_MAX_FRAME_BYTES
    from polystore.streaming.receiver import DEFAULT_RCVHWM, configure_pull

    ctx = zmq.Context()
    sock = ctx.socket(zmq.PULL)
    if not _raw_uses_pyzmq_defaults():
        configure_pull(sock, DEFAULT_RCVHWM, DEFAULT_MAX_FRAME_BYTES)  # the socket options ours uses
    sock.bind(endpoint)
    print("ready", flush=True)
    for _round in iter(sys.stdin.readline, ""):
        cpu = time.process_time()
        for _ in range(count):
            frames = sock.recv_multipart(copy=False)
            header = json.loads(frames[0].bytes)
            np.frombuffer(frames[1].buffer, dtype=header["dtype"]).reshape(header["shape"])
        print(f"done {time.process_time() - cpu}", flush=True)


def _child_ours(endpoint: str, count: int) -> None:
    from polystore.streaming import StreamingBackend

    pull = StreamingBackend(mode="pull", endpoint=endpoint, max_queued_bytes=256 * 1024**2)
    print("ready", flush=True)
    for _round in iter(sys.stdin.readline, ""):
        cpu = time.process_time()
        for _ in range(count):
            pull.load("*", timeout=60)
        print(f"done {time.process_time() - cpu}", flush=True)


# -- the sending parent ---------------------------------------------------------
def _spawn(kind: str, endpoint: str, count: int) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.stream_throughput", f"--child-{kind}", endpoint, str(count)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    return proc


def _raw_sender(endpoint: str, nbytes: int) -> Any:
    import zmq

    from polystore.streaming.sender import configure_push, default_sndhwm

    ctx = zmq.Context()
    sock = ctx.socket(zmq.PUSH)
    if not _raw_uses_pyzmq_defaults():
        configure_push(sock, default_sndhwm(nbytes), 30)  # the socket options ours uses (send_timeout=30)
    sock.connect(endpoint)

    def send(array: np.ndarray[Any, Any], seq: int) -> None:
        header = {"v": 1, "kind": "image", "stream": "raw", "seq": seq, "path": "p", "dtype": array.dtype.str,
                  "shape": list(array.shape), "order": "C", "nbytes": array.nbytes, "layer": None, "axes": None,
                  "index": None, "display": {}, "meta": {}, "sent": time.time()}
        sock.send_multipart([json.dumps(header).encode(), array], copy=False)

    return send, lambda: (sock.close(5000), ctx.term())


def _our_sender(endpoint: str, _nbytes: int) -> Any:
    from polystore.streaming import StreamingBackend

    push = StreamingBackend(mode="push", endpoint=endpoint, send_timeout=30)

    def send(array: np.ndarray[Any, Any], _seq: int) -> None:
        push.save(array, "p")

    return send, push.close


class _Pair:
    """A receiver child and a sender for one implementation (raw or ours)."""

    def __init__(self, kind: str, endpoint: str, count: int, nbytes: int) -> None:
        self.count = count
        self.child = _spawn(kind, endpoint, count)
        self.send, self.close = (_raw_sender if kind == "raw" else _our_sender)(endpoint, nbytes)
        self.seq = 0

    def run(self, array: np.ndarray[Any, Any]) -> tuple[float, float, float]:
        """Send ``count`` messages: (messages/s until the receiver has them all,
        sender and receiver process CPU seconds per message)."""
        assert self.child.stdin is not None and self.child.stdout is not None
        self.child.stdin.write("go\n")
        self.child.stdin.flush()
        start = time.perf_counter()
        cpu = time.process_time()
        for _ in range(self.count):
            self.send(array, self.seq)
            self.seq += 1
        done, child_cpu = self.child.stdout.readline().split()
        assert done == "done"
        elapsed = time.perf_counter() - start
        return self.count / elapsed, (time.process_time() - cpu) / self.count, float(child_cpu) / self.count

    def stop(self) -> None:
        self.close()
        self.child.kill()
        self.child.wait()


def _compare(
    endpoints: dict[str, str], array: np.ndarray[Any, Any], count: int, rounds: int
) -> tuple[dict[str, float], dict[str, tuple[float, float]]]:
    """Best messages/s of raw and ours, alternating rounds so both see the same noise,
    and the least CPU seconds per message of each side's (sender, receiver) process."""
    pairs = {kind: _Pair(kind, endpoint, count, array.nbytes) for kind, endpoint in endpoints.items()}
    best = dict.fromkeys(pairs, 0.0)
    cpu = dict.fromkeys(pairs, (float("inf"), float("inf")))
    try:
        for r in range(rounds + 1):  # round 0 warms up
            for kind, pair in pairs.items():
                rate, send_cpu, recv_cpu = pair.run(array)
                if r:
                    best[kind] = max(best[kind], rate)
                    cpu[kind] = (min(cpu[kind][0], send_cpu), min(cpu[kind][1], recv_cpu))
    finally:
        for pair in pairs.values():
            pair.stop()
    return best, cpu


def part1(quick: bool) -> list[str]:
    lines = []
    tmp = tempfile.mkdtemp(prefix="polystore-bench-")
    big = np.random.default_rng(0).integers(0, 4000, size=BIG, dtype=np.uint16)
    small = np.random.default_rng(1).integers(0, 4000, size=SMALL, dtype=np.uint16)
    cases = [("8 MiB", big, 30 if quick else 60, "GB/s"), ("128 KiB", small, 1000 if quick else 3000, "msg/s")]
    rounds = 3 if quick else 7
    try:
        for transport in ("ipc", "tcp"):
            for label, array, count, unit in cases:
                endpoints = {}
                for kind in ("raw", "ours"):
                    if transport == "ipc":
                        endpoints[kind] = f"ipc://{tmp}/{kind}-{label.replace(' ', '')}.sock"
                    else:
                        endpoints[kind] = f"tcp://127.0.0.1:{free_port()}"
                rates, cpu = _compare(endpoints, array, count, rounds)
                scale = array.nbytes / 1e9 if unit == "GB/s" else 1.0
                lines.append(
                    report(
                        f"StreamingBackend vs raw pyzmq, {transport}, {label}",
                        rates["ours"] * scale,
                        rates["raw"] * scale,
                        unit,
                        0.9,
                    )
                )
                line = (f"  CPU per message, least of the rounds (us): sender {1e6 * cpu['ours'][0]:.1f} ours / "
                        f"{1e6 * cpu['raw'][0]:.1f} raw, receiver {1e6 * cpu['ours'][1]:.1f} ours / "
                        f"{1e6 * cpu['raw'][1]:.1f} raw")
                print(line, flush=True)
                lines.append(line)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return lines


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


if __name__ == "__main__":
    kind, endpoint, count = sys.argv[1], sys.argv[2], int(sys.argv[3])
    (_child_raw if kind == "--child-raw" else _child_ours)(endpoint, count)
