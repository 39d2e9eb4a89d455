"""OME-Zarr: stores written by polystore open in ome-zarr-py and napari-ome-zarr, and back."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("zarr")
pytest.importorskip("ome_zarr")

os.environ.setdefault("QT_QPA_PLATFORM", "xcb")

from ome_zarr.io import parse_url  # noqa: E402
from ome_zarr.reader import Multiscales, Reader  # noqa: E402

from polystore import BackendRegistry, FileManager  # noqa: E402
from polystore.zarr import ZarrBackend  # noqa: E402


def _czyx() -> np.ndarray:
    c, z, y, x = 2, 3, 96, 128
    grid = np.add.outer(np.arange(y), np.arange(x)).astype(np.uint16)
    return np.stack([np.stack([grid * (ci + 1) + zi for zi in range(z)]) for ci in range(c)])


def _read_with_ome_zarr(path: Path) -> Any:
    nodes = list(Reader(parse_url(str(path)))())
    image = [n for n in nodes if Multiscales.matches(n.zarr)]
    assert image, f"ome-zarr found no multiscales image in {path}"
    return image[0]


def test_polystore_store_opens_in_ome_zarr_reader(tmp_path: Path) -> None:
    fm = FileManager(BackendRegistry(zarr=ZarrBackend(root=tmp_path)))
    data = _czyx()
    fm.save(
        data,
        "plate.zarr/A01/site1",
        backend="zarr",
        axes="czyx",
        pyramid_levels=2,
        channel_names=["DAPI", "GFP"],
        channel_colors=["0000FF", "#00ff00"],
        scale=(1.0, 2.0, 0.5, 0.5),
    )
    node = _read_with_ome_zarr(tmp_path / "plate.zarr" / "A01" / "site1")
    assert [a["name"] for a in node.metadata["axes"]] == ["c", "z", "y", "x"]
    assert [d.shape for d in node.data] == [(2, 3, 96, 128), (2, 3, 48, 64), (2, 3, 24, 32)]
    np.testing.assert_array_equal(np.asarray(node.data[0]), data)
    np.testing.assert_array_equal(np.asarray(node.data[1])[0, 0, 0, :3], [1, 3, 5])  # 2x2 means
    assert node.metadata["name"] == "site1"
    assert node.metadata["channel_names"] == ["DAPI", "GFP"]
    assert [cmap[-1] for cmap in node.metadata["colormap"]] == [[0.0, 0.0, 1.0], [0.0, 1.0, 0.0]]
    # the display window follows the data (not the dtype's 0..65535, which shows black)
    for (lo, hi), channel in zip(node.metadata["contrast_limits"], data):
        assert lo == channel.min() and 0.9 * channel.max() < hi <= channel.max()
    transforms = node.metadata["coordinateTransformations"]
    assert transforms[0][0]["scale"] == [1.0, 2.0, 0.5, 0.5]
    assert transforms[2][0]["scale"] == [1.0, 2.0, 2.0, 2.0]
    group_meta = json.loads((tmp_path / "plate.zarr" / "A01" / "site1" / "zarr.json").read_text())
    assert group_meta["attributes"]["ome"]["version"] == "0.5"
    array_meta = json.loads((tmp_path / "plate.zarr" / "A01" / "site1" / "0" / "zarr.json").read_text())
    assert array_meta["dimension_names"] == ["c", "z", "y", "x"]
    # polystore reads its own image back, any level, and reports the axes
    backend = fm.get_backend("zarr")
    np.testing.assert_array_equal(fm.load("plate.zarr/A01/site1", "zarr"), data)
    assert fm.load("plate.zarr/A01/site1", "zarr", level=2).shape == (2, 3, 24, 32)
    assert backend.info("plate.zarr/A01/site1")["axes"] == "czyx"  # type: ignore[attr-defined]
    assert fm.is_file("plate.zarr/A01/site1", "zarr")
    assert fm.list_files("plate.zarr", "zarr", recursive=True) == ["plate.zarr/A01/site1"]


def test_batch_with_axes_is_an_ome_image(tmp_path: Path) -> None:
    backend = ZarrBackend(root=tmp_path)
    planes = [np.full((32, 48), i, np.uint8) for i in range(5)]
    backend.save_batch(planes, [f"z.zarr/z{i:02d}.tif" for i in range(5)], axes="zyx")
    node = _read_with_ome_zarr(tmp_path / "z.zarr")
    assert [a["name"] for a in node.metadata["axes"]] == ["z", "y", "x"]
    assert node.data[0].shape == (5, 32, 48)
    np.testing.assert_array_equal(backend.load("z.zarr/z03.tif"), planes[3])
    assert backend.list_files("z.zarr") == [f"z.zarr/z{i:02d}.tif" for i in range(5)]


def test_ome_zarr_write_image_loads_through_polystore(tmp_path: Path) -> None:
    import zarr
    from ome_zarr.writer import write_image

    data = _czyx()
    group = zarr.open_group(str(tmp_path / "theirs.zarr"), mode="w")
    write_image(data, group, axes="czyx", scale_factors=(2,))
    backend = ZarrBackend(root=tmp_path)
    info = backend.info("theirs.zarr")
    assert info["kind"] == "image" and info["axes"] == "czyx" and info["levels"] == 2
    np.testing.assert_array_equal(backend.load("theirs.zarr"), data)
    assert backend.load("theirs.zarr", level=1).shape == (2, 3, 48, 64)
    lazy = backend.load("theirs.zarr", lazy=True)
    np.testing.assert_array_equal(lazy[1, 2].compute(), data[1, 2])
    assert backend.list_files(".") == ["./theirs.zarr"]


def test_invalid_axes_are_refused(tmp_path: Path) -> None:
    backend = ZarrBackend(root=tmp_path)
    data = np.zeros((2, 3, 4), np.uint8)
    for axes, match in (("yxz", "order"), ("zy", "letters"), ("qyx", "distinct"), ("zxy", "order")):
        with pytest.raises(ValueError, match=match):
            backend.save(data, "bad.zarr", axes=axes)
    with pytest.raises(ValueError, match="channel_names"):
        backend.save(data, "bad.zarr", axes="cyx", channel_names=["only one"])
    with pytest.raises(ValueError, match="hex"):
        backend.save(data, "bad.zarr", axes="cyx", channel_colors=["red", "green"])
    with pytest.raises(ValueError, match="'c' axis"):
        backend.save(data, "bad.zarr", axes="zyx", channel_names=["a", "b"])
    assert not backend.exists("bad.zarr")  # refused before anything was written
    with pytest.raises(ValueError, match="axes"):
        backend.save(data, "bad.zarr", pyramid_levels=2)


@pytest.fixture
def napari_viewer_factory(request: pytest.FixtureRequest) -> Any:
    """napari's ``make_napari_viewer``, or a skip when napari / napari-ome-zarr are missing."""
    pytest.importorskip("napari")
    pytest.importorskip("napari_ome_zarr")
    return request.getfixturevalue("make_napari_viewer")


