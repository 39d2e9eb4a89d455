"""Bad input and faults: not-a-store, missing arrays, damaged chunks, writers killed mid-save."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("zarr")

from polystore.exceptions import (  # noqa: E402
    ImageLoadError,
    PathIsADirectoryError,
    PathNotFoundError,
    StorageResolutionError,
)
from polystore.zarr import ZarrBackend  # noqa: E402


@pytest.fixture
def backend(tmp_path: Path) -> ZarrBackend:
    return ZarrBackend(root=tmp_path)


def _data() -> np.ndarray:
    return (np.arange(4 * 64 * 64) % 1000).astype(np.uint16).reshape(4, 64, 64)


def test_folder_that_is_not_a_store(backend: ZarrBackend, tmp_path: Path) -> None:
    (tmp_path / "plain.zarr" / "A01").mkdir(parents=True)
    (tmp_path / "plain.zarr" / "A01" / "notes.txt").write_text("hello")
    with pytest.raises(StorageResolutionError, match=r"plain\.zarr.*not a zarr store.*A01"):
        backend.load("plain.zarr/A01")
    with pytest.raises(StorageResolutionError, match="not a zarr store"):
        backend.load("plain.zarr")


def test_missing_store_and_missing_array(backend: ZarrBackend) -> None:
    with pytest.raises(PathNotFoundError) as info:
        backend.load("nowhere.zarr/a")
    assert isinstance(info.value, FileNotFoundError)
    backend.save(_data(), "s.zarr/present")
    with pytest.raises(PathNotFoundError, match=r"missing.*s\.zarr"):
        backend.load("s.zarr/missing")
    with pytest.raises(PathIsADirectoryError, match="is a group"):
        backend.ensure_directory("s.zarr/grp")
        backend.load("s.zarr/grp")


def test_deleted_chunk_reads_as_fill_value(backend: ZarrBackend, tmp_path: Path) -> None:
    """zarr v3 spec: a missing chunk is the fill value, in polystore's own arrays too."""
    backend.save(_data(), "s.zarr/img", chunks=(1, 32, 32))
    (tmp_path / "s.zarr" / "img" / "c" / "2" / "1" / "0").unlink()
    expected = _data()
    expected[2, 32:64, 0:32] = 0
    np.testing.assert_array_equal(backend.load("s.zarr/img"), expected)
    np.testing.assert_array_equal(backend.load("s.zarr/img", lazy=True)[2].compute(), expected[2])


