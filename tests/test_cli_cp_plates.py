"""``polystore cp`` of ImageXpress and Opera/Operetta exports into one HCS plate (issue 13)."""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import numpy as np
import pytest
import tifffile

zarr = pytest.importorskip("zarr")

from cli_testing import run_cli  # noqa: E402
from polystore import FileManager  # noqa: E402
from polystore.exceptions import StorageError  # noqa: E402
from polystore.hcs_names import parse_hcs_name, plate_layout  # noqa: E402
from polystore.tree_copy import CopyOptionError  # noqa: E402


def _plane(*index: int) -> np.ndarray:
    return np.full((24, 20), sum(v * 10**i for i, v in enumerate(reversed(index))), np.uint16)


def _imagexpress(root: Path, wells: tuple[str, ...] = ("B02", "C11"), sites: int = 2) -> Path:
    """TimePoint_1..2 / ZStep_1..3 folders of <plate>_<well>_s<site>_w<1..2>.tif, with thumbnails."""
    for t in (1, 2):
        for z in (1, 2, 3):
            folder = root / f"TimePoint_{t}" / f"ZStep_{z}"
            folder.mkdir(parents=True)
            for well in wells:
                for s in range(1, sites + 1):
                    for w in (1, 2):
                        tifffile.imwrite(folder / f"Exp3_{well}_s{s}_w{w}.tif", _plane(t, w, z, s))
                        tifffile.imwrite(folder / f"Exp3_{well}_s{s}_w{w}_thumb.tif", np.zeros((4, 4), np.uint8))
    return root


def _validated(store: Path) -> object:
    from ome_zarr_models.v05.hcs import HCS

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        return HCS.from_zarr(zarr.open_group(str(store), mode="r"))


def test_names_are_parsed() -> None:
    p = parse_hcs_name("TimePoint_4/ZStep_2/My_Plate_AB12_s3_w2.TIF")
    assert p is not None and (p.vendor, p.row, p.column, p.site, p.channel, p.t, p.z, p.thumbnail) == (
        "imagexpress", "AB", 12, 3, 2, 4, 2, False
    )
    p = parse_hcs_name("Plate_B02_w1_thumb6A7C4E2B-1234-4ABC-9DEF-0123456789AB.tif")
    assert p is not None and p.thumbnail and p.site == 1
    p = parse_hcs_name("Images/r02c03f01p04-ch2sk3fk1fl1.tiff")
    assert p is not None and (p.vendor, p.row, p.column, p.site, p.channel, p.t, p.z) == ("opera", "B", 3, 1, 2, 3, 4)
    assert parse_hcs_name("A01/t0.tif") is None and parse_hcs_name("notes_B02.txt") is None
    assert plate_layout(["x_B02_s1_w1.tif", "other.tif"]) is None  # one foreign file: not an export


def test_cp_converts_an_imagexpress_export_into_one_plate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = _imagexpress(tmp_path / "export")
    code, out, err = run_cli(capsys, "cp", str(src), str(tmp_path / "exp3.zarr"), "--no-progress")
    assert code == 0, err
    assert "copied 4," in out  # 2 wells x 2 sites
    plate = _validated(tmp_path / "exp3.zarr").attributes.ome.plate  # type: ignore[attr-defined]
    assert plate.name == "exp3" and [w.path for w in plate.wells] == ["B/2", "C/11"] and plate.field_count == 2
    fm = FileManager()
    info = fm.get_backend("zarr").info(str(tmp_path / "exp3.zarr/C/11/1"))
    assert info["axes"] == "tczyx" and info["shape"] == (2, 2, 3, 24, 20) and info["channel_names"] == ["w1", "w2"]
    image = fm.load(str(tmp_path / "exp3.zarr/C/11/1"), backend="zarr")
    for t, w, z in ((0, 0, 0), (1, 1, 2), (0, 1, 1)):
        np.testing.assert_array_equal(image[t, w, z], _plane(t + 1, w + 1, z + 1, 2))
    code, out, _ = run_cli(capsys, "cp", str(src), str(tmp_path / "exp3.zarr"), "--no-progress")
    assert "copied 0, skipped 4" in out  # resumable like every cp
    code, out, _ = run_cli(capsys, "ls", "-r", "--json", str(tmp_path / "exp3.zarr"))
    kinds = [json.loads(line)["kind"] for line in out.splitlines()]
    assert kinds.count("well") == 2 and kinds.count("field") == 4


def test_cp_converts_an_opera_export(tmp_path: Path) -> None:
    src = tmp_path / "opera" / "Images"
    src.mkdir(parents=True)
    for row, col in ((2, 3), (4, 12)):
        for f in (1, 2, 3):
            for ch in (1, 2, 3):
                tifffile.imwrite(src / f"r{row:02d}c{col:02d}f{f:02d}p01-ch{ch}sk1fk1fl1.tiff", _plane(row, col, f, ch))
    result = FileManager().copy_tree(tmp_path / "opera", tmp_path / "op.zarr")
    assert result.copied == 6
    plate = _validated(tmp_path / "op.zarr").attributes.ome.plate  # type: ignore[attr-defined]
    assert [r.name for r in plate.rows] == ["B", "D"] and [c.name for c in plate.columns] == ["3", "12"]
    fm = FileManager()
    assert fm.get_backend("zarr").info(str(tmp_path / "op.zarr/D/12/2"))["axes"] == "cyx"
    np.testing.assert_array_equal(fm.load(str(tmp_path / "op.zarr/D/12/2"), backend="zarr")[2], _plane(4, 12, 3, 3))
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Reader

    stitched = np.asarray(list(Reader(parse_url(str(tmp_path / "op.zarr")))())[0].data[0])
    assert stitched.shape == (3, 48, 40)  # 2 rows x 2 columns of the first field


def test_a_field_missing_a_plane_raises_before_writing(tmp_path: Path) -> None:
    src = _imagexpress(tmp_path / "export", wells=("B02",), sites=1)
    (src / "TimePoint_2" / "ZStep_3" / "Exp3_B02_s1_w2.tif").unlink()
    tifffile.imwrite(src / "TimePoint_1" / "ZStep_1" / "Exp3_D04_s1_w1.tif", _plane(0))
    with pytest.raises(StorageError, match=r"well B02 site 1 lacks 1 plane.*t=2 w2 z=3.*nothing was written"):
        FileManager().copy_tree(src, tmp_path / "p.zarr")
    assert not list(tmp_path.glob("*p.zarr*"))


def test_plate_options(tmp_path: Path) -> None:
    src = _imagexpress(tmp_path / "export", wells=("B02",), sites=1)
    result = FileManager().copy_tree(src, tmp_path / "files.zarr", plate=False)
    assert result.copied == 24  # 12 planes + 12 thumbnails, file by file
    (tmp_path / "plain").mkdir()
    tifffile.imwrite(tmp_path / "plain" / "img.tif", _plane(1))
    with pytest.raises(CopyOptionError, match="ImageXpress or Opera") as caught:
        FileManager().copy_tree(tmp_path / "plain", tmp_path / "x.zarr", plate=True)
    assert caught.value.option == "plate"