@pytest.mark.gui
def test_polystore_store_opens_in_napari_ome_zarr(tmp_path: Path, napari_viewer_factory: Any) -> None:
    make_napari_viewer = napari_viewer_factory
    data = _czyx()
    ZarrBackend(root=tmp_path).save(
        data, "img.zarr", axes="czyx", pyramid_levels=1, channel_names=["DAPI", "GFP"],
        channel_colors=["0000FF", "00FF00"],
    )
    viewer = make_napari_viewer(show=True)
    layers = viewer.open(str(tmp_path / "img.zarr"), plugin="napari-ome-zarr")
    assert [layer.name for layer in layers] == ["img: DAPI", "img: GFP"]
    first, second = layers
    assert first.multiscale and len(first.data) == 2
    np.testing.assert_array_equal(np.asarray(first.data[0]), data[0])
    np.testing.assert_array_equal(np.asarray(second.data[0]), data[1])
    assert tuple(second.data[1].shape) == (3, 48, 64)
    assert viewer.dims.axis_labels[-3:] == ("z", "y", "x")
    np.testing.assert_allclose(first.colormap.colors[-1][:3], [0.0, 0.0, 1.0])  # DAPI blue
    np.testing.assert_allclose(second.colormap.colors[-1][:3], [0.0, 1.0, 0.0])  # GFP green


def test_zarr_v2_stores_with_ome_ngff_0_4(tmp_path: Path) -> None:
    import zarr

    from polystore.config import ZarrConfig

    backend = ZarrBackend(root=tmp_path, config=ZarrConfig(zarr_format=2))
    data = _czyx()
    backend.save(data, "old.zarr/A01/site1", axes="czyx", pyramid_levels=1, channel_names=["DAPI", "GFP"])
    attrs = json.loads((tmp_path / "old.zarr" / "A01" / "site1" / ".zattrs").read_text())
    assert attrs["multiscales"][0]["version"] == "0.4"
    assert (tmp_path / "old.zarr" / "A01" / "site1" / "0" / ".zarray").is_file()
    node = _read_with_ome_zarr(tmp_path / "old.zarr" / "A01" / "site1")
    assert [a["name"] for a in node.metadata["axes"]] == ["c", "z", "y", "x"]
    assert node.metadata["channel_names"] == ["DAPI", "GFP"]
    np.testing.assert_array_equal(np.asarray(node.data[0]), data)
    np.testing.assert_array_equal(backend.load("old.zarr/A01/site1"), data)
    # plain arrays and batches in a v2 store; zarr-python reads them as v2
    backend.save(data[0, 0], "old.zarr/plain", chunks=(50, 50))
    root = zarr.open_group(str(tmp_path / "old.zarr"), mode="r", zarr_format=2)
    np.testing.assert_array_equal(root["plain"][:], data[0, 0])
    planes = [data[0, 0] + i for i in range(3)]
    backend.save_batch(planes, ["old.zarr/b/p0", "old.zarr/b/p1", "old.zarr/b/p2"])
    assert backend.list_files("old.zarr/b") == ["old.zarr/b/p0", "old.zarr/b/p1", "old.zarr/b/p2"]
    np.testing.assert_array_equal(backend.load("old.zarr/b/p2"), planes[2])
    backend.save(planes[0], "old.zarr/b/p2")  # replace one member in place
    np.testing.assert_array_equal(backend.load("old.zarr/b/p2"), planes[0])
    backend.delete("old.zarr/b/p1")
    assert backend.list_files("old.zarr/b") == ["old.zarr/b/p0", "old.zarr/b/p2"]
    # a v3 backend adding to this store follows the store's format
    ZarrBackend(root=tmp_path).save(data[1, 1], "old.zarr/added")
    assert (tmp_path / "old.zarr" / "added" / ".zarray").is_file()
    assert backend.list_files("old.zarr", recursive=True) == [
        "old.zarr/A01/site1", "old.zarr/added", "old.zarr/b/p0", "old.zarr/b/p2", "old.zarr/plain",
    ]
    from polystore.exceptions import ImageSaveError

    with pytest.raises(ImageSaveError, match="v2"):
        ZarrBackend(root=tmp_path).save(data[0, 0], "old.zarr/x", zarr_format=3)


