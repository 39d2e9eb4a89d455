"""A load while another process rewrites the array returns one whole version, never a mix or a false error.

The writer (a real process) rewrites a plain array, an OME-Zarr image or one
image of a batch over and over, each version one value everywhere; this
process loads it in a loop meanwhile. Every load must be uniform (one
version) and none may raise (no "missing chunk", no "corrupted chunk").
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("zarr")

from polystore.zarr import ZarrBackend  # noqa: E402

_REWRITER = textwrap.dedent(
    """
    import sys
    import numpy as np
    from polystore.zarr import ZarrBackend

    root, kind = sys.argv[1], sys.argv[2]
    backend = ZarrBackend(root=root)
    shape = (8, 64, 64) if kind != "member" else (128, 128)
    for version in range(1, 1_000_000):
        data = np.full(shape, version, np.uint16)
        if kind == "plain":
            backend.save(data, "s.zarr/img", chunks=(1, 32, 32))
        elif kind == "ome":
            backend.save(data, "s.zarr/img", axes="zyx", chunks=(1, 32, 32))
        else:
            backend.save(data, "b.zarr/f1")
        if version == 1:
            print("ready", flush=True)
    """
)


@pytest.mark.parametrize("kind", ["plain", "ome", "member"])
def test_reader_during_rewrites_sees_one_version(tmp_path: Path, kind: str) -> None:
    backend = ZarrBackend(root=tmp_path)
    if kind == "member":
        frames = [np.zeros((128, 128), np.uint16) for _ in range(3)]
        backend.save_batch(frames, ["b.zarr/f0", "b.zarr/f1", "b.zarr/f2"], chunks=(1, 32, 32))
    path = "b.zarr/f1" if kind == "member" else "s.zarr/img"
    writer = subprocess.Popen(
        [sys.executable, "-c", _REWRITER, str(tmp_path), kind],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert writer.stdout is not None
        assert writer.stdout.readline().strip() == "ready", writer.stderr.read() if writer.stderr else ""
        mixed: list[tuple[int, int]] = []
        errors: list[str] = []
        versions: set[int] = set()
        loads = 0
        deadline = time.monotonic() + 4.0
        while time.monotonic() < deadline:
            try:
                got = backend.load(path)
                if kind == "member":
                    backend.load_batch(["b.zarr/f0", "b.zarr/f1"])  # the one-pass reader too
            except Exception as exc:  # noqa: BLE001 - every error is a finding here
                errors.append(f"{type(exc).__name__}: {exc}")
                continue
            loads += 1
            low, high = int(got.min()), int(got.max())
            versions.add(low)
            if low != high:
                mixed.append((low, high))
        assert writer.poll() is None, writer.stderr.read() if writer.stderr else ""
    finally:
        writer.kill()
        writer.wait(timeout=30)
    assert errors == [], f"{len(errors)} of {loads + len(errors)} loads failed: {errors[:3]}"
    assert mixed == [], f"{len(mixed)} of {loads} loads mixed two versions: {mixed[:5]}"
    assert loads > 20 and len(versions) > 3, (loads, len(versions))
