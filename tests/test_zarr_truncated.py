"""Chunks cut short (a disk filled up, a copy stopped): ImageLoadError naming the chunk, never garbage or a crash.

Covers polystore's own decoder (arrays it wrote, and zarr-python's bytes+blosc
arrays) and arrays read through zarr-python (transpose, v2 filters), whose
Blosc frames are checked before zarr-python decodes them.

Blosc trusts the sizes in its 16-byte header, so a truncated frame used to decode
"without error" into whatever lay past the buffer, or crash the process. The
loads run in a child process, so a crash shows up as its exit code.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

pytest.importorskip("zarr")

_SCRIPT = textwrap.dedent(
    """
    import json, os, sys
    import numpy as np
    import zarr
    from polystore.config import ZarrCompressor, ZarrConfig
    from polystore.exceptions import ImageLoadError
    from polystore.zarr import ZarrBackend

    root = sys.argv[1]
    rng = np.random.default_rng(0)
    # noise does not compress: Blosc stores it "memcpyed"; smooth data compresses
    images = {
        "noise": rng.integers(0, 65535, size=(2, 256, 256)).astype(np.uint16),
        "smooth": (1000 + rng.integers(0, 64, size=(2, 256, 256))).astype(np.uint16),
    }

    def write(case, data, where):
        if case == "zarr-python":  # a foreign array that polystore decodes itself
            z = zarr.create_array(where, shape=data.shape, dtype=data.dtype, chunks=(1, 256, 256),
                                  compressors=zarr.codecs.BloscCodec(cname="lz4", clevel=1))
            z[:] = data
            return os.path.join(where, "c", "1", "0", "0")
        if case == "zarr-python-transpose":  # foreign arrays read through zarr-python
            z = zarr.create_array(where, shape=data.shape, dtype=data.dtype, chunks=(1, 256, 256),
                                  filters=[zarr.codecs.TransposeCodec(order=(0, 2, 1))],
                                  compressors=zarr.codecs.BloscCodec(cname="lz4", clevel=1))
            z[:] = data
            return os.path.join(where, "c", "1", "0", "0")
        if case == "zarr-python-v2-delta":
            from numcodecs import Blosc, Delta
            z = zarr.create_array(where, shape=data.shape, dtype=data.dtype, chunks=(1, 256, 256), zarr_format=2,
                                  filters=[Delta(dtype="u2")], compressors=Blosc(cname="lz4", clevel=1))
            z[:] = data
            return os.path.join(where, "1.0.0")
        fmt = 2 if case.endswith("v2") else 3
        comp = ZarrCompressor.ZSTD if case.startswith("zstd") else ZarrCompressor.LZ4
        ZarrBackend(config=ZarrConfig(compressor=comp, zarr_format=fmt)).save(data, where)
        return os.path.join(where, "1", "0", "0") if fmt == 2 else os.path.join(where, "c", "1", "0", "0")

    for case in ("lz4", "zstd", "lz4-v2", "zarr-python", "zarr-python-transpose", "zarr-python-v2-delta"):
        for kind, data in images.items():
            where = os.path.join(root, f"{case}-{kind}.zarr")
            chunk = write(case, data, where)
            raw = open(chunk, "rb").read()
            for cut in (0, 15, 16, 17, 0.5, -1):
                n = cut if isinstance(cut, int) and cut >= 0 else len(raw) + cut if isinstance(cut, int) else int(cut * len(raw))
                with open(chunk, "wb") as f:
                    f.write(raw[:n])
                for lazy in (False, True):
                    try:
                        got = ZarrBackend().load(where, lazy=lazy)
                        got = np.asarray(got.compute() if lazy else got)
                        outcome = "loaded, equal" if np.array_equal(got, data) else "loaded garbage"
                    except ImageLoadError as exc:
                        outcome = "ImageLoadError: " + str(exc)
                    except Exception as exc:
                        outcome = f"{type(exc).__name__}: {exc}"
                    key = os.path.relpath(chunk, where).replace(os.sep, "/")
                    print(json.dumps({"case": case, "kind": kind, "cut": n, "size": len(raw), "lazy": lazy,
                                      "key": key, "outcome": outcome}), flush=True)
    print("done", flush=True)
    """
)


def test_truncated_chunks_raise_image_load_error_naming_the_chunk(tmp_path: Path) -> None:
    result = subprocess.run(
        [sys.executable, "-c", _SCRIPT, str(tmp_path)], capture_output=True, text=True, timeout=240
    )
    assert result.returncode == 0, f"the loading process died ({result.returncode}): {result.stderr[-2000:]}"
    lines = result.stdout.splitlines()
    assert lines[-1] == "done"
    records = [json.loads(line) for line in lines[:-1]]
    assert len(records) == 6 * 2 * 6 * 2
    bad = []
    for r in records:
        if not (r["outcome"].startswith("ImageLoadError") and f"'{r['key']}'" in r["outcome"]
                and "corrupted" in r["outcome"]):
            bad.append(r)
    assert not bad, "\n".join(json.dumps(r) for r in bad[:20])
