"""``python -m bench core``: disk and memory backends against the raw calls, same run.

Prints, for each case, polystore's figure, the raw library's figure and their
ratio next to the target of issue 2. Files go to a temp folder on the same
filesystem as the working directory (``--dir`` to choose).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from bench._timing import report, report_absolute
from polystore import BackendRegistry, FileManager


def _alternate(
    ours: Callable[[], object],
    raw: Callable[[], object],
    repeat: int,
    settle: Callable[[], object] | None = None,
    pairs: list[tuple[float, float]] | None = None,
) -> tuple[float, float]:
    """Best wall time of each, interleaving trials (in turn first) so machine noise hits both alike.

    ``settle`` runs (untimed) before every trial: for write benchmarks it is
    ``os.sync``, so one side's pending writeback is not billed to the other.
    ``pairs`` (if given) receives each trial's (ours, raw) times, run back to back.
    """
    ours()
    raw()
    best_ours = best_raw = float("inf")
    pair = ((ours, True), (raw, False))
    for trial in range(repeat):
        times = [0.0, 0.0]
        for fn, is_ours in pair if trial % 2 == 0 else pair[::-1]:  # neither side always goes first
            if settle is not None:
                settle()
            start = time.perf_counter()
            fn()
            elapsed = time.perf_counter() - start
            times[not is_ours] = elapsed
            if is_ours:
                best_ours = min(best_ours, elapsed)
            else:
                best_raw = min(best_raw, elapsed)
        if pairs is not None:
            pairs.append((times[0], times[1]))
    return best_ours, best_raw


def bench_large(fm: FileManager, folder: str, repeat: int) -> None:
    import tifffile

    image = np.random.default_rng(0).integers(0, 4096, (2048, 2048), dtype=np.uint16)
    gb = image.nbytes / 1e9
    ours_npy, raw_npy = os.path.join(folder, "ours.npy"), os.path.join(folder, "raw.npy")
    ours_tif, raw_tif = os.path.join(folder, "ours.tif"), os.path.join(folder, "raw.tif")
    # a trial takes 2-20 ms: more of them make the best-of less sensitive to other jobs' load.
    # An 8 MB load is ~1.5 ms and its best of 12 swung 0.91-1.0x between quiet runs of byte-identical
    # files read by the same tifffile.imread call (300 interleaved trials: best 1.22 vs 1.24 ms)
    saves, loads = 2 * repeat, 20 * repeat

    t_ours, t_raw = _alternate(lambda: fm.save(image, ours_npy, backend="disk"),
                               lambda: np.save(raw_npy, image), saves, settle=os.sync)
    report("save 8 MB .npy (GB/s)", gb / t_ours, gb / t_raw, "GB/s", 0.97)
    t_ours, t_raw = _alternate(lambda: fm.load(ours_npy, backend="disk"),
                               lambda: np.load(raw_npy), loads)
    report("load 8 MB .npy (GB/s)", gb / t_ours, gb / t_raw, "GB/s", 0.97)
    # the .tif cases are judged on the median trial pair: a best-of-N of ~1 ms loads on this
    # shared machine went to whichever side caught one quiet moment (0.95x and 1.08x in two runs
    # of the same code, at load 8.8, while every median pair said 1.09-1.10x)
    pairs: list[tuple[float, float]] = []
    best = _alternate(lambda: fm.save(image, ours_tif, backend="disk"),
                      lambda: tifffile.imwrite(raw_tif, image), saves, settle=os.sync, pairs=pairs)
    t_ours, t_raw = _median_pair(pairs)
    report("save 8 MB .tif (GB/s)", gb / t_ours, gb / t_raw, "GB/s", 0.97)
    _print_best(pairs, best)
    _bench_tif_load(fm, image, ours_tif, raw_tif, loads, "load 8 MB .tif (GB/s)", gb, "GB/s", 0.97)
    # the fixed cost of a load, which the 8 MB figure dilutes: a 256x256 uint16 tile
    _bench_tif_load(fm, image[:256, :256].copy(), ours_tif, raw_tif, loads,
                    "load 256x256 uint16 .tif (loads/s)", 1.0, "/s", None)


def _bench_tif_load(fm: FileManager, image: np.ndarray, ours_tif: str, raw_tif: str, loads: int,
                    label: str, size: float, unit: str, target: float | None) -> None:
    """``fm.load`` against ``tifffile.imread`` of ``image`` written by each; reports ``size`` per second."""
    import tifffile

    fm.save(image, ours_tif, backend="disk")
    tifffile.imwrite(raw_tif, image)
    # one file is read by both sides when polystore wrote the same bytes as tifffile (it does:
    # the same imwrite call): where each file's pages sit in the page cache then cannot favour
    # either side (both reading their own file swung 0.91-1.0x)
    same_bytes = Path(ours_tif).read_bytes() == Path(raw_tif).read_bytes()
    tif_for_ours = raw_tif if same_bytes else ours_tif
    pairs: list[tuple[float, float]] = []
    best = _alternate(lambda: fm.load(tif_for_ours, backend="disk"),
                      lambda: tifffile.imread(raw_tif), loads, pairs=pairs)
    t_ours, t_raw = _median_pair(pairs)
    report(label, size / t_ours, size / t_raw, unit, target)
    _print_best(pairs, best)
    print(f"  .tif files byte-identical: {same_bytes} ({'one file read by both' if same_bytes else 'each reads its own'})")


def _median_pair(pairs: list[tuple[float, float]]) -> tuple[float, float]:
    """The (ours, raw) trial pair whose ratio is the median: drift and bursts of other jobs cancel there."""
    return sorted(pairs, key=lambda p: p[1] / p[0])[len(pairs) // 2]


def _print_best(pairs: list[tuple[float, float]], best: tuple[float, float]) -> None:
    ratios = sorted(raw / ours for ours, raw in pairs)
    quartiles = ratios[len(ratios) // 4], ratios[(3 * len(ratios)) // 4]
    print(f"  median of {len(pairs)} trial pairs (middle half of pair ratios {quartiles[0]:.2f}-{quartiles[1]:.2f}); "
          f"best of each {best[0] * 1e6:.0f} vs {best[1] * 1e6:.0f} us ({best[1] / best[0]:.2f}x)")


def _create_cost_us(folder: str, count: int = 200) -> float:
    """Microseconds to create one empty file in a new subfolder of ``folder`` (the files stay)."""
    sub = tempfile.mkdtemp(prefix="probe", dir=folder)
    start = time.perf_counter()
    for i in range(count):
        os.close(os.open(os.path.join(sub, str(i)), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644))
    return (time.perf_counter() - start) / count * 1e6


def _settled_create_cost_us(folder: str, settle_seconds: float, settled_us: float = 150.0) -> tuple[float, float]:
    """The cost of creating a file, after waiting (up to ``settle_seconds``) for it to settle.

    Right after another job deleted many files, every file created in that
    block group costs hundreds of us more, on both sides alike, for about a
    minute: that squeezes the new-files ratio towards 1.0 whatever either side
    does. The wait is skipped when creating is already cheap. Returns the cost (us)
    and the seconds waited.
    """
    cost = _create_cost_us(folder)
    start = time.monotonic()
    while cost > settled_us and time.monotonic() - start < settle_seconds:
        time.sleep(5)
        cost = _create_cost_us(folder)
    return cost, time.monotonic() - start


def bench_small_batch(fm: FileManager, folder: str, count: int, repeat: int, settle_seconds: float = 0.0) -> None:
    rng = np.random.default_rng(1)
    data = [rng.random((64, 64), dtype=np.float32) for _ in range(count)]
    trial = iter(range(10**6))

    def fresh_paths(kind: str) -> list[str]:
        sub = os.path.join(folder, f"{kind}{next(trial)}")
        os.makedirs(sub)
        return [os.path.join(sub, f"{i:05d}.npy") for i in range(count)]

    def raw_save(paths: list[str]) -> None:
        for array, path in zip(data, paths):
            np.save(path, array)

    # New files each trial (what a pipeline does), then overwriting the same files.
    # Creating a file on ext4 costs more the more inodes of its block group were
    # deleted in the last minute (the allocator steps over each one): after other
    # jobs delete files, that cost fades during the run, and the best of a few
    # trials goes to whichever side ran last. The verdict is the median trial pair
    # (each pair run back to back, either side first in turn): drift cancels there.
    pairs: list[tuple[float, float]] = []
    create_before, waited = _settled_create_cost_us(folder, settle_seconds)
    best_ours, best_raw = _alternate(lambda: fm.save_batch(data, fresh_paths("o"), backend="disk"),
                                     lambda: raw_save(fresh_paths("r")), max(repeat, 5), settle=os.sync,
                                     pairs=pairs)
    t_ours, t_raw = _median_pair(pairs)
    report(f"save_batch {count} new 64x64 f32 .npy (files/s)", count / t_ours, count / t_raw, "f/s", 1.0)
    print(f"  median of {len(pairs)} trial pairs; pair ratios "
          + " ".join(f"{raw / ours:.2f}" for ours, raw in pairs)
          + f"; best of each {count / best_ours:.0f} vs {count / best_raw:.0f} f/s ({best_raw / best_ours:.2f}x)")
    # tens of us on a settled filesystem; hundreds while recent deletions are stepped over
    print(f"  one empty file created here: {create_before:.0f} us before (after waiting {waited:.0f} s), "
          f"{_create_cost_us(folder):.0f} us after")
    ours_paths, raw_paths = fresh_paths("ours"), fresh_paths("raw")
    t_ours, t_raw = _alternate(lambda: fm.save_batch(data, ours_paths, backend="disk"),
                               lambda: raw_save(raw_paths), repeat, settle=os.sync)
    # no target: np.save rewrites the file in place (a crash leaves it half written, a reader
    # of the old file sees the new bytes); an atomic save puts a new inode in place
    report(f"save_batch {count} overwritten .npy (files/s)", count / t_ours, count / t_raw, "f/s", None)

    def raw_load() -> None:
        for path in raw_paths:
            np.load(path)

    t_ours, t_raw = _alternate(lambda: fm.load_batch(ours_paths, backend="disk"), raw_load, repeat)
    report(f"load_batch {count} x 64x64 f32 .npy (files/s)", count / t_ours, count / t_raw, "f/s", 2.0)


def bench_memory(ops: int) -> None:
    fm = FileManager(BackendRegistry())
    backend = fm.get_backend("memory")
    array = np.zeros((64, 64), np.float32)
    paths = [f"/plate/A01/site{i}.npy" for i in range(1000)]
    save, load = backend.save, backend.load
    rounds = max(1, ops // len(paths))
    for path in paths:
        save(array, path)

    def direct() -> None:
        for _ in range(rounds):
            for path in paths:
                save(array, path)
                load(path)

    def plain_dict() -> None:
        store: dict[str, object] = {}
        for _ in range(rounds):
            for path in paths:
                store[path] = array
                store[path]

    def through_fm() -> None:
        for _ in range(rounds):
            for path in paths:
                fm.save(array, path, "memory")
                fm.load(path, "memory")

    n = rounds * len(paths)
    t_ours, t_dict = _alternate(direct, plain_dict, 5)
    t_fm = min(_alternate(through_fm, plain_dict, 5)[0], t_ours * 100)
    pair = t_ours / n * 1e6
    report_absolute("memory backend, one save or load (us)", pair / 2, "us", 0.5,
                    detail=f"save+load pair {pair:.3f} us; plain dict pair {t_dict / n * 1e6:.3f} us")
    report_absolute("memory via fm.save/fm.load, one op (us)", t_fm / n * 1e6 / 2, "us", 0.5)


def bench_import(repeat: int) -> None:
    """Time, inside fresh interpreters that already imported numpy, what polystore adds.

    Timing inside the process (not the wall time of two interpreters) keeps the
    interpreter start-up, whose noise on a loaded machine is larger than the figure,
    out of it. Bytecode is cached (in a temp folder) as for an installed package:
    with ``PYTHONDONTWRITEBYTECODE`` set, every run would compile polystore from
    source while numpy's cached bytecode is used.
    """
    cache = tempfile.mkdtemp(prefix="polystore-bench-pyc-")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    env["PYTHONPYCACHEPREFIX"] = cache

    def seconds(code: str) -> float:
        out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True, env=env)
        return float(out.stdout)

    def median_ms(setup: str, statement: str) -> float:
        code = f"import time\n{setup}\nstart = time.perf_counter()\n{statement}\nprint(time.perf_counter() - start)"
        seconds(code)  # writes the bytecode cache
        return statistics.median(seconds(code) for _ in range(repeat)) * 1e3

    try:
        numpy_ms = median_ms("", "import numpy")
        ours = median_ms("import numpy", "import polystore")
        report_absolute("import polystore minus import numpy (ms)", ours, "ms", 30.0,
                        detail=f"median of {repeat}, timed after import numpy ({numpy_ms:.1f} ms)")
        # what a first disk save needs: FileManager, the disk backend and its codecs
        first = median_ms("import numpy", "from polystore import FileManager\nFileManager().get_backend('disk')")
        report_absolute("import for a first disk save, minus numpy (ms)", first, "ms", None,
                        detail=f"median of {repeat}: FileManager + disk backend + codecs")
    finally:
        shutil.rmtree(cache, ignore_errors=True)


def main(argv: list[str]) -> int:
    """Run the core benchmarks and print ratios."""
    parser = argparse.ArgumentParser(prog="python -m bench core", description=__doc__)
    parser.add_argument("--dir", default=None, help="folder for the files (default: a temp folder)")
    parser.add_argument("--repeat", type=int, default=7)
    parser.add_argument("--count", type=int, default=2000, help="small files per batch")
    parser.add_argument("--settle", type=float, default=75.0,
                        help="seconds to wait at most, before the write cases, for file creation "
                             "slowed by other jobs' recent deletions to settle (0: no wait)")
    args = parser.parse_args(argv)
    folder = tempfile.mkdtemp(prefix="polystore-bench-", dir=args.dir)
    fm = FileManager(BackendRegistry())
    print(f"# polystore core benchmark, numpy {np.__version__}, python {sys.version.split()[0]}, {folder}")
    try:
        # a replacing save creates a new inode each time (np.save rewrites the old one)
        cost, waited = _settled_create_cost_us(folder, args.settle)
        print(f"# one empty file created here: {cost:.0f} us (after waiting {waited:.0f} s)")
        bench_large(fm, folder, args.repeat)
        bench_small_batch(fm, folder, args.count, max(3, args.repeat // 2), args.settle)
        bench_memory(200_000)
        bench_import(max(5, args.repeat))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    return 0
