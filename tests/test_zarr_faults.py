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
    with pytest.raises(ImageLoadError, match="is a group"):
        backend.ensure_directory("s.zarr/grp")
        backend.load("s.zarr/grp")


def test_deleted_chunk_is_named(backend: ZarrBackend, tmp_path: Path) -> None:
    backend.save(_data(), "s.zarr/img", chunks=(1, 32, 32))
    (tmp_path / "s.zarr" / "img" / "c" / "2" / "1" / "0").unlink()
    with pytest.raises(ImageLoadError) as info:
        backend.load("s.zarr/img")
    message = str(info.value)
    assert "'c/2/1/0'" in message and "'img'" in message and "s.zarr" in message
    # the other planes are intact and still load lazily
    np.testing.assert_array_equal(backend.load("s.zarr/img", lazy=True)[1].compute(), _data()[1])


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


def _dying_writer(after_chunks: int, work: str) -> str:
    """A script that runs ``work`` with a ZarrBackend whose process dies (``os._exit(9)``,
    no cleanup) while encoding chunk number ``after_chunks + 1``."""
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

        pz._Codec.numcodec = lambda self: Dying(real(self))
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
    with pytest.raises(ImageLoadError, match=r"chunk '2/1/0' of array 'img'.*missing"):
        backend.load("v2.zarr/img")
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
