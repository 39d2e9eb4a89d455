"""Frames saved by index= into one declared OME-Zarr image (issue 13, first layer)."""

from __future__ import annotations

import os
import random
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("zarr")

from kill_testing import kill_trials  # noqa: E402
from polystore.config import ZarrConfig  # noqa: E402
from polystore.exceptions import ImageSaveError  # noqa: E402
from polystore.filemanager import FileManager  # noqa: E402
from polystore.zarr import ZarrBackend  # noqa: E402

IMG = "run.zarr/A/1/0"


def _frame(t: int, c: int, z: int = 0, shape: tuple[int, int] = (32, 32)) -> np.ndarray:
    return np.full(shape, 1 + t * 100 + c * 10 + z, np.uint16)


def _chunk_files(root: Path) -> list[Path]:
    return sorted(p for p in (root / IMG / "0" / "c").rglob("*") if p.is_file()) if (root / IMG / "0" / "c").exists() else []


def test_frames_in_any_order_make_one_ome_zarr_image(tmp_path: Path) -> None:
    backend = ZarrBackend(root=tmp_path)
    backend.declare_image(IMG, (3, 2, 4, 32, 32), "uint16", chunks=(1, 1, 2, 16, 16), channel_names=["GFP", "DAPI"])
    order = [(t, c, z) for t in range(3) for c in range(2) for z in range(4)]
    random.Random(1).shuffle(order)
    for t, c, z in order:
        backend.save(_frame(t, c, z), IMG, index={"t": t, "c": c, "z": z})
    expected = np.stack([np.stack([np.stack([_frame(t, c, z) for z in range(4)]) for c in range(2)]) for t in range(3)])
    np.testing.assert_array_equal(backend.load(IMG), expected)
    info = backend.info(IMG)
    assert info["axes"] == "tczyx" and info["channel_names"] == ["GFP", "DAPI"] and info["chunks"] == (1, 1, 2, 16, 16)
    import zarr
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Reader

    np.testing.assert_array_equal(zarr.open_group(str(tmp_path / IMG), mode="r")["0"][:], expected)
    node = list(Reader(parse_url(str(tmp_path / IMG)))())[0]
    np.testing.assert_array_equal(np.asarray(node.data[0]), expected)


def test_unlimited_t_grows_and_missing_frames_read_as_fill(tmp_path: Path) -> None:
    backend = ZarrBackend(root=tmp_path)
    backend.declare_image(IMG, (None, 2, 32, 32), "uint16", axes="tcyx")
    assert backend.load(IMG).shape == (0, 2, 32, 32)
    backend.save(_frame(4, 1), IMG, index={"t": 4, "c": 1})
    got = backend.load(IMG)
    assert got.shape == (5, 2, 32, 32)
    np.testing.assert_array_equal(got[4, 1], _frame(4, 1))
    assert not got[:4].any() and not got[4, 0].any()
    backend.save(_frame(2, 0), IMG, index={"t": 2})  # missing keys mean 0; t never shrinks
    got = backend.load(IMG)
    assert got.shape == (5, 2, 32, 32)
    np.testing.assert_array_equal(got[2, 0], _frame(2, 0))


def test_frames_sharing_a_chunk_wait_for_the_row_or_flush(tmp_path: Path) -> None:
    backend = ZarrBackend(root=tmp_path)
    backend.declare_image(IMG, (2, 1, 4, 32, 32), "uint16", chunks=(1, 1, 4, 32, 32))
    for z in (2, 0, 3):
        backend.save(_frame(0, 0, z), IMG, index={"t": 0, "z": z})
    assert _chunk_files(tmp_path) == []  # the row (t=0, all z) is not complete yet
    backend.save(_frame(0, 0, 1), IMG, index={"t": 0, "z": 1})
    assert len(_chunk_files(tmp_path)) == 1  # complete: written at once
    backend.save(_frame(1, 0, 3), IMG, index={"t": 1, "z": 3})
    backend.flush()
    got = backend.load(IMG)
    np.testing.assert_array_equal(got[1, 0, 3], _frame(1, 0, 3))
    assert not got[1, 0, :3].any()
    backend.save(_frame(1, 0, 0), IMG, index={"t": 1, "z": 0})  # the flushed row is read back first
    backend.close()
    got = backend.load(IMG)
    np.testing.assert_array_equal(got[1, 0, 0], _frame(1, 0, 0))
    np.testing.assert_array_equal(got[1, 0, 3], _frame(1, 0, 3))
    assert not [p for p in (tmp_path / IMG).rglob("*") if ".polystore-tmp-" in p.name]


