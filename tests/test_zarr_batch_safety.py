"""Batches under failure and concurrency: full disks, several writer processes (real processes, real stores).

- a replace or append that fails (file size limit, a full tmpfs) raises
  ImageSaveError and leaves every image of the batch as it was;
- 4 processes appending to and replacing in one batch lose nothing: every
  image saved is there with its own pixels.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("zarr")

from polystore.zarr import ZarrBackend  # noqa: E402

_FAILING_WRITER = textwrap.dedent(
    """
    import os, resource, signal, sys
    import numpy as np
    from polystore.exceptions import ImageSaveError
    from polystore.zarr import ZarrBackend

    root, mode = sys.argv[1], sys.argv[2]
    backend = ZarrBackend(root=root)
    old = [np.full((64, 64), 10 + i, np.uint16) for i in range(4)]
    backend.save_batch(old, [f"b.zarr/img{i}" for i in range(4)], chunks=(1, 32, 32))
    # noise does not compress: every chunk is 2 KiB, more than the room left
    noise = np.random.default_rng(1).integers(0, 65535, size=(64, 64)).astype(np.uint16)
    if mode == "fsize":  # the kernel refuses to grow any file past 1 KiB (EFBIG)
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        hard = resource.getrlimit(resource.RLIMIT_FSIZE)[1]
        resource.setrlimit(resource.RLIMIT_FSIZE, (1024, hard))
    else:  # fill the tmpfs the store is on (ENOSPC)
        try:
            with open(os.path.join(root, "filler"), "wb") as f:
                while True:
                    f.write(b"x" * 4096)
                    f.flush()
        except OSError:
            pass
    for what, call in (
        ("replace", lambda: backend.save_batch([noise, noise], ["b.zarr/img1", "b.zarr/img2"])),
        ("replace-one", lambda: backend.save(noise, "b.zarr/img3")),
        ("append", lambda: backend.save_batch([noise, noise], ["b.zarr/new0", "b.zarr/new1"])),
        ("append-one", lambda: backend.save(noise, "b.zarr/new2")),
    ):
        try:
            call()
            print(what, "no error")
        except ImageSaveError as exc:
            print(what, "ImageSaveError", "b.zarr" in str(exc))
        except BaseException as exc:
            print(what, "raw", type(exc).__name__, exc)
    if mode == "fsize":
        resource.setrlimit(resource.RLIMIT_FSIZE, (hard, hard))
    else:
        os.remove(os.path.join(root, "filler"))
    fresh = ZarrBackend(root=root)
    print("files", fresh.list_files("b.zarr"))
    print("intact", all(np.array_equal(fresh.load(f"b.zarr/img{i}"), old[i]) for i in range(4)))
    print("stack", fresh.load("b.zarr").shape)
    fresh.save_batch([np.full((64, 64), 7, np.uint16)] * 2, ["b.zarr/img1", "b.zarr/later"])
    print("after", int(fresh.load("b.zarr/img1").max()), int(fresh.load("b.zarr/later").max()),
          fresh.load("b.zarr").shape)
    """
)

_EXPECTED = [
    "replace ImageSaveError True",
    "replace-one ImageSaveError True",
    "append ImageSaveError True",
    "append-one ImageSaveError True",
    "files ['b.zarr/img0', 'b.zarr/img1', 'b.zarr/img2', 'b.zarr/img3']",
    "intact True",
    "stack (4, 64, 64)",
    "after 7 7 (5, 64, 64)",
]


def test_failing_replace_and_append_keep_the_batch_file_size_limit(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", _FAILING_WRITER, str(tmp_path), "fsize"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.splitlines() == _EXPECTED, result.stdout + result.stderr[-2000:]
    # nothing half-written is left beside the images
    leftovers = [p for p in (tmp_path / "b.zarr").rglob("*") if ".polystore-tmp-" in p.name]
    assert leftovers == []


def _can_mount_tmpfs() -> bool:
    if shutil.which("unshare") is None:
        return False
    probe = subprocess.run(
        ["unshare", "-rm", "sh", "-c", "mount -t tmpfs -o size=64k tmpfs /mnt 2>/dev/null || "
         "mount -t tmpfs -o size=64k tmpfs /tmp"],
        capture_output=True,
        timeout=30,
    )
    return probe.returncode == 0


def test_failing_replace_and_append_keep_the_batch_full_tmpfs(tmp_path: Path) -> None:
    if not _can_mount_tmpfs():
        pytest.skip("cannot mount a tmpfs in a private mount namespace here (unshare -rm)")
    disk = tmp_path / "disk"
    disk.mkdir()
    # a 1 MiB tmpfs visible only to this child: the store and the full disk vanish with it
    command = (
        f"mount -t tmpfs -o size=1m tmpfs {disk} && "
        f"exec {sys.executable} -c \"$0\" {disk} tmpfs"
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    result = subprocess.run(
        ["unshare", "-rm", "sh", "-c", command, _FAILING_WRITER],
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.splitlines() == _EXPECTED, result.stdout + result.stderr[-2000:]


_WRITER = textwrap.dedent(
    """
    import sys
    import numpy as np
    from polystore.zarr import ZarrBackend

    root, w, rounds, kind = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    backend = ZarrBackend(root=root)
    axes = {"axes": "zyx"} if kind == "ome" else {}

    def image(value):
        return np.full((64, 64), value, np.uint16)

    for r in range(rounds):
        # two new images in one save_batch (the first call of all creates the batch)
        backend.save_batch([image(w * 1000 + r * 10), image(w * 1000 + r * 10 + 1)],
                           [f"b.zarr/w{w}r{r}a", f"b.zarr/w{w}r{r}b"], chunks=(1, 32, 32), **axes)
        if r:
            # replace one of the previous round's images alone, the other with a new image
            backend.save(image(w * 1000 + (r - 1) * 10 + 5), f"b.zarr/w{w}r{r - 1}a")
            backend.save_batch([image(w * 1000 + (r - 1) * 10 + 6), image(w * 1000 + r * 10 + 2)],
                               [f"b.zarr/w{w}r{r - 1}b", f"b.zarr/w{w}r{r}c"])
    print("done")
    """
)


@pytest.mark.parametrize("kind", ["plain", "ome"])
def test_four_processes_appending_and_replacing_lose_nothing(tmp_path: Path, kind: str) -> None:
    rounds = 8 if kind == "plain" else 4
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", _WRITER, str(tmp_path), str(w), str(rounds), kind],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for w in range(4)
    ]
    for p in procs:
        out, err = p.communicate(timeout=240)
        assert p.returncode == 0 and out.strip() == "done", err[-3000:]
    expected: dict[str, int] = {}
    for w in range(4):
        for r in range(rounds):
            expected[f"w{w}r{r}a"] = w * 1000 + r * 10 + (5 if r < rounds - 1 else 0)
            expected[f"w{w}r{r}b"] = w * 1000 + r * 10 + (6 if r < rounds - 1 else 1)
            if r:
                expected[f"w{w}r{r}c"] = w * 1000 + r * 10 + 2
    backend = ZarrBackend(root=tmp_path)
    assert backend.list_files("b.zarr") == sorted(f"b.zarr/{n}" for n in expected)
    got = {n: backend.load(f"b.zarr/{n}") for n in expected}
    wrong = {n: (int(a.min()), int(a.max())) for n, a in got.items() if not (a == expected[n]).all()}
    assert wrong == {}, f"images with other pixels than saved: {wrong}"
    assert backend.info("b.zarr")["shape"] == (len(expected), 64, 64)
    assert backend.info("b.zarr")["kind"] == ("image" if kind == "ome" else "array")


def test_a_held_batch_lock_times_out_with_image_save_error(tmp_path: Path) -> None:
    from polystore.config import ZarrConfig
    from polystore.exceptions import ImageSaveError

    backend = ZarrBackend(root=tmp_path, config=ZarrConfig(lock_timeout=0.5))
    backend.save_batch([np.zeros((8, 8), np.uint8)] * 2, ["b.zarr/x", "b.zarr/y"])
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(
            """
            import sys, time
            from polystore.zarr._batch import batch_lock
            from polystore.zarr._fs import _LocalFS
            with batch_lock(_LocalFS(), sys.argv[1], 60.0):
                print("held", flush=True)
                time.sleep(60)
            """
        ), str(tmp_path / "b.zarr")],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
        with pytest.raises(ImageSaveError, match=r"\.b\.zarr\.polystore\.lock.*lock_timeout"):
            backend.save(np.ones((8, 8), np.uint8), "b.zarr/x")
    finally:
        holder.kill()
        holder.wait(timeout=30)
    # the kernel released the dead holder's lock
    backend.save(np.ones((8, 8), np.uint8), "b.zarr/x")
    assert int(backend.load("b.zarr/x").max()) == 1
