"""The ``polystore`` command line: help, errors and exit codes, ``ls``/``info``, ``bench``.

``cp`` is tested in test_cli_cp.py, ``view``/``serve`` in test_cli_view_serve.py.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cli_testing import COMMANDS, run_cli, run_subprocess, tiff_folder  # noqa: F401  (fixture)
from polystore import FileManager

pytest.importorskip("zarr")


# ----------------------------------------------------------------------------- basics


def test_import_polystore_does_not_import_click() -> None:
    code = "import sys, polystore; print('click' in sys.modules, 'polystore.cli' in sys.modules)"
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert result.stdout.split() == ["False", "False"], result.stderr


@pytest.mark.parametrize("command", ("", *COMMANDS))
def test_help_on_every_command(capsys: pytest.CaptureFixture[str], command: str) -> None:
    code, out, _ = run_cli(capsys, *([command] if command else []), "--help")
    assert code == 0
    assert out.startswith("Usage: polystore")


def test_console_script_and_python_m_agree(tmp_path: Path) -> None:
    script = Path(sys.executable).with_name("polystore")
    assert script.is_file(), "the polystore console script is not installed (pip install -e .)"
    a = subprocess.run([str(script), "--version"], capture_output=True, text=True, timeout=60)
    b = run_subprocess("--version")
    assert a.returncode == b.returncode == 0
    assert a.stdout == b.stdout and a.stdout.startswith("polystore ")


@pytest.mark.parametrize(
    ("args", "code", "needle"),
    [
        (["ls", "no/such/folder"], 1, "no such file or directory"),
        (["info", "no/such/file.tif"], 1, "no such file or directory"),
        (["info", "no/such.zarr/a"], 1, "no such"),
        (["cp", "no/such/folder", "out.zarr"], 1, "no such"),
        (["ls", "--backend", "s3", "."], 2, "usage error"),
        (["cp", "a", "b", "--format", "png"], 2, "usage error"),
        (["nosuchcommand"], 2, "usage error"),
        (["info", "notes.txt.weird"], 1, "unsupported format"),
    ],
)
def test_bad_input_is_one_line_and_a_meaningful_exit_code(
    tmp_path: Path, args: list[str], code: int, needle: str
) -> None:
    (tmp_path / "notes.txt.weird").write_text("x")
    result = run_subprocess(*args, cwd=tmp_path)
    assert result.returncode == code, result.stderr
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert needle in lines[0].lower()
    assert "Traceback" not in result.stderr


def test_debug_prints_the_traceback(tmp_path: Path) -> None:
    (tmp_path / "x.weird").write_text("x")
    result = run_subprocess("--debug", "info", "x.weird", cwd=tmp_path)
    assert result.returncode == 1
    assert "Traceback" in result.stderr and "UnsupportedFormatError" in result.stderr


# ----------------------------------------------------------------------------- ls / info


def test_ls_and_info_on_a_store(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    fm = FileManager()
    store = tmp_path / "plate.zarr"
    stack = np.arange(2 * 3 * 64 * 64, dtype=np.uint16).reshape(2, 3, 64, 64)
    fm.save(stack, store / "A01", backend="zarr", axes="czyx", channel_names=["dna", "actin"],
            pyramid_levels=1, metadata={"well": "A01"})
    fm.save(np.zeros((8, 8), np.float32), store / "raw" / "plain", backend="zarr")
    fm.save_batch([np.ones((4, 4), np.uint8)] * 2, [store / "batch" / "f0.tif", store / "batch" / "f1.tif"],
                  backend="zarr")

    code, out, _ = run_cli(capsys, "ls", str(store), "-r", "--json")
    assert code == 0
    rows = {row["path"]: row for row in map(json.loads, out.splitlines())}
    assert rows["A01"]["kind"] == "image" and rows["A01"]["shape"] == [2, 3, 64, 64]
    assert rows["A01"]["dtype"] == "uint16" and rows["A01"]["chunks"] == [1, 1, 64, 64]
    assert rows["A01"]["size"] > 0
    assert rows["raw/"]["kind"] == "group" and rows["raw/plain"]["kind"] == "array"
    assert rows["batch"]["shape"] == [2, 4, 4]
    assert rows["batch/f1.tif"]["kind"] == "member" and rows["batch/f1.tif"]["shape"] == [4, 4]

    code, out, _ = run_cli(capsys, "ls", str(store), "-r", "--pattern", "f*")
    assert code == 0
    assert [line.split()[-1] for line in out.splitlines()] == ["batch/f0.tif", "batch/f1.tif"]

    code, out, _ = run_cli(capsys, "info", str(store / "A01"), "--json")
    assert code == 0
    report = json.loads(out)
    assert report["kind"] == "image" and report["ome_version"] == "0.5"
    assert [a["name"] for a in report["axes_detail"]] == list("czyx")
    assert [lv["shape"] for lv in report["levels_detail"]] == [[2, 3, 64, 64], [2, 3, 32, 32]]
    assert [c["label"] for c in report["channels"]] == ["dna", "actin"]
    assert report["metadata"] == {"well": "A01"}
    assert report["compressor"].startswith("blosc lz4")
    # arange compresses well: raw / stored must be clearly above 1
    assert report["raw_bytes"] == stack.nbytes + stack[..., ::2, ::2].nbytes
    assert report["compression_ratio"] > 2

    code, out, _ = run_cli(capsys, "info", str(store))
    assert code == 0 and "contains:" in out and "compression ratio:" in out


def test_ls_and_info_on_a_folder(tiff_folder: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_cli(capsys, "ls", str(tiff_folder), "-r", "--ext", "tif")
    assert code == 0
    names = [line.split()[-1] for line in out.splitlines()]
    assert names == ["A01/t0.tif", "A01/t1.tif", "A01/t2.tif", "A01/t3.tif", "B02/stack.tif"]
    assert "(5, 24, 24)" in out and "uint8" in out
    code, out, _ = run_cli(capsys, "info", str(tiff_folder / "B02" / "stack.tif"), "--json")
    report = json.loads(out)
    assert report["format"] == "TIFF" and report["shape"] == [5, 24, 24] and report["dtype"] == "uint8"


# ----------------------------------------------------------------------------- bench


def test_bench_runs_a_suite_from_the_source_tree(capsys: pytest.CaptureFixture[str]) -> None:
    result = run_subprocess("bench", "core", "--help")
    assert result.returncode == 0, result.stderr
    assert "--count" in result.stdout
    code, _, err = run_cli(capsys, "bench", "nosuch")
    assert code == 2 and "usage error" in err


def test_bench_without_source_tree_is_a_clear_error(tmp_path: Path) -> None:
    env = {**os.environ, "POLYSTORE_SOURCE": str(tmp_path)}
    code = ("import sys, polystore.cli; from pathlib import Path; b = sys.modules['polystore.cli.bench']; "
            "b.__file__ = str(Path(sys.argv[1]) / 'a' / 'b' / 'c' / 'bench.py'); "
            "from polystore.cli import main; sys.exit(main(['bench', 'core']))")
    result = subprocess.run([sys.executable, "-c", code, str(tmp_path)], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 1
    assert "source tree" in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_every_benchmark_suite_runs_from_both_entry_points() -> None:
    from polystore.cli.bench import SUITES

    on_disk = {p.name[: -len("_bench.py")] for p in (Path(__file__).parents[1] / "bench").glob("*_bench.py")}
    assert set(SUITES) == on_disk  # `polystore bench annotations` was refused while python -m bench ran it
    result = run_subprocess("bench", "annotations", "--help")
    assert result.returncode == 0, result.stderr
