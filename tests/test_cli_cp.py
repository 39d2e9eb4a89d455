"""``polystore cp`` on real files and stores: round trips, resume, kills, collisions."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tifffile

from cli_testing import run_cli, tiff_folder, tiffs_of  # noqa: F401  (fixture)
from polystore import FileManager
from polystore.tree_copy import JOURNAL_NAME

pytest.importorskip("zarr")


# ----------------------------------------------------------------------------- cp


def test_cp_round_trip_tiff_folder_zarr_tiff_folder_is_pixel_exact(
    tiff_folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store, back = tmp_path / "plate.zarr", tmp_path / "back"
    code, out, err = run_cli(capsys, "cp", str(tiff_folder), str(store))
    assert code == 0, err
    assert "copied 6, skipped 0" in out
    fm = FileManager()
    # an OME-Zarr image per file, at the file's path without its extension
    assert fm.list_files(store, "zarr", recursive=True) == [
        f"{store}/{name}" for name in ("A01/t0", "A01/t1", "A01/t2", "A01/t3", "B02/float", "B02/stack")
    ]
    meta = json.loads((store / "B02" / "stack" / "zarr.json").read_text())
    assert [a["name"] for a in meta["attributes"]["ome"]["multiscales"][0]["axes"]] == ["z", "y", "x"]
    assert not list(tmp_path.glob(".*partial*"))

    code, out, err = run_cli(capsys, "cp", str(store), str(back))
    assert code == 0, err
    original, again = tiffs_of(tiff_folder), tiffs_of(back)
    assert original.keys() == again.keys()
    for name, image in original.items():
        assert again[name].dtype == image.dtype and np.array_equal(again[name], image), name


def test_cp_npy_format_and_compressor(tiff_folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(capsys, "cp", str(tiff_folder), str(tmp_path / "z.zarr"), "--compressor", "zstd")
    assert code == 0, err
    codecs = json.loads((tmp_path / "z.zarr" / "A01" / "t0" / "0" / "zarr.json").read_text())["codecs"]
    assert codecs[-1]["configuration"]["cname"] == "zstd"
    code, _, err = run_cli(capsys, "cp", str(tmp_path / "z.zarr"), str(tmp_path / "npy"), "--format", "npy")
    assert code == 0, err
    for name, image in tiffs_of(tiff_folder).items():
        assert np.array_equal(np.load(tmp_path / "npy" / f"{name}.npy"), image)
    code, _, err = run_cli(capsys, "cp", str(tmp_path / "npy"), str(tmp_path / "z2.zarr"), "--format", "tif")
    assert code == 2 and "--format applies to --to disk only" in err


def test_cp_single_file_and_rerun_skips(tiff_folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = tiff_folder / "B02" / "stack.tif"
    code, out, _ = run_cli(capsys, "cp", str(src), str(tmp_path / "one.zarr"))
    assert code == 0 and "copied 1" in out
    code, out, _ = run_cli(capsys, "cp", str(src), str(tmp_path / "one.zarr"))
    assert code == 0 and "copied 0, skipped 1" in out
    code, out, _ = run_cli(capsys, "cp", str(tmp_path / "one.zarr"), str(tmp_path / "one.npy"))
    assert code == 0
    assert np.array_equal(np.load(tmp_path / "one.npy"), tifffile.imread(src))


def test_cp_rerun_skips_what_is_complete_and_verified(
    tiff_folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = tmp_path / "plate.zarr"
    assert run_cli(capsys, "cp", str(tiff_folder), str(store))[0] == 0
    code, out, _ = run_cli(capsys, "cp", str(tiff_folder), str(store))
    assert code == 0 and "copied 0, skipped 6" in out

    # a changed source is copied again
    new = np.full((48, 40), 9, np.uint16)
    tifffile.imwrite(tiff_folder / "A01" / "t1.tif", new)
    os.utime(tiff_folder / "A01" / "t1.tif", ns=(1, 1))
    # a damaged target (a chunk rewritten with other bytes) fails verification and is rewritten
    chunk = next(p for p in (store / "A01" / "t2" / "0" / "c").rglob("*") if p.is_file())
    chunk.write_bytes(b"garbage")
    code, out, _ = run_cli(capsys, "cp", str(tiff_folder), str(store))
    assert code == 0 and "copied 2, skipped 4" in out
    fm = FileManager()
    assert np.array_equal(fm.load(store / "A01" / "t1", "zarr"), new)
    assert np.array_equal(fm.load(store / "A01" / "t2", "zarr"), tifffile.imread(tiff_folder / "A01" / "t2.tif"))
    records = [json.loads(line) for line in (store / JOURNAL_NAME).read_text().splitlines()]
    assert {r["target"] for r in records} == {"A01/t0", "A01/t1", "A01/t2", "A01/t3", "B02/float", "B02/stack"}


def _save_interrupter(limit: int) -> Any:
    calls = {"n": 0}
    original = FileManager.save

    def save(self: FileManager, *args: Any, **kwargs: Any) -> None:
        calls["n"] += 1
        if calls["n"] > limit:
            raise KeyboardInterrupt
        original(self, *args, **kwargs)

    return save


def test_cp_interrupted_leaves_no_target_and_resumes(
    tiff_folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    store = tmp_path / "plate.zarr"
    monkeypatch.setattr(FileManager, "save", _save_interrupter(3))
    code, _, err = run_cli(capsys, "cp", str(tiff_folder), str(store))
    assert code == 130 and "interrupted" in err
    assert not store.exists()  # the target appears only when complete
    partial = tmp_path / ".plate.zarr.cp-partial.zarr"
    assert len((partial / JOURNAL_NAME).read_text().splitlines()) == 3
    monkeypatch.undo()
    code, out, _ = run_cli(capsys, "cp", str(tiff_folder), str(store))
    assert code == 0 and "copied 3, skipped 3" in out
    assert store.is_dir() and not partial.exists()
    back = tmp_path / "back"
    assert run_cli(capsys, "cp", str(store), str(back))[0] == 0
    for name, image in tiffs_of(tiff_folder).items():
        assert np.array_equal(tiffs_of(back)[name], image)


KILLER = textwrap.dedent(
    """
    import os, signal, sys
    mode, after = sys.argv[1], int(sys.argv[2])
    seen = {"n": 0}
    if mode == "between":   # killed after `after` items, before the next one starts
        from polystore import FileManager
        original = FileManager.save
        def save(self, *args, **kwargs):
            seen["n"] += 1
            if seen["n"] > after:
                os.kill(os.getpid(), signal.SIGKILL)
            original(self, *args, **kwargs)
        FileManager.save = save
    else:                   # killed inside a save: its chunks are written, the rename is not done
        original_rename = os.rename
        def rename(src, dst, *args, **kwargs):
            if "polystore-tmp-" in os.fspath(src):
                seen["n"] += 1
                if seen["n"] > after:
                    os.kill(os.getpid(), signal.SIGKILL)
            return original_rename(src, dst, *args, **kwargs)
        os.rename = rename
    from polystore.cli import main
    sys.exit(main(sys.argv[3:]))
    """
)


@pytest.mark.parametrize("mode", ["between", "inside"])
def test_cp_killed_mid_way_leaves_no_half_written_target(
    tiff_folder: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], mode: str
) -> None:
    store = tmp_path / "plate.zarr"
    killed = subprocess.run([sys.executable, "-c", KILLER, mode, "2", "cp", str(tiff_folder), str(store)],
                            capture_output=True, text=True, timeout=120)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert not store.exists()
    code, out, err = run_cli(capsys, "cp", str(tiff_folder), str(store))
    assert code == 0, err
    assert "copied 4, skipped 2" in out  # the two finished items were verified, not rewritten
    fm = FileManager()
    names = fm.list_files(store, "zarr", recursive=True)
    assert len(names) == 6
    assert not [p for p in store.rglob(".*") if p.name != JOURNAL_NAME]  # no temp leftovers
    for name, image in tiffs_of(tiff_folder).items():
        assert np.array_equal(fm.load(store / name, "zarr"), image), name


def test_cp_refuses_colliding_targets(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "src").mkdir()
    np.save(tmp_path / "src" / "a.npy", np.zeros(3))
    tifffile.imwrite(tmp_path / "src" / "a.tif", np.zeros((2, 2), np.uint8))
    code, _, err = run_cli(capsys, "cp", str(tmp_path / "src"), str(tmp_path / "x.zarr"))
    assert code == 1 and "would both be written" in err
    assert not (tmp_path / "x.zarr").exists()


def test_cp_into_a_folder_inside_the_source_does_not_copy_its_own_output(
    tiff_folder: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dst = tiff_folder / "as-npy"
    code, out, _ = run_cli(capsys, "cp", str(tiff_folder), str(dst), "--format", "npy")
    assert code == 0 and "copied 6, skipped 0" in out
    code, out, _ = run_cli(capsys, "cp", str(tiff_folder), str(dst), "--format", "npy")
    assert code == 0 and "copied 0, skipped 6" in out
    assert sorted(p.name for p in dst.rglob("*.npy")) == sorted(
        ["t0.npy", "t1.npy", "t2.npy", "t3.npy", "stack.npy", "float.npy"]
    )