def test_buffered_rows_stay_under_the_configured_bound(tmp_path: Path) -> None:
    row_bytes = 4 * 32 * 32 * 2  # one chunk row: 4 z-planes of 32x32 uint16
    backend = ZarrBackend(root=tmp_path, config=ZarrConfig(frame_buffer_bytes=2 * row_bytes))
    backend.declare_image(IMG, (6, 1, 4, 32, 32), "uint16", chunks=(1, 1, 4, 32, 32))
    for t in range(6):  # half of every row: six incomplete rows, at most two held
        for z in (0, 1):
            backend.save(_frame(t, 0, z), IMG, index={"t": t, "z": z})
        assert backend._frames_state()[(tmp_path / IMG).as_posix()].nbytes <= 2 * row_bytes
    assert len(_chunk_files(tmp_path)) >= 4
    for t in range(6):
        backend.save(_frame(t, 0, 3), IMG, index={"t": t, "z": 3})
    backend.flush()
    got = backend.load(IMG)
    for t in range(6):
        for z in (0, 1, 3):
            np.testing.assert_array_equal(got[t, 0, z], _frame(t, 0, z))
        assert not got[t, 0, 2].any()


@pytest.mark.parametrize(
    ("frame", "index", "words"),
    [
        (np.zeros((16, 32), np.uint16), {"t": 0, "c": 0, "z": 0}, "shape (16, 32)"),
        (np.zeros((32, 32), np.float32), {"t": 0, "c": 0, "z": 0}, "float32"),
        (np.zeros((32, 32), np.uint16), {"t": 0, "c": 2, "z": 0}, "['c']"),
        (np.zeros((32, 32), np.uint16), {"t": 0, "c": 0, "z": -1}, "['z']"),
        (np.zeros((32, 32), np.uint16), {"t": 0, "q": 1}, "['q']"),
        (np.zeros((32, 32), np.uint16), {"t": 1.5}, "['t']"),
    ],
)
def test_a_frame_that_does_not_fit_raises_and_writes_nothing(
    tmp_path: Path, frame: np.ndarray, index: dict[str, object], words: str
) -> None:
    backend = ZarrBackend(root=tmp_path)
    backend.declare_image(IMG, (None, 2, 4, 32, 32), "uint16", chunks=(1, 1, 2, 32, 32))
    backend.save(_frame(0, 0, 0), IMG, index={"t": 0, "c": 0, "z": 0})  # buffered: half a row
    with pytest.raises(ImageSaveError) as caught:
        backend.save(frame, IMG, index=index)
    message = str(caught.value)
    assert "A/1/0" in message and "run.zarr" in message and words in message and repr(index) in message
    backend.flush()
    got = backend.load(IMG)
    assert got.shape == (1, 2, 4, 32, 32)
    np.testing.assert_array_equal(got[0, 0, 0], _frame(0, 0, 0))
    assert int(got.sum()) == int(_frame(0, 0, 0).sum())


def test_errors_without_a_declared_image_and_with_foreign_keywords(tmp_path: Path) -> None:
    backend = ZarrBackend(root=tmp_path)
    with pytest.raises(ImageSaveError, match="declare it first"):
        backend.save(_frame(0, 0), IMG, index={"t": 0})
    backend.declare_image(IMG, (2, 32, 32), "uint16", axes="tyx")
    with pytest.raises(TypeError, match="chunks"):
        backend.save(_frame(0, 0), IMG, index={"t": 0}, chunks=(1, 8, 8))
    with pytest.raises(ImageSaveError, match="axes 'tyx'"):
        backend.save(_frame(0, 0), IMG, index={"t": 0}, axes="zyx")
    with pytest.raises(ValueError, match="only 't' may be unlimited"):
        backend.declare_image("x.zarr", (2, None, 32, 32), "uint16", axes="tcyx")
    with pytest.raises(ImageSaveError, match="already exists"):
        backend.declare_image(IMG, (2, 32, 32), "uint16", axes="tyx", overwrite=False)


def test_file_manager_saves_frames_by_index_like_the_viewer_backends(tmp_path: Path) -> None:
    fm = FileManager()
    path = str(tmp_path / IMG)
    fm.get_backend("zarr").declare_image(path, (None, 2, 32, 32), "uint16", axes="tcyx")
    for t in (1, 0):
        for c in (1, 0):
            fm.save(_frame(t, c), path, backend="zarr", index={"t": t, "c": c}, axes="tcyx")
    got = fm.load(path, backend="zarr")
    assert got.shape == (2, 2, 32, 32)
    np.testing.assert_array_equal(got[1, 0], _frame(1, 0))


