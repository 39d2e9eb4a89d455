"""Lazy loads read by polystore's own reader: blocks of several chunks, and slices that read only what they touch."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("zarr")
da = pytest.importorskip("dask.array")

from polystore.config import ZarrConfig  # noqa: E402
from polystore.exceptions import ImageLoadError  # noqa: E402
from polystore.zarr import ZarrBackend  # noqa: E402


def _image(shape: tuple[int, ...], dtype: str = "uint16") -> np.ndarray:
    return np.random.default_rng(3).integers(0, 4000, size=shape).astype(dtype)


def test_a_block_is_several_chunks_up_to_lazy_block_bytes(tmp_path: Path) -> None:
    """Chunks merge along the last axes first (a whole frame), within ``ZarrConfig.lazy_block_bytes``."""
    data = _image((6, 64, 64))
    ZarrBackend(root=tmp_path).save(data, "s.zarr", chunks=(1, 32, 32))
    frame = 64 * 64 * 2
    for block_bytes, want in ((0, (1, 32, 32)), (frame // 2, (1, 32, 64)), (frame, (1, 64, 64)),
                              (3 * frame, (3, 64, 64)), (10**9, (6, 64, 64))):
        lazy = ZarrBackend(root=tmp_path, config=ZarrConfig(lazy_block_bytes=block_bytes)).load("s.zarr", lazy=True)
        assert lazy.chunksize == want, block_bytes
        np.testing.assert_array_equal(lazy.compute(), data)
        np.testing.assert_array_equal(lazy[4].compute(), data[4])
    with pytest.raises(ValueError, match="lazy_block_bytes"):
        ZarrConfig(lazy_block_bytes=-1)


def test_a_slice_of_a_block_reads_only_the_chunks_it_touches(tmp_path: Path) -> None:
    data = _image((4, 64, 64))
    backend = ZarrBackend(root=tmp_path, config=ZarrConfig(lazy_block_bytes=10**9))
    backend.save(data, "s.zarr", chunks=(1, 32, 32))
    (tmp_path / "s.zarr" / "c" / "3" / "1" / "1").write_bytes(b"garbage")  # in the one block, not in the slices
    lazy = backend.load("s.zarr", lazy=True)
    assert lazy.numblocks == (1, 1, 1)
    np.testing.assert_array_equal(lazy[1, 10:50, 5:60].compute(), data[1, 10:50, 5:60])
    np.testing.assert_array_equal(lazy[3, :32].compute(), data[3, :32])
    np.testing.assert_array_equal(lazy[[0, 3], 40:, :20].compute(), data[[0, 3], 40:, :20])
    with pytest.raises(ImageLoadError, match=r"c/3/1/1"):
        lazy[3].compute()


def test_a_small_slice_of_a_huge_lazy_array_reads_one_chunk(tmp_path: Path) -> None:
    """Blocks of a huge array span very many chunks; a slice still reads only its own (here: absent, fill)."""
    doc = {
        "zarr_format": 3, "node_type": "array", "shape": [2**30, 2**30], "data_type": "uint8",
        "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": [1, 1]}},
        "chunk_key_encoding": {"name": "default", "configuration": {"separator": "/"}},
        "fill_value": 7, "codecs": [{"name": "bytes", "configuration": {}}], "attributes": {},
    }
    (tmp_path / "big.zarr").mkdir()
    (tmp_path / "big.zarr" / "zarr.json").write_text(json.dumps(doc))
    (tmp_path / "big.zarr" / "c" / "5").mkdir(parents=True)
    (tmp_path / "big.zarr" / "c" / "5" / "9").write_bytes(b"\x03")
    lazy = ZarrBackend(root=tmp_path).load("big.zarr", lazy=True)
    assert lazy.chunksize[1] > 1000  # a block covers many chunks
    assert lazy[5, 9].compute() == 3
    np.testing.assert_array_equal(lazy[5, 8:11].compute(), [7, 3, 7])


@pytest.mark.parametrize("block_bytes", [0, 3000, 10**9])
def test_lazy_indexing_means_what_it_means_for_dask_over_numpy(tmp_path: Path, block_bytes: int) -> None:
    data = np.arange(5 * 37 * 41, dtype=np.int32).reshape(5, 37, 41)
    backend = ZarrBackend(root=tmp_path, config=ZarrConfig(lazy_block_bytes=block_bytes))
    backend.save(data, "a.zarr", chunks=(2, 8, 16))
    lazy = backend.load("a.zarr", lazy=True)
    ref = da.from_array(data, chunks=(2, 8, 16))
    selections = [
        (1,), (Ellipsis, 3), (slice(None, None, -1),), (slice(4, 0, -2), slice(3, 30, 5)), ([0, 4, 2],),
        (1, [3, 0, 36], slice(None)), (np.array([True, False, True, False, True]),), (slice(0, 0),),
        (-1, -1, -1), (slice(None), np.array([-1, -37])), (slice(10, 2),), (slice(None), slice(None), slice(40, None, -3)),
        (slice(1, 4), slice(7, 9), 17),
    ]
    for sel in selections:
        want = ref[sel].compute()
        got = lazy[sel].compute()
        assert got.shape == want.shape and np.array_equal(got, want), sel
