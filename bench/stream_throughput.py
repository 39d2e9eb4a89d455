"""``python -m bench stream``, part 1: StreamingBackend against raw pyzmq, same run.

Separate processes (receiver in a child, sender in this
process), over ipc and tcp loopback, for 8 MiB and 128 KiB frames; raw and
ours alternate, back to back, for 5 (--quick) or 11 rounds, the order
swapped every round, each round with a new receiving process and sender per
side (warmed up with a tenth of the round's messages). Printed: the median rate of each side
and its ratio (target >= 0.9), the per-round ratios (median, quartiles,
range: the spread this machine gives the same code), and per message the
median CPU time of each process (all its threads: Python, ZeroMQ's I/O
thread, pyzmq's zero-copy release thread) and the receiving process's page
faults. (Before 2026-12-01 06:00 UTC: one process per side for all rounds,
best of 3/7 rounds, least CPU.)

Both sides move the same messages, [UTF-8 JSON header of the protocol's
fields, the array's buffer], through sockets with the same options, and
neither sends anything else (the generic ``StreamingBackend`` has no flow
control: no credit or feedback messages in either direction):

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
  copied once), ``json.loads`` of the header and ``np.frombuffer(...).reshape``,
  then lets go of the message (as ours does: holding it through the next
  receive changes how the allocator reuses the buffers);
* our receiver: ``StreamingBackend(mode="pull").load("*")`` per message:
  the same zero-copy read (part by part, asking each frame whether more
  follow), every header rule of docs/streaming-protocol.md
  (a repeated header checks only ``seq`` and ``sent``), sequence/gap and
  byte counters, the ``Frame``, the array view.

Both receiving processes start with the same allocator state: ours runs
:func:`polystore.streaming._malloc.settle_malloc_thresholds` when it binds
(libzmq mallocs every received message; without it a fresh process hands
those pages back to the kernel and faults them in again, 4-26 faults and
~25-35 us more CPU per 128 KiB message, in whichever process falls a few
messages behind first), and the raw child calls it too, so the ratio
compares the work per message, not which process fell into that state.
``--raw-malloc-default`` leaves the raw child as a fresh process is.
``--raw-socket-defaults`` gives the raw side pyzmq's default socket options
instead (SNDHWM/RCVHWM 1000, no IMMEDIATE), the baseline of figures before
2026-12-01.

Run by :mod:`bench.stream_bench`; this module is also the receiving child
(``python -m bench.stream_throughput --child-raw|--child-ours ENDPOINT``; it reads
how many messages to receive per line on stdin and prints its CPU time and page faults).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from bench._timing import report

BIG = (2048, 2048)  # uint16: 8 MiB
SMALL = (256, 256)  # uint16: 128 KiB


#: ``python -m bench stream --raw-socket-defaults`` sets this (the receiving child inherits it):
#: the raw side then keeps pyzmq's default socket options (HWM 1000 both ways), as this
#: bench did before 2026-12-01, so figures from both baselines can be compared.
RAW_DEFAULTS_ENV = "BENCH_STREAM_RAW_SOCKET_DEFAULTS"


#: ``--raw-malloc-default`` sets this: the raw receiving child then skips
#: :func:`~polystore.streaming._malloc.settle_malloc_thresholds`, which ours runs when it binds.
RAW_MALLOC_ENV = "BENCH_STREAM_RAW_MALLOC_DEFAULT"


def _raw_uses_pyzmq_defaults() -> bool:
    return os.environ.get(RAW_DEFAULTS_ENV) == "1"


def _raw_uses_malloc_default() -> bool:
    return os.environ.get(RAW_MALLOC_ENV) == "1"


# -- the receiving child ---------------------------------------------------------
def _child_raw(endpoint: str) -> None:
    import zmq

    from polystore.streaming._malloc import settle_malloc_thresholds
    from polystore.streaming.protocol import DEFAULT_MAX_FRAME_BYTES
    from polystore.streaming.receiver import DEFAULT_RCVHWM, configure_pull

    if not _raw_uses_malloc_default():
        settle_malloc_thresholds()  # the allocator state ours sets (see the module docstring)
    ctx = zmq.Context()
    sock = ctx.socket(zmq.PULL)
    if not _raw_uses_pyzmq_defaults():
        configure_pull(sock, DEFAULT_RCVHWM, DEFAULT_MAX_FRAME_BYTES)  # the socket options ours uses
    sock.bind(endpoint)
    print("ready", flush=True)
    for line in iter(sys.stdin.readline, ""):
        count = int(line)
        cpu, faults = time.process_time(), _minor_faults()
        for _ in range(count):
            frames = sock.recv_multipart(copy=False)
            header = json.loads(frames[0].bytes)
            np.frombuffer(frames[1].buffer, dtype=header["dtype"]).reshape(header["shape"])
            del frames  # ours holds no message past its load() either
        print(f"done {time.process_time() - cpu} {_minor_faults() - faults}", flush=True)


def _child_ours(endpoint: str) -> None:
    from polystore.streaming import StreamingBackend

    pull = StreamingBackend(mode="pull", endpoint=endpoint, max_queued_bytes=256 * 1024**2)
    print("ready", flush=True)
    for line in iter(sys.stdin.readline, ""):
        count = int(line)
        cpu, faults = time.process_time(), _minor_faults()
        for _ in range(count):
            pull.load("*", timeout=60)
        print(f"done {time.process_time() - cpu} {_minor_faults() - faults}", flush=True)


def _minor_faults() -> int:
    """Page faults of this process so far (all threads) that did not read a disk."""
    import resource

    return int(resource.getrusage(resource.RUSAGE_SELF).ru_minflt)


# -- the sending parent ---------------------------------------------------------
def _spawn(kind: str, endpoint: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "bench.stream_throughput", f"--child-{kind}", endpoint],
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

    def close() -> None:
        sock.close(5000)
        ctx.term()

    return send, close


def _our_sender(endpoint: str, _nbytes: int) -> Any:
    from polystore.streaming import StreamingBackend

    push = StreamingBackend(mode="push", endpoint=endpoint, send_timeout=30)

    def send(array: np.ndarray[Any, Any], _seq: int) -> None:
        push.save(array, "p")

    return send, push.close


class _Pair:
    """A receiver child and a sender for one implementation (raw or ours)."""

    def __init__(self, kind: str, endpoint: str, nbytes: int) -> None:
        self.child = _spawn(kind, endpoint)
        self.send, self.close = (_raw_sender if kind == "raw" else _our_sender)(endpoint, nbytes)
        self.seq = 0

    def run(self, array: np.ndarray[Any, Any], count: int) -> tuple[float, float, float, float]:
        """Send ``count`` messages: (messages/s until the receiver has them all, sender and
        receiver process CPU seconds per message, receiver page faults per message)."""
        assert self.child.stdin is not None and self.child.stdout is not None
        self.child.stdin.write(f"{count}\n")
        self.child.stdin.flush()
        start = time.perf_counter()
        cpu = time.process_time()
        for _ in range(count):
            self.send(array, self.seq)
            self.seq += 1
        done, child_cpu, child_faults = self.child.stdout.readline().split()
        assert done == "done"
        elapsed = time.perf_counter() - start
        return (count / elapsed, (time.process_time() - cpu) / count, float(child_cpu) / count,
                int(child_faults) / count)

    def stop(self) -> None:
        self.close()
        self.child.kill()
        self.child.wait()


class Comparison:
    """Per-round figures of raw and ours from :func:`compare` (index r: round r of each)."""

    def __init__(self) -> None:
        self.rounds: dict[str, list[tuple[float, float, float, float]]] = {"raw": [], "ours": []}

    def median(self, kind: str, column: int) -> float:
        """Median over the rounds of one column (0 rate, 1 sender CPU/msg, 2 receiver CPU/msg, 3 faults/msg)."""
        return float(np.median([row[column] for row in self.rounds[kind]]))

    def paired_ratios(self) -> list[float]:
        """ours/raw rate of each round (the two ran back to back), sorted."""
        return sorted(o[0] / r[0] for r, o in zip(self.rounds["raw"], self.rounds["ours"]))


def compare(
    endpoint: Callable[[str, int], str], array: np.ndarray[Any, Any], count: int, rounds: int
) -> Comparison:
    """Run raw and ours for ``rounds`` rounds each, back to back, the order swapped every round
    (ours-raw, raw-ours, ...) so both see the same noise and neither always goes first.

    Every round starts a new receiving process and a new sender for each side (at
    ``endpoint(kind, round)``), warmed up with ``count // 10`` messages: a process
    can settle into a slower or faster state for its whole life (where the
    scheduler put its threads, how its allocator reuses buffers), and one process
    per side for the whole comparison made that one draw decide every round.
    """
    result = Comparison()
    for r in range(rounds):
        for kind in ("ours", "raw") if r % 2 == 0 else ("raw", "ours"):
            pair = _Pair(kind, endpoint(kind, r), array.nbytes)
            try:
                pair.run(array, max(count // 10, 5))
                result.rounds[kind].append(pair.run(array, count))
            finally:
                pair.stop()
    return result


def part1(quick: bool) -> list[str]:
    lines = []
    tmp = tempfile.mkdtemp(prefix="polystore-bench-")
    big = np.random.default_rng(0).integers(0, 4000, size=BIG, dtype=np.uint16)
    small = np.random.default_rng(1).integers(0, 4000, size=SMALL, dtype=np.uint16)
    cases = [("8 MiB", big, 30 if quick else 60, "GB/s"), ("128 KiB", small, 1000 if quick else 3000, "msg/s")]
    rounds = 5 if quick else 11
    try:
        for transport in ("ipc", "tcp"):
            for label, array, count, unit in cases:
                name = label.replace(" ", "")

                def endpoint(kind: str, r: int, transport: str = transport, name: str = name) -> str:
                    if transport == "ipc":
                        return f"ipc://{tmp}/{kind}-{name}-{r}.sock"
                    return f"tcp://127.0.0.1:{free_port()}"

                result = compare(endpoint, array, count, rounds)
                scale = array.nbytes / 1e9 if unit == "GB/s" else 1.0
                lines.append(
                    report(
                        f"StreamingBackend vs raw pyzmq, {transport}, {label}",
                        result.median("ours", 0) * scale,
                        result.median("raw", 0) * scale,
                        unit,
                        0.9,
                    )
                )
                ratios = result.paired_ratios()
                quartiles = np.percentile(ratios, [25, 50, 75])
                for line in (
                    f"  {rounds} rounds each (medians above); ours/raw per round: median {quartiles[1]:.2f}x, "
                    f"quartiles {quartiles[0]:.2f}-{quartiles[2]:.2f}x, range {ratios[0]:.2f}-{ratios[-1]:.2f}x",
                    f"  per message, medians (us): sender CPU {1e6 * result.median('ours', 1):.1f} ours / "
                    f"{1e6 * result.median('raw', 1):.1f} raw, receiver CPU {1e6 * result.median('ours', 2):.1f} ours / "
                    f"{1e6 * result.median('raw', 2):.1f} raw; receiver page faults "
                    f"{result.median('ours', 3):.2f} ours / {result.median('raw', 3):.2f} raw",
                ):
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
    (_child_raw if sys.argv[1] == "--child-raw" else _child_ours)(sys.argv[2])