@pytest.mark.parametrize("damage", [b"", b"not blosc at all", None])
def test_corrupted_chunk_is_named(backend: ZarrBackend, tmp_path: Path, damage: bytes | None) -> None:
    backend.save(_data(), "s.zarr/img", chunks=(1, 32, 32))
    chunk = tmp_path / "s.zarr" / "img" / "c" / "3" / "0" / "1"
    raw = chunk.read_bytes()
    chunk.write_bytes(raw[: len(raw) // 2] if damage is None else damage)
    with pytest.raises(ImageLoadError, match=r"corrupted chunk 'c/3/0/1' of array 'img' in store"):
        backend.load("s.zarr/img")


def test_corrupted_chunk_uncompressed(tmp_path: Path) -> None:
    from polystore.config import ZarrCompressor, ZarrConfig

    backend = ZarrBackend(root=tmp_path, config=ZarrConfig(compressor=ZarrCompressor.NONE))
    backend.save(_data(), "u.zarr", chunks=(1, 64, 64))
    (tmp_path / "u.zarr" / "c" / "0" / "0" / "0").write_bytes(b"\x00" * 10)
    with pytest.raises(ImageLoadError, match=r"corrupted chunk 'c/0/0/0'"):
        backend.load("u.zarr")


def test_corrupted_metadata(backend: ZarrBackend, tmp_path: Path) -> None:
    backend.save(_data(), "s.zarr/img")
    (tmp_path / "s.zarr" / "img" / "zarr.json").write_text("{ not json")
    with pytest.raises(ImageLoadError, match="unreadable metadata"):
        backend.load("s.zarr/img")


def test_damaged_foreign_array_still_raises_image_load_error(backend: ZarrBackend, tmp_path: Path) -> None:
    import zarr

    z = zarr.create_array(str(tmp_path / "v2.zarr"), shape=(10, 10), dtype="u2", chunks=(5, 5), zarr_format=2)
    z[:] = 7
    (tmp_path / "v2.zarr" / "0.0").write_bytes(b"garbage")
    with pytest.raises(ImageLoadError, match=r"v2\.zarr"):
        backend.load("v2.zarr")


def _dying_writer(after_chunks: int | None, work: str) -> str:
    """A script that runs ``work`` with a ZarrBackend whose process dies (``os._exit(9)``,
    no cleanup) while encoding chunk number ``after_chunks + 1`` (None: it does not die
    by itself; the test kills it), whether polystore's own encoder or zarrs' writes it."""
    return textwrap.dedent(
        f"""
        import os, sys
        import numpy as np
        import polystore.zarr as pz

        real = pz._Codec.numcodec
        count = [0]

        class Dying:
            def __init__(self, codec):
                self.codec = codec
            def encode(self, block):
                count[0] += 1
                if count[0] > {after_chunks}:
                    os._exit(9)
                return self.codec.encode(block)

        if {after_chunks is not None}:
            pz._Codec.numcodec = lambda self: Dying(real(self))

        # new arrays are encoded by zarrs when it is installed: it dies at the same chunk
        import polystore.zarr._zarrs_delegate as zd
        hook = zd._hook()

        class DyingZarrs:
            def __init__(self, *args, **kwargs):
                self.impl = hook[0](*args, **kwargs)
            def retrieve_chunks_and_apply_index(self, items, out):
                self.impl.retrieve_chunks_and_apply_index(items, out)
            def store_chunks_with_indices(self, items, value, write_empty):
                left = {after_chunks} - count[0]
                count[0] += len(items)
                self.impl.store_chunks_with_indices(items[:max(0, left)], value, write_empty)
                if len(items) > left:
                    os._exit(9)

        if {after_chunks is not None} and hook is not None:
            zd._hook = lambda: (DyingZarrs, hook[1], hook[2])
        backend = pz.ZarrBackend(root=sys.argv[1])
        """
    ) + textwrap.dedent(work) + 'print("finished")\n'


_KILLER = _dying_writer(5, """
    data = np.full((16, 64, 64), int(sys.argv[3]), np.uint16)
    backend.save(data, sys.argv[2], chunks=(1, 32, 32))
""")


def _kill_mid_save(root: Path, path: str, value: int) -> None:
    result = subprocess.run(
        [sys.executable, "-c", _KILLER, str(root), path, str(value)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 9, result.stderr
    assert "finished" not in result.stdout


def test_writer_killed_mid_save_leaves_no_readable_half_array(backend: ZarrBackend, tmp_path: Path) -> None:
    backend.save(np.ones((8, 8), np.uint8), "k.zarr/other")
    _kill_mid_save(tmp_path, "k.zarr/new", 5)
    # some chunks were written, but no metadata points at them
    assert list((tmp_path / "k.zarr").glob(".new.polystore-tmp-*/c/*/*/*"))
    assert not backend.exists("k.zarr/new")
    with pytest.raises(PathNotFoundError):
        backend.load("k.zarr/new")
    assert backend.list_files("k.zarr") == ["k.zarr/other"]
    assert backend.list_dir("k.zarr") == ["other"]
    # the store is still fine for zarr-python and ome tooling
    import zarr

    assert sorted(zarr.open_group(str(tmp_path / "k.zarr"), mode="r").array_keys()) == ["other"]
    # the recovery rule: cleanup() removes the leftovers; saving again just works
    assert len(backend.cleanup("k.zarr")) == 1
    backend.save(np.full((16, 64, 64), 5, np.uint16), "k.zarr/new")
    assert int(backend.load("k.zarr/new").min()) == 5


def test_writer_killed_mid_overwrite_keeps_the_old_array(backend: ZarrBackend, tmp_path: Path) -> None:
    backend.save(np.full((16, 64, 64), 1, np.uint16), "k.zarr/img", chunks=(1, 32, 32))
    _kill_mid_save(tmp_path, "k.zarr/img", 2)
    np.testing.assert_array_equal(backend.load("k.zarr/img"), np.full((16, 64, 64), 1, np.uint16))
    meta = json.loads((tmp_path / "k.zarr" / "img" / "zarr.json").read_text())
    assert meta["shape"] == [16, 64, 64]


def test_damaged_chunk_in_a_polystore_v2_array_is_named(tmp_path: Path) -> None:
    from polystore.config import ZarrConfig

    backend = ZarrBackend(root=tmp_path, config=ZarrConfig(zarr_format=2))
    backend.save(_data(), "v2.zarr/img", chunks=(1, 32, 32))
    (tmp_path / "v2.zarr" / "img" / "2" / "1" / "0").unlink()
    assert not backend.load("v2.zarr/img")[2, 32:64, 0:32].any()  # missing: the fill value
    (tmp_path / "v2.zarr" / "img" / "3" / "0" / "1").write_bytes(b"bad")
    with pytest.raises(ImageLoadError, match=r"corrupted chunk '3/0/1'"):
        backend.load("v2.zarr/img", lazy=True)[3].compute()


def test_truncated_uncompressed_chunk_in_a_strided_read(tmp_path: Path) -> None:
    from polystore.config import ZarrCompressor, ZarrConfig

    backend = ZarrBackend(root=tmp_path, config=ZarrConfig(compressor=ZarrCompressor.NONE))
    backend.save(_data(), "u.zarr", chunks=(1, 32, 32))
    np.testing.assert_array_equal(backend.load("u.zarr"), _data())
    chunk = tmp_path / "u.zarr" / "c" / "1" / "1" / "1"
    chunk.write_bytes(chunk.read_bytes()[:100])
    with pytest.raises(ImageLoadError, match=r"corrupted chunk 'c/1/1/1'"):
        backend.load("u.zarr")
    chunk.write_bytes(b"")
    with pytest.raises(ImageLoadError, match=r"corrupted chunk 'c/1/1/1'"):
        backend.load("u.zarr")


_APPEND_KILLER = _dying_writer(3, """
    frames = [np.full((64, 64), 100 + i, np.uint16) for i in range(4)]
    backend.save_batch(frames, [f"b.zarr/new{i}" for i in range(4)])
""")


def test_writer_killed_mid_append_leaves_the_batch_as_it_was(backend: ZarrBackend, tmp_path: Path) -> None:
    frames = [np.full((64, 64), i, np.uint16) for i in range(4)]
    backend.save_batch(frames, [f"b.zarr/old{i}" for i in range(4)], chunks=(1, 32, 32))
    result = subprocess.run(
        [sys.executable, "-c", _APPEND_KILLER, str(tmp_path)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 9, result.stderr
    assert list((tmp_path / "b.zarr" / "c" / "4").rglob("*"))  # appended chunks were written ...
    assert backend.list_files("b.zarr") == [f"b.zarr/old{i}" for i in range(4)]  # ... but not published
    np.testing.assert_array_equal(backend.load("b.zarr"), np.stack(frames))
    backend.save_batch([np.full((64, 64), 9, np.uint16)], ["b.zarr/again"])
    assert backend.list_files("b.zarr") == ["b.zarr/again"] + [f"b.zarr/old{i}" for i in range(4)]
    assert int(backend.load("b.zarr/again").max()) == 9 and backend.info("b.zarr")["shape"] == (5, 64, 64)


_REPLACE_KILLER = _dying_writer(2, """
    frames = [np.full((64, 64), 50 + i, np.uint16) for i in range(2)]
    backend.save_batch(frames, ["b.zarr/old1", "b.zarr/old2"])
""")


def test_writer_killed_mid_replace_keeps_the_old_images(backend: ZarrBackend, tmp_path: Path) -> None:
    frames = [np.full((64, 64), i, np.uint16) for i in range(4)]
    backend.save_batch(frames, [f"b.zarr/old{i}" for i in range(4)], chunks=(1, 32, 32))
    result = subprocess.run(
        [sys.executable, "-c", _REPLACE_KILLER, str(tmp_path)], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 9, result.stderr
    # the new chunks were staged beside the old image, which is untouched
    assert list((tmp_path / "b.zarr" / "c").glob(".1.polystore-tmp-*/*/*"))
    np.testing.assert_array_equal(backend.load("b.zarr"), np.stack(frames))
    assert len(backend.cleanup("b.zarr")) == 1
    backend.save_batch([np.full((64, 64), 9, np.uint16)], ["b.zarr/old1"])
    assert int(backend.load("b.zarr/old1").min()) == 9


# A zygote imports everything once, then forks one writer per trial; the test
# SIGKILLs the writer after a random delay. The writer journals each operation
# ("start" with the versions it writes, then "done") so the test knows what
# must be there afterwards and what may be either the old or the new version.
_ZYGOTE = _dying_writer(None, """
    import random, signal
    journal = os.open(sys.argv[2], os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    for line in sys.stdin:
        trial = int(line)
        pid = os.fork()
        if pid == 0:
            rng = random.Random(trial)
            names = [n.rpartition("/")[2] for n in backend.list_files("b.zarr")]
            for op in range(10_000):
                value = (trial * 1000 + op) % 65536
                if names and rng.random() < 0.6:  # replace one or two images
                    chosen = rng.sample(names, min(len(names), rng.choice([1, 2])))
                else:  # append one or two
                    chosen = [f"t{trial}o{op}i{k}" for k in range(rng.choice([1, 2]))]
                entry = " ".join(f"{n}={value}" for n in chosen)
                os.write(journal, f"start {entry}\\n".encode())
                images = [np.full((64, 64), value, np.uint16) for _ in chosen]
                if len(chosen) == 1 and rng.random() < 0.5:
                    backend.save(images[0], f"b.zarr/{chosen[0]}")
                else:
                    backend.save_batch(images, [f"b.zarr/{n}" for n in chosen], chunks=(1, 32, 32))
                os.write(journal, b"done\\n")
                names += [n for n in chosen if n not in names]
            os._exit(0)
        print(pid, flush=True)
        os.waitpid(pid, 0)
""")


def _replay(journal: str) -> tuple[dict[str, int], dict[str, set[int]]]:
    """(version each image must have, other versions killed operations may have left)."""
    done: dict[str, int] = {}
    maybe: dict[str, set[int]] = {}
    pending: dict[str, int] = {}
    for line in journal.splitlines() + ["start"]:
        if line.startswith("start"):
            for name, value in pending.items():  # cut short: old or new version
                maybe.setdefault(name, set()).add(value)
            pending = {n: int(v) for n, v in (item.split("=") for item in line.split()[1:])}
        elif line == "done":
            for name, value in pending.items():
                done[name] = value
                maybe.pop(name, None)
            pending = {}
    return done, maybe


def test_writers_sigkilled_at_random_points_lose_nothing(backend: ZarrBackend, tmp_path: Path) -> None:
    from kill_testing import kill_trials

    backend.save_batch([np.full((64, 64), 1, np.uint16)] * 2, ["b.zarr/first0", "b.zarr/first1"], chunks=(1, 32, 32))
    journal = tmp_path / "journal.txt"
    for trial in kill_trials(_ZYGOTE, [str(tmp_path), str(journal)], range(1, 25), (0.02, 0.4)):
        done, maybe = _replay(journal.read_text())
        expected = {"first0": 1, "first1": 1, **done}
        names = {n.rpartition("/")[2] for n in backend.list_files("b.zarr")}
        assert set(expected) <= names <= set(expected) | set(maybe), (trial, names ^ set(expected))
        ordered = sorted(names)
        for name, got in zip(ordered, backend.load_batch([f"b.zarr/{n}" for n in ordered])):
            allowed = ({expected[name]} if name in expected else set()) | maybe.get(name, set())
            assert int(got.min()) == int(got.max()) and int(got.min()) in allowed, (trial, name, allowed)
        stack = backend.load("b.zarr")  # every chunk of every row decodes
        assert stack.shape[0] >= len(names)
    import zarr

    assert zarr.open_array(str(tmp_path / "b.zarr"), mode="r")[:].shape[0] >= len(expected)
    backend.cleanup("b.zarr")
    assert not [p for p in (tmp_path / "b.zarr").rglob("*") if ".polystore-tmp-" in p.name]
