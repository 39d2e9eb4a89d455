"""OME-NGFF label images in zarr: fm.save(mask, "<image>/labels/<name>", backend="zarr", kind="labels")."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("zarr")

from polystore import FileManager, ImageSaveError, InvalidAnnotationError, UnsupportedFormatError  # noqa: E402
from polystore.annotations import Labels, Points  # noqa: E402
from polystore.zarr import ZarrBackend  # noqa: E402


def _mask() -> np.ndarray:
    mask = np.zeros((2, 32, 32), np.uint16)
    mask[0, 3:9, 3:9], mask[1, 10:20, 10:20] = 1, 2
    return mask


@pytest.mark.parametrize("zarr_format", [3, 2])
def test_labels_group_under_the_image(tmp_path: Path, zarr_format: int) -> None:
    fm = FileManager()
    store = str(tmp_path / "plate.zarr")
    image = np.random.default_rng(0).integers(0, 255, (2, 32, 32), dtype=np.uint8)
    fm.save(image, f"{store}/A01", backend="zarr", axes="zyx", scale=[2.0, 0.5, 0.5], zarr_format=zarr_format)
    fm.save(_mask(), f"{store}/A01/labels/nuclei", backend="zarr", kind="labels")
    fm.save(Labels(_mask() * 2, axes="zyx"), f"{store}/A01/labels/cells", backend="zarr")
    fm.save(_mask(), f"{store}/A01/labels/nuclei", backend="zarr", kind="labels")  # again: listed once

    assert fm.load(f"{store}/A01/labels/nuclei", backend="zarr", kind="labels") == Labels(_mask(), axes="zyx")
    np.testing.assert_array_equal(fm.load(f"{store}/A01", backend="zarr"), image)  # the image is untouched

    import zarr

    if zarr_format == 3:
        from ome_zarr_models.v05.image import Image
        from ome_zarr_models.v05.image_label import ImageLabel
    else:
        from ome_zarr_models.v04.image import Image  # type: ignore[assignment]
        from ome_zarr_models.v04.image_label import ImageLabel  # type: ignore[assignment]
    Image.from_zarr(zarr.open_group(f"{store}/A01", mode="r"))
    label = ImageLabel.from_zarr(zarr.open_group(f"{store}/A01/labels/nuclei", mode="r"))
    attrs = label.attributes.ome if zarr_format == 3 else label.attributes
    assert attrs.image_label.source.image == "../../"
    assert attrs.multiscales[0].datasets[0].coordinateTransformations[0].scale == [2.0, 0.5, 0.5]

    from ome_zarr.io import parse_url
    from ome_zarr.reader import Reader

    specs = {os.path.basename(str(n.zarr.path).rstrip("/")): [type(s).__name__ for s in n.specs]
             for n in Reader(parse_url(f"{store}/A01"))()}
    assert "Label" in specs["nuclei"] and "Labels" in specs["labels"]
    listed = json.loads((tmp_path / "plate.zarr/A01/labels" / ("zarr.json" if zarr_format == 3 else ".zattrs")).read_text())
    names = listed["attributes"]["ome"]["labels"] if zarr_format == 3 else listed["labels"]
    assert names == ["nuclei", "cells"]


def test_bad_labels_refused_and_nothing_written(tmp_path: Path) -> None:
    zarr_backend = ZarrBackend()
    store = str(tmp_path / "p.zarr")
    zarr_backend.save(np.zeros((16, 16), np.uint8), f"{store}/img", axes="yx")
    before = sorted(os.listdir(f"{store}/img"))
    with pytest.raises(InvalidAnnotationError, match="integer dtype, not float64"):
        zarr_backend.save(np.zeros((16, 16)), f"{store}/img/labels/m", kind="labels")
    with pytest.raises(ImageSaveError, match=r"'<image>/labels/<name>'"):
        zarr_backend.save(np.zeros((16, 16), np.uint8), f"{store}/img/masks/m", kind="labels")
    with pytest.raises(ImageSaveError, match="no OME-Zarr image .*save the image there first"):
        zarr_backend.save(np.zeros((16, 16), np.uint8), f"{store}/other/labels/m", kind="labels")
    with pytest.raises(ImageSaveError, match="axes 'zyx' but their image has 'yx'"):
        zarr_backend.save(np.zeros((2, 16, 16), np.uint8), f"{store}/img/labels/m", kind="labels", axes="zyx")
    with pytest.raises(UnsupportedFormatError, match="cannot hold kind='points'"):
        zarr_backend.save(Points([[1.0, 2.0]]), f"{store}/img/labels/m", kind="points")
    assert sorted(os.listdir(f"{store}/img")) == before
