"""HCS plates in napari (issue 13): the Store browser shows plate -> well -> field; napari-ome-zarr opens the plate."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "xcb")

pytest.importorskip("napari")
pytest.importorskip("zarr")

from polystore.zarr import ZarrBackend  # noqa: E402
from polystore_napari._store import StoreBrowserModel  # noqa: E402

pytestmark = pytest.mark.gui


@pytest.fixture
def plate(tmp_path: Path) -> Path:
    """A 2 x 2 plate, one field per well, frame-written (A/1, A/2, B/2) and whole-array saved (B/1)."""
    backend = ZarrBackend(root=tmp_path)
    for row, col in (("A", "1"), ("A", "2"), ("B", "2")):
        backend.declare_image(f"p.zarr/{row}/{col}/0", (2, 16, 16), "uint16", axes="cyx")
        for c in range(2):
            backend.save(np.full((16, 16), ord(row) + int(col) * 10 + c, np.uint16), f"p.zarr/{row}/{col}/0", index={"c": c})
    backend.save(np.full((2, 16, 16), 7, np.uint16), "p.zarr/B/1/0", axes="cyx")
    backend.flush()
    return tmp_path / "p.zarr"


def test_store_browser_shows_plate_well_field(plate: Path) -> None:
    model = StoreBrowserModel(plate)
    root = model.root_node()
    assert root.kind == "zarr-plate" and root.expandable
    rows = model.children(root)
    assert [(n.name, n.kind) for n in rows] == [("A", "zarr-group"), ("B", "zarr-group")]
    wells = model.children(rows[0])
    assert [(n.name, n.kind) for n in wells] == [("1", "zarr-well"), ("2", "zarr-well")]
    (field,) = model.children(wells[1])
    assert (field.name, field.kind, field.openable) == ("0", "ome-field", True)
    data, kwargs = model.open(field)
    assert kwargs["channel_axis"] == 0
    assert int(np.asarray(data)[1, 0, 0]) == ord("A") + 20 + 1


def test_napari_ome_zarr_opens_the_plate_in_a_viewer(plate: Path, make_napari_viewer: Any) -> None:
    pytest.importorskip("napari_ome_zarr")
    viewer = make_napari_viewer(show=False)
    layers = viewer.open(str(plate), plugin="napari-ome-zarr")
    assert layers, "napari-ome-zarr made no layer of the plate"
    data = layers[0].data
    level0 = np.asarray(data[0] if isinstance(data, list) or layers[0].multiscale else data)
    # 2 rows x 2 columns of 16 x 16 tiles (the channel axis may be split into layers)
    assert level0.shape[-2:] == (32, 32)
    tile_b1 = level0[..., 16:, :16]
    assert int(tile_b1.max()) == 7
