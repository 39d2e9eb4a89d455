"""Pyramids of frame-written images (issue 13): built chunk row by chunk row, same levels as a whole save."""

from __future__ import annotations

import tracemalloc
import warnings
from pathlib import Path

import numpy as np
import pytest

zarr = pytest.importorskip("zarr")

from polystore.exceptions import ImageSaveError  # noqa: E402
from polystore.zarr import ZarrBackend  # noqa: E402
from polystore.zarr._pyramid import chunk_rows  # noqa: E402


def _image(shape: tuple[int, ...]) -> np.ndarray:
    rng = np.random.default_rng(3)
    return rng.integers(0, 60000, shape, dtype=np.uint16)


def _write_frames(backend: ZarrBackend, path: str, data: np.ndarray, **declare: object) -> None:
    t, c = data.shape[:2]
    backend.declare_image(path, (None, c, *data.shape[2:]), data.dtype, axes="tcyx", **declare)  # type: ignore[arg-type]
    for i in range(t):
        for j in range(c):
            backend.save(data[i, j], path, index={"t": i, "c": j})


def test_build_pyramid_gives_the_levels_of_a_whole_save(tmp_path: Path) -> None:
    backend = ZarrBackend(root=tmp_path)
    data = _image((3, 2, 67, 50))  # odd y: the last row is dropped, as in whole saves
    _write_frames(backend, "f.zarr", data)
    backend.build_pyramid("f.zarr", 3)
    backend.save(data, "w.zarr", axes="tcyx", pyramid_levels=3)
    assert backend.info("f.zarr")["levels"] == 4
    for level in range(4):
        np.testing.assert_array_equal(backend.load("f.zarr", level=level), backend.load("w.zarr", level=level))
    from ome_zarr_models.v05.image import Image

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        model = Image.from_zarr(zarr.open_group(str(tmp_path / "f.zarr"), mode="r"))
    scales = [d.coordinateTransformations[0].scale for d in model.attributes.ome.multiscales[0].datasets]
    assert scales == [[1.0, 1.0, 2.0**k, 2.0**k] for k in range(4)]
    with pytest.raises(ImageSaveError, match="one-level.*pyramid"):
        backend.save(data[0, 0], "f.zarr", index={"t": 3})  # complete: no more frames


def test_declared_pyramid_is_built_at_close(tmp_path: Path) -> None:
    backend = ZarrBackend(root=tmp_path)
    data = _image((2, 1, 32, 32))
    _write_frames(backend, "p.zarr/A/1/0", data, pyramid_levels=2)
    backend.flush()
    assert backend.info("p.zarr/A/1/0")["levels"] == 1  # flush writes frames only
    backend.close()
    assert backend.info("p.zarr/A/1/0")["levels"] == 3
    backend.save(data, "w.zarr", axes="tcyx", pyramid_levels=2)  # rounded level by level, as here
    np.testing.assert_array_equal(backend.load("p.zarr/A/1/0", level=2), backend.load("w.zarr", level=2))
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Reader

    node = list(Reader(parse_url(str(tmp_path / "p.zarr/A/1/0")))())[0]
    assert [tuple(level.shape) for level in node.data] == [(2, 1, 32, 32), (2, 1, 16, 16), (2, 1, 8, 8)]


def test_bad_levels_raise_and_change_nothing(tmp_path: Path) -> None:
    backend = ZarrBackend(root=tmp_path)
    _write_frames(backend, "f.zarr", _image((1, 1, 8, 8)))
    with pytest.raises(ValueError, match="halved 1..3 times"):
        backend.build_pyramid("f.zarr", 4)
    with pytest.raises(ValueError, match="pyramid_levels=9"):
        backend.declare_image("g.zarr", (None, 8, 8), "uint16", axes="tyx", pyramid_levels=9)
    assert backend.info("f.zarr")["levels"] == 1 and not (tmp_path / "f.zarr" / "1").exists()
    assert not (tmp_path / "g.zarr").exists()


def test_chunk_rows_cover_the_array_one_chunk_row_at_a_time() -> None:
    shape, chunks = (5, 2, 3, 40, 30), (2, 1, 3, 16, 16)
    rows = list(chunk_rows(shape, chunks, 3))
    assert len(rows) == 3 * 2 * 1
    covered = np.zeros(shape[:3], int)
    for key, starts, stops in rows:
        assert starts[3:] == [0, 0] and stops[3:] == [40, 30]  # whole frames...
        assert all(b - a <= c for a, b, c in zip(starts[:3], stops[:3], chunks[:3]))  # ...one chunk deep
        covered[tuple(slice(a, b) for a, b in zip(starts[:3], stops[:3]))] += 1
    assert (covered == 1).all()


def test_building_a_pyramid_holds_one_chunk_row_not_the_image(tmp_path: Path) -> None:
    backend = ZarrBackend(root=tmp_path)
    data = _image((32, 2, 256, 256))  # 8 MiB; a chunk row (one frame) is 128 KiB
    _write_frames(backend, "big.zarr", data)
    backend.flush()
    del data
    tracemalloc.start()
    try:
        backend.build_pyramid("big.zarr", 2)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 2 * 1024 * 1024, f"building the pyramid held {peak / 2**20:.1f} MiB of an 8 MiB image"
    assert backend.load("big.zarr", level=2).shape == (32, 2, 64, 64)
