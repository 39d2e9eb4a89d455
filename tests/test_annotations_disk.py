"""Annotations on disk and in memory: CSV, ImageJ .roi/.roi.zip, GeoJSON, label TIFFs, through fm.save/fm.load."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from test_annotations_model import FAST, points, shapes

from polystore import FileManager, InvalidAnnotationError, UnsupportedFormatError
from polystore.annotations import Labels, Points, Shapes

SPOTS = Points([[1.0, 2.0, 3.25], [0.0, 7.0, 8.5]], properties={"id": [4, 5], "cls": ["a", "b"]}, axes="zyx")
CELLS = Shapes(
    [[[0, 0], [0, 20], [20, 20]], [[5, 5], [5, 9], [9, 9], [9, 5]], [[1, 1], [4, 6]], [[2, 2], [2, 8], [6, 8], [6, 2]],
     [[0, 0], [3, 3], [0, 6]]],
    shape_type=["polygon", "rectangle", "line", "ellipse", "path"],
    properties={"name": ["c1", "box", "l", "e", "p"], "score": [0.5, 1.0, 0.25, 2.0, 3.0]},
)


@pytest.fixture
def fm() -> FileManager:
    return FileManager()


@pytest.mark.parametrize("name", ["spots.csv", "spots.geojson", "spots.roi.zip"])
def test_points_round_trip_on_disk(fm: FileManager, tmp_path: Path, name: str) -> None:
    path = str(tmp_path / "A01" / name)
    fm.save(SPOTS, path, backend="disk")
    loaded = fm.load(path, backend="disk", kind="points")
    assert loaded == SPOTS
    if not name.endswith(".csv"):  # annotation-only formats need no kind=
        assert fm.load(path, backend="disk") == SPOTS
    assert sorted(os.listdir(tmp_path / "A01")) == [name]  # no temp file left


def test_points_csv_is_plain_csv_named_by_axes(fm: FileManager, tmp_path: Path) -> None:
    path = str(tmp_path / "spots.csv")
    fm.save(SPOTS, path, backend="disk")
    assert Path(path).read_text().splitlines() == ["z,y,x,id,cls", "1.0,2.0,3.25,4,a", "0.0,7.0,8.5,5,b"]
    frame = fm.load(path, backend="disk")  # without kind: the table, as before
    assert list(frame.columns) == ["z", "y", "x", "id", "cls"]
    Path(path).write_text("y,x,score\n1,2,0.5\n3,4,0.25\n")  # written by any tool
    other = fm.load(path, backend="disk", kind="points")
    assert other == Points([[1, 2], [3, 4]], properties={"score": [0.5, 0.25]})


@pytest.mark.parametrize("name", ["cells.geojson", "cells.roi.zip"])
def test_shapes_round_trip_on_disk(fm: FileManager, tmp_path: Path, name: str) -> None:
    path = str(tmp_path / name)
    fm.save(CELLS, path, backend="disk")
    assert fm.load(path, backend="disk") == CELLS


def test_single_roi_file_holds_one_roi(fm: FileManager, tmp_path: Path) -> None:
    one = Shapes([[[0, 0], [0, 5], [5, 5]]], properties={"name": ["tri"]})
    fm.save(one, str(tmp_path / "tri.roi"), backend="disk")
    assert fm.load(str(tmp_path / "tri.roi"), backend="disk") == one
    with pytest.raises(UnsupportedFormatError, match=r"one ROI.*makes 5.*\.roi\.zip"):
        fm.save(CELLS, str(tmp_path / "cells.roi"), backend="disk")
    assert sorted(os.listdir(tmp_path)) == ["tri.roi"]


def test_roi_zip_written_by_roifile_loads(fm: FileManager, tmp_path: Path) -> None:
    roifile = pytest.importorskip("roifile")
    roi = roifile.ImagejRoi.frompoints(np.array([[1.0, 2.0], [6.0, 2.0], [6.0, 9.0]]), name="cell", t=1)
    roi.roitype = roifile.ROI_TYPE.POLYGON
    roifile.roiwrite(str(tmp_path / "imagej.roi.zip"), [roi])
    loaded = fm.load(str(tmp_path / "imagej.roi.zip"), backend="disk")
    assert loaded == Shapes([[[1, 2, 1], [1, 2, 6], [1, 9, 6]]], properties={"name": ["cell"]}, axes="tyx")


def test_labels_tiff_round_trip(fm: FileManager, tmp_path: Path) -> None:
    mask = np.zeros((2, 16, 16), np.uint16)
    mask[0, 2:5, 2:5], mask[1, 8:12, 8:12] = 1, 7
    path = str(tmp_path / "A01" / "nuclei_labels.tif")
    fm.save(mask, path, backend="disk", kind="labels", axes="zyx")
    loaded = fm.load(path, backend="disk", kind="labels")
    assert loaded == Labels(mask, axes="zyx")
    assert fm.load_metadata(path, backend="disk")["kind"] == "labels"
    np.testing.assert_array_equal(fm.load(path, backend="disk"), mask)  # a plain load: the array
    big = Labels(np.arange(12, dtype=np.int32).reshape(3, 4))
    fm.save(big, str(tmp_path / "int32.tif"), backend="disk")
    assert fm.load(str(tmp_path / "int32.tif"), backend="disk", kind="labels") == big


def test_float_labels_refused_and_old_file_kept(fm: FileManager, tmp_path: Path) -> None:
    path = str(tmp_path / "mask.tif")
    fm.save(np.ones((4, 4), np.uint8), path, backend="disk", kind="labels")
    with pytest.raises(InvalidAnnotationError, match="integer dtype, not float64"):
        fm.save(np.ones((4, 4)), path, backend="disk", kind="labels")
    assert fm.load(path, backend="disk", kind="labels") == Labels(np.ones((4, 4), np.uint8))
    assert sorted(os.listdir(tmp_path)) == ["mask.tif"]


def test_kind_a_format_cannot_hold_names_the_ones_that_can(fm: FileManager, tmp_path: Path) -> None:
    with pytest.raises(UnsupportedFormatError, match=r"cannot hold labels.*use \.tif, \.tiff"):
        fm.save(np.zeros((4, 4), np.uint8), str(tmp_path / "m.npy"), backend="disk", kind="labels")
    with pytest.raises(UnsupportedFormatError, match=r"cannot hold shapes.*\.geojson, \.roi, \.roi\.zip"):
        fm.load(str(tmp_path / "m.csv"), backend="disk", kind="shapes")
    with pytest.raises(UnsupportedFormatError, match="unknown kind='mesh'"):
        fm.save(np.zeros(3), str(tmp_path / "m.npy"), backend="disk", kind="mesh")
    with pytest.raises(UnsupportedFormatError, match="GeoJSON files .* hold polystore.annotations Points or Shapes"):
        fm.save(np.zeros((3, 2)), str(tmp_path / "m.geojson"), backend="disk")
    fm.save(np.zeros(3), str(tmp_path / "m.npy"), backend="disk", kind="image")  # the default kind, accepted
    assert sorted(os.listdir(tmp_path)) == ["m.npy"]


def test_memory_backend_stores_the_objects(fm: FileManager) -> None:
    fm.save(SPOTS, "/a/spots", backend="memory")
    assert fm.load("/a/spots", backend="memory") is SPOTS
    fm.save(np.ones((3, 3), np.uint8), "/a/mask", backend="memory", kind="labels")
    assert isinstance(fm.load("/a/mask", backend="memory"), Labels)
    with pytest.raises(InvalidAnnotationError, match="integer dtype"):
        fm.save(np.ones((3, 3)), "/a/bad", backend="memory", kind="labels")
    assert not fm.exists("/a/bad", backend="memory")


@FAST
@given(points())
def test_points_round_trip_csv_and_geojson(obj: Points) -> None:
    fm = FileManager()
    with tempfile.TemporaryDirectory() as folder:
        for name in ("p.csv", "p.geojson"):
            fm.save(obj, os.path.join(folder, name), backend="disk")
            assert fm.load(os.path.join(folder, name), backend="disk", kind="points") == obj


@FAST
@given(shapes())
def test_shapes_round_trip_geojson_and_roi_zip(obj: Shapes) -> None:
    fm = FileManager()
    with tempfile.TemporaryDirectory() as folder:
        for name in ("s.geojson", "s.roi.zip"):
            fm.save(obj, os.path.join(folder, name), backend="disk")
            assert fm.load(os.path.join(folder, name), backend="disk", kind="shapes") == obj


def test_batch_members_each_use_their_own_codec(tmp_path: Path) -> None:
    # Codecs were cached by the LAST extension: after x.roi.zip, y.zip was written as a ROI zip
    # (only .roi.zip is a format), and after a.tif a registered .mask.tif went through TIFF.
    from polystore.disk import DiskBackend
    from polystore.exceptions import UnsupportedFormatError

    disk = DiskBackend()
    with pytest.raises(UnsupportedFormatError, match="y.zip"):
        disk.save_batch([CELLS, CELLS], [tmp_path / "x.roi.zip", tmp_path / "y.zip"])
    assert (tmp_path / "x.roi.zip").exists() and not (tmp_path / "y.zip").exists()
    (tmp_path / "y.zip").write_bytes((tmp_path / "x.roi.zip").read_bytes())
    with pytest.raises(UnsupportedFormatError, match="y.zip"):
        disk.load_batch([tmp_path / "x.roi.zip", tmp_path / "y.zip"])

    written: list[str] = []

    def write(path: Path, data: Any, **kw: Any) -> None:
        written.append(path.name)
        with open(path, "wb") as handle:
            np.save(handle, data)

    def read(path: Path, **kw: Any) -> Any:
        with open(path, "rb") as handle:
            return ("mask", np.load(handle))

    disk.format_registry.register(".mask.tif", write, read)
    image = np.arange(6, dtype=np.uint8).reshape(2, 3)
    disk.save_batch([image, image], [tmp_path / "a.tif", tmp_path / "b.mask.tif"])
    assert written == ["data.mask.tif"]
    plain, (tag, mask) = disk.load_batch([tmp_path / "a.tif", tmp_path / "b.mask.tif"])
    np.testing.assert_array_equal(plain, image)
    assert tag == "mask"
    np.testing.assert_array_equal(mask, image)
