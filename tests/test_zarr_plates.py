"""HCS plates (issue 13): images at ``<plate>/<row>/<col>/<field>`` write OME-NGFF plate and well metadata."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path

import numpy as np
import pytest

zarr = pytest.importorskip("zarr")
pytest.importorskip("ome_zarr_models")

from cli_testing import run_cli  # noqa: E402
from polystore.exceptions import ImageSaveError  # noqa: E402
from polystore.zarr import ZarrBackend  # noqa: E402

ROWS, COLS, FIELDS = ("A", "B"), ("1", "2", "10"), ("0", "1")


def _field(r: int, c: int, f: int, shape: tuple[int, ...] = (2, 3, 16, 16)) -> np.ndarray:
    return np.full(shape, 1 + r * 100 + c * 10 + f, np.uint16)


def _validated_plate(store: Path, fmt: int = 3) -> object:
    """The plate as ome-zarr-models reads it (any validation warning fails the test)."""
    if fmt == 3:
        from ome_zarr_models.v05.hcs import HCS
    else:
        from ome_zarr_models.v04.hcs import HCS  # type: ignore[assignment]
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return HCS.from_zarr(zarr.open_group(str(store), mode="r"))


def _ome_zarr_plate(store: Path) -> tuple[object, np.ndarray]:
    """(the ome-zarr-py reader's first node spec, its stitched level-0 plate) for ``store``."""
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Plate, Reader

    node = list(Reader(parse_url(str(store)))())[0]
    spec = next(s for s in node.specs if isinstance(s, Plate))
    return spec, np.asarray(node.data[0])


@pytest.mark.parametrize("fmt", [3, 2])
def test_whole_array_saves_make_a_plate_ome_zarr_and_ome_zarr_models_read(tmp_path: Path, fmt: int) -> None:
    from polystore.config import ZarrConfig

    backend = ZarrBackend(root=tmp_path, config=ZarrConfig(zarr_format=fmt))
    for r, row in enumerate(ROWS):
        for c, col in enumerate(COLS):
            for f, field in enumerate(FIELDS):
                backend.save(_field(r, c, f), f"p.zarr/{row}/{col}/{field}", axes="czyx")
    model = _validated_plate(tmp_path / "p.zarr", fmt)
    plate = model.attributes.ome.plate if fmt == 3 else model.attributes.plate  # type: ignore[attr-defined]
    assert [r.name for r in plate.rows] == ["A", "B"]
    assert [c.name for c in plate.columns] == ["1", "2", "10"]  # natural order, not "1", "10", "2"
    assert [(w.path, w.rowIndex, w.columnIndex) for w in plate.wells][:3] == [
        ("A/1", 0, 0), ("A/2", 0, 1), ("A/10", 0, 2)
    ]
    assert plate.field_count == 2 and [a.id for a in plate.acquisitions] == [0]
    spec, stitched = _ome_zarr_plate(tmp_path / "p.zarr")
    assert spec.row_names == ["A", "B"] and spec.col_names == ["1", "2", "10"]
    # the reader tiles the first field of every well: rows x columns of 16x16 tiles
    assert stitched.shape == (2, 3, 32, 48)
    assert int(stitched[0, 0, 16, 32]) == int(_field(1, 2, 0)[0, 0, 0, 0])
    np.testing.assert_array_equal(backend.load("p.zarr/B/10/1"), _field(1, 2, 1))


def test_frame_written_images_make_a_plate(tmp_path: Path) -> None:
    backend = ZarrBackend(root=tmp_path)
    wells = [("A", "1"), ("A", "2"), ("B", "1")]
    for row, col in wells:
        backend.declare_image(f"run.zarr/{row}/{col}/0", (None, 2, 16, 16), "uint16", axes="tcyx")
        for t in range(3):
            for c in range(2):
                backend.save(np.full((16, 16), t * 10 + c, np.uint16), f"run.zarr/{row}/{col}/0", index={"t": t, "c": c})
    backend.flush()
    model = _validated_plate(tmp_path / "run.zarr")
    assert [w.path for w in model.attributes.ome.plate.wells] == ["A/1", "A/2", "B/1"]  # type: ignore[attr-defined]
    _, stitched = _ome_zarr_plate(tmp_path / "run.zarr")
    assert stitched.shape == (3, 2, 32, 32)  # t grew to 3 after the plate was first described
    assert int(stitched[2, 1, 0, 0]) == 21 and int(stitched[2, 1, 16, 16]) == 0  # B/2 is no well: empty tile


def test_declared_plate_takes_any_alphanumeric_names_and_acquisitions(tmp_path: Path) -> None:
    backend = ZarrBackend(root=tmp_path)
    backend.declare_plate("screen.zarr/p1", rows=["r01", "r02"], columns=["c01"], name="plate one",
                          acquisitions=[{"id": 0, "name": "first"}, {"id": 1, "name": "second"}])
    backend.save(_field(0, 0, 0), "screen.zarr/p1/r02/c01/f1", axes="czyx", acquisition=1)
    backend.save(_field(0, 0, 1), "screen.zarr/p1/r02/c01/f2", axes="czyx")
    model = _validated_plate(tmp_path / "screen.zarr" / "p1")
    plate = model.attributes.ome.plate  # type: ignore[attr-defined]
    assert plate.name == "plate one" and [r.name for r in plate.rows] == ["r01", "r02"]
    assert [(a.id, a.name) for a in plate.acquisitions] == [(0, "first"), (1, "second")]
    assert [(w.path, w.rowIndex) for w in plate.wells] == [("r02/c01", 1)]
    well = backend.info("screen.zarr/p1/r02/c01")
    assert well["hcs"] == "well" and well["fields"] == ["f1", "f2"]
    doc = json.loads((tmp_path / "screen.zarr/p1/r02/c01/zarr.json").read_text())
    assert doc["attributes"]["ome"]["well"]["images"] == [
        {"path": "f1", "acquisition": 1}, {"path": "f2", "acquisition": 0}
    ]
    # outside a declared plate, deep paths stay plain groups
    backend.save(_field(0, 0, 0), "screen.zarr/other/A/1/0", axes="czyx")
    assert "hcs" not in backend.info("screen.zarr/other")


def test_bad_field_names_in_a_plate_raise_and_write_nothing(tmp_path: Path) -> None:
    backend = ZarrBackend(root=tmp_path)
    backend.declare_plate("s.zarr/p", rows=["A"], columns=["1"])
    with pytest.raises(ImageSaveError, match=r"letters and digits.*\['f-1'\].*Nothing was written"):
        backend.save(_field(0, 0, 0), "s.zarr/p/A/1/f-1", axes="czyx")
    assert not (tmp_path / "s.zarr/p/A").exists()
    with pytest.raises(ImageSaveError, match=r"letters and digits"):
        backend.declare_image("s.zarr/p/A/1/f_1", (None, 16, 16), "uint16", axes="tyx")
    with pytest.raises(ValueError, match="acquisition"):
        backend.save(_field(0, 0, 0), "s.zarr/p/A/1/0", axes="czyx", acquisition=-1)
    assert not (tmp_path / "s.zarr/p/A").exists()


def test_paths_that_are_not_plates_get_no_plate_metadata(tmp_path: Path) -> None:
    backend = ZarrBackend(root=tmp_path)
    backend.save(_field(0, 0, 0), "x.zarr/A01/site/0", axes="czyx")  # four parts, root not a plate
    backend.save(_field(0, 0, 0), "y.zarr/A/1/0")  # no axes: a plain array, not an OME image
    backend.save(_field(0, 0, 0), "z.zarr/A01/1/0", axes="czyx")  # "A01" is no row name
    for store in ("x.zarr", "y.zarr", "z.zarr"):
        assert "hcs" not in backend.info(store), store


_WRITER = textwrap.dedent("""
    import sys
    import numpy as np
    from polystore.zarr import ZarrBackend
    root, me = sys.argv[1], int(sys.argv[2])
    backend = ZarrBackend(root=root)
    for col in range(1, 7):
        for field in range(2):
            backend.save(np.full((8, 8), me * 100 + col, np.uint16), f"p.zarr/{'ABCD'[me]}/{col}/{field}", axes="yx")
""")


def test_concurrent_writers_of_different_wells_keep_the_plate_consistent(tmp_path: Path) -> None:
    procs = [subprocess.Popen([sys.executable, "-c", _WRITER, str(tmp_path), str(me)]) for me in range(4)]
    assert [p.wait(timeout=120) for p in procs] == [0, 0, 0, 0]
    model = _validated_plate(tmp_path / "p.zarr")
    plate = model.attributes.ome.plate  # type: ignore[attr-defined]
    assert [r.name for r in plate.rows] == ["A", "B", "C", "D"]
    assert [c.name for c in plate.columns] == [str(c) for c in range(1, 7)]
    assert len(plate.wells) == 24 and plate.field_count == 2
    for well in plate.wells:
        assert (well.path.split("/")[0], well.path.split("/")[1]) == (
            plate.rows[well.rowIndex].name, plate.columns[well.columnIndex].name
        )
        assert ZarrBackend(root=tmp_path).info(f"p.zarr/{well.path}")["fields"] == ["0", "1"]


def test_ls_and_info_show_plate_well_field(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    backend = ZarrBackend(root=tmp_path)
    for col in ("1", "2"):
        backend.save(_field(0, 0, 0), f"p.zarr/A/{col}/0", axes="czyx")
    code, out, _ = run_cli(capsys, "ls", "-r", "--json", str(tmp_path / "p.zarr"))
    assert code == 0
    kinds = {e["path"]: e["kind"] for e in map(json.loads, out.splitlines())}
    assert kinds == {"A/": "group", "A/1/": "well", "A/1/0": "field", "A/2/": "well", "A/2/0": "field"}
    code, out, _ = run_cli(capsys, "info", "--json", str(tmp_path / "p.zarr"))
    report = json.loads(out)
    assert report["hcs"] == "plate" and report["wells"] == ["A/1", "A/2"] and report["field_count"] == 1
    assert report["contains"] == {"field": 2, "group": 1, "well": 2}
    assert report["raw_bytes"] == 2 * _field(0, 0, 0).nbytes