_WRITER = textwrap.dedent("""
    import sys
    import numpy as np
    from polystore.zarr import ZarrBackend
    root, parity = sys.argv[1], int(sys.argv[2])
    backend = ZarrBackend(root=root)
    for t in range(parity, 12, 2):
        for c in range(2 if t < 10 else 1):  # the last row stays half full: written at exit
            backend.save(np.full((32, 32), 1 + t * 10 + c, np.uint16), "run.zarr/A/1/0", index={"t": t, "c": c})
""")


def test_two_processes_writing_different_chunks_both_land(tmp_path: Path) -> None:
    # chunk rows of one t (both channels): each process writes its own rows
    ZarrBackend(root=tmp_path).declare_image(IMG, (None, 2, 32, 32), "uint16", axes="tcyx", chunks=(1, 2, 32, 32))
    procs = [subprocess.Popen([sys.executable, "-c", _WRITER, str(tmp_path), str(p)]) for p in (0, 1)]
    assert [p.wait(timeout=60) for p in procs] == [0, 0]
    got = ZarrBackend(root=tmp_path).load(IMG)
    assert got.shape == (12, 2, 32, 32)
    for t in range(12):
        for c in range(2):
            want = 0 if t >= 10 and c == 1 else 1 + t * 10 + c
            assert int(got[t, c].min()) == int(got[t, c].max()) == want, (t, c)


_ZYGOTE = textwrap.dedent("""
    import os, random, sys
    import numpy as np
    from polystore.zarr import ZarrBackend
    root, journal_path = sys.argv[1], sys.argv[2]
    backend = ZarrBackend(root=root)
    journal = os.open(journal_path, os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    for line in sys.stdin:
        trial = int(line)
        pid = os.fork()
        if pid == 0:
            rng = random.Random(trial)
            order = [(t, c) for t in range(trial * 8, trial * 8 + 8) for c in range(2)]
            rng.shuffle(order)
            pending = []
            for t, c in order:
                backend.save(np.full((32, 32), 1 + t * 10 + c, np.uint16), "run.zarr/A/1/0", index={"t": t, "c": c})
                pending.append(f"{t},{c}")
                if rng.random() < 0.4:
                    backend.flush()
                    os.write(journal, ("done " + " ".join(pending) + "\\n").encode())
                    pending = []
            backend.flush()
            os.write(journal, ("done " + " ".join(pending) + "\\n").encode())
            os._exit(0)
        print(pid, flush=True)
        os.waitpid(pid, 0)
""")


def test_a_killed_frame_writer_leaves_every_completed_frame_readable(tmp_path: Path) -> None:
    backend = ZarrBackend(root=tmp_path)
    # chunks of two time points: frames wait in the buffer for their row partner
    backend.declare_image(IMG, (None, 2, 32, 32), "uint16", axes="tcyx", chunks=(2, 1, 16, 16))
    journal = tmp_path / "journal.txt"
    got = backend.load(IMG)
    for trial in kill_trials(_ZYGOTE, [str(tmp_path), str(journal)], range(20), (0.0, 0.08)):
        text = journal.read_text() if journal.exists() else ""
        done = {
            tuple(int(v) for v in item.split(","))
            for line in text.splitlines()
            for item in line.split()[1:]
        }
        got = backend.load(IMG)  # every chunk decodes
        assert got.shape[0] >= max((t + 1 for t, _ in done), default=0), trial
        for t in range(got.shape[0]):
            for c in range(2):
                lo, hi = int(got[t, c].min()), int(got[t, c].max())
                if (t, c) in done:
                    assert lo == hi == 1 + t * 10 + c, (trial, t, c, lo, hi)
                else:  # never half a chunk: fill, or the frame whole where its chunks landed
                    assert {lo, hi} <= {0, 1 + t * 10 + c}, (trial, t, c, lo, hi)
    import zarr

    assert zarr.open_array(str(tmp_path / IMG / "0"), mode="r")[:].shape == got.shape


def test_frames_on_an_object_store(s3_server: str, bucket: str) -> None:
    pytest.importorskip("s3fs")
    from s3_testing import s3_options

    backend = ZarrBackend(root=f"s3://{bucket}/frames", storage_options=s3_options(s3_server))
    backend.declare_image(IMG, (None, 2, 32, 32), "uint16", axes="tcyx", chunks=(2, 1, 16, 16))
    for t, c in [(1, 1), (0, 0), (2, 1), (1, 0), (0, 1)]:
        backend.save(_frame(t, c), IMG, index={"t": t, "c": c})
    backend.flush()
    got = ZarrBackend(root=f"s3://{bucket}/frames", storage_options=s3_options(s3_server)).load(IMG)
    assert got.shape == (3, 2, 32, 32)
    for t, c in [(1, 1), (0, 0), (2, 1), (1, 0), (0, 1)]:
        np.testing.assert_array_equal(got[t, c], _frame(t, c))
    assert not got[2, 0].any()