def test_pyramids_are_written_slab_by_slab(tmp_path: Path) -> None:
    da = pytest.importorskip("dask.array")
    from polystore.config import ZarrConfig

    rng = np.random.default_rng(5)
    data = rng.integers(0, 60000, size=(5, 2, 37, 51)).astype(np.uint16)  # odd y/x, 5 time points
    backend = ZarrBackend(root=tmp_path, config=ZarrConfig(slab_bytes=2 * 2 * 37 * 51 * 2))  # 2 time points
    backend.save(data, "np.zarr", axes="tcyx", pyramid_levels=2, chunks=(1, 1, 16, 16))
    backend.save(da.from_array(data, chunks=(3, 1, 37, 51)), "dask.zarr", axes="tcyx", pyramid_levels=2)
    level1 = data[..., :36, :50].reshape(5, 2, 18, 2, 25, 2).astype(np.float64).mean(axis=(3, 5))
    for store in ("np.zarr", "dask.zarr"):
        np.testing.assert_array_equal(backend.load(store), data)
        got1 = backend.load(store, level=1)
        assert got1.shape == (5, 2, 18, 25)
        np.testing.assert_allclose(got1, np.rint(level1), atol=1)
        assert backend.load(store, level=2).shape == (5, 2, 9, 12)
    np.testing.assert_array_equal(backend.load("np.zarr", level=2), backend.load("dask.zarr", level=2))
    # a 2-D image (axis 0 is y) is written whole
    backend.save(data[0, 0], "flat.zarr", axes="yx", pyramid_levels=1)
    assert backend.load("flat.zarr", level=1).shape == (18, 25)


def test_info_reports_scale_and_omero_channels(tmp_path: Path) -> None:
    """info() gives what a viewer needs: axis names, scale, channel axis, names, colours, windows."""
    backend = ZarrBackend(root=tmp_path)
    data = np.stack([np.full((4, 8, 8), 10, np.uint16), np.arange(256, dtype=np.uint16).reshape(4, 8, 8)])
    backend.save(data, "i.zarr/img", axes="czyx", scale=[1.0, 2.0, 0.5, 0.5], channel_names=["dna", "actin"],
                 channel_colors=["0000ff", "#00FF00"], pyramid_levels=1)
    info = backend.info("i.zarr/img")
    assert info["kind"] == "image" and info["axes"] == "czyx" and info["levels"] == 2
    assert info["axis_names"] == ["c", "z", "y", "x"] and info["scale"] == [1.0, 2.0, 0.5, 0.5]
    assert info["channel_axis"] == 0 and info["channel_names"] == ["dna", "actin"]
    assert info["channel_colors"] == ["0000FF", "00FF00"]
    omero = json.loads((tmp_path / "i.zarr" / "img" / "zarr.json").read_text())["attributes"]["ome"]["omero"]
    assert info["contrast_limits"] == [[c["window"]["start"], c["window"]["end"]] for c in omero["channels"]]
    assert info["contrast_limits"][0] == [10.0, 11.0]  # a flat channel still gets a valid window
    assert info["shape"] == (2, 4, 8, 8)
    # a member of a batch image loses the batch axis; a member of a batch along c is one channel
    backend.save_batch([data[0], data[1]], ["i.zarr/b/c0", "i.zarr/b/c1"], axes="czyx", scale=[1, 2, 0.5, 0.5])
    member = backend.info("i.zarr/b/c1")
    assert member["kind"] == "member" and member["shape"] == (4, 8, 8) and member["axes"] == "zyx"
    assert member["scale"] == [2.0, 0.5, 0.5] and "channel_axis" not in member and "channel_names" not in member
    batch = backend.info("i.zarr/b")
    assert batch["axes"] == "czyx" and batch["channel_axis"] == 0 and batch["shape"] == (2, 4, 8, 8)
