"""OME-NGFF labels written by polystore, opened by napari-ome-zarr in a real napari Viewer."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "xcb")

pytest.importorskip("napari")
pytest.importorskip("napari_ome_zarr")
pytest.importorskip("zarr")

from polystore import FileManager  # noqa: E402

pytestmark = pytest.mark.gui


def _as_numpy(data: Any) -> np.ndarray[Any, Any]:
    """Level 0 of a layer's data (napari-ome-zarr gives multiscale data)."""
    multiscale = isinstance(data, list) or type(data).__name__ == "MultiScaleData"
    return np.asarray(data[0] if multiscale else data)


@pytest.mark.parametrize("zarr_format", [3, 2])
def test_napari_ome_zarr_shows_polystore_labels_over_the_image(
    make_napari_viewer: Any, tmp_path: Path, zarr_format: int
) -> None:
    fm = FileManager()
    store = str(tmp_path / "plate.zarr")
    image = np.random.default_rng(0).integers(0, 255, (2, 32, 32), dtype=np.uint8)
    mask = np.zeros((2, 32, 32), np.uint16)
    mask[0, 3:9, 3:9], mask[1, 10:20, 10:20] = 1, 2
    fm.save(image, f"{store}/A01", backend="zarr", axes="zyx", scale=[2.0, 0.5, 0.5], zarr_format=zarr_format)
    fm.save(mask, f"{store}/A01/labels/nuclei", backend="zarr", kind="labels")

    viewer = make_napari_viewer()
    layers = viewer.open(f"{store}/A01", plugin="napari-ome-zarr")
    kinds = [(type(layer).__name__, layer.name) for layer in viewer.layers]
    assert [k for k, _ in kinds] == ["Image", "Labels"], kinds  # the labels lie over the image
    image_layer, labels_layer = viewer.layers
    assert labels_layer.name.endswith("nuclei") and len(layers) == 2
    np.testing.assert_array_equal(_as_numpy(labels_layer.data), mask)
    np.testing.assert_array_equal(_as_numpy(image_layer.data), image)
    np.testing.assert_allclose(labels_layer.scale, image_layer.scale)
    np.testing.assert_allclose(image_layer.scale, [2.0, 0.5, 0.5])
