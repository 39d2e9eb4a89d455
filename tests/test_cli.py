"""The ``polystore`` command line on real files, stores, viewers and processes."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tifffile

from polystore import FileManager
from polystore.cli import main
from polystore.cli.cp import JOURNAL_NAME

import screens

pytest.importorskip("zarr")

COMMANDS = ("ls", "info", "cp", "view", "serve", "bench")


def run_cli(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """Run ``polystore ARGS`` in this process; return (exit code, stdout, stderr)."""
    code = main(list(args))
    out, err = capsys.readouterr()
    return code, out, err


def run_subprocess(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None,
                   timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "polystore", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def tiff_folder(tmp_path: Path) -> Path:
    """Six TIFFs in two well folders (2-D uint16, a 3-D uint8 stack, a float32 plane) and a stray .txt."""
    rng = np.random.default_rng(7)
    src = tmp_path / "tiffs"
    for t in range(4):
        tifffile.imwrite(src / "A01" / f"t{t}.tif", rng.integers(0, 65535, (48, 40), dtype=np.uint16),
                         photometric="minisblack") if (src / "A01").mkdir(parents=True, exist_ok=True) is None else None
    (src / "B02").mkdir()
    tifffile.imwrite(src / "B02" / "stack.tif", rng.integers(0, 255, (5, 24, 24), dtype=np.uint8),
                     photometric="minisblack")
    tifffile.imwrite(src / "B02" / "float.tiff", rng.random((16, 20)).astype(np.float32))
    (src / "notes.txt").write_text("not an image")
    return src


def tiffs_of(folder: Path) -> dict[str, np.ndarray]:
    return {str(p.relative_to(folder).with_suffix("")): tifffile.imread(p)
            for p in sorted(folder.rglob("*.tif*"))}


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


# ----------------------------------------------------------------------------- view / serve (real viewers)


@pytest.mark.gui
def test_view_opens_a_store_through_the_plugin_reader(tmp_path: Path) -> None:
    pytest.importorskip("napari")
    result = screens.view_store_screenshot(tmp_path)
    assert result.returncode == 0, result.stderr
    # one layer named after the image, or one per channel (named from the OME channel labels)
    assert "layers A01" in result.stdout or "layers membrane, nucleus" in result.stdout, result.stdout
    screens.assert_drawn(screens.VIEW_PNG)


@pytest.mark.gui
def test_view_missing_path_fails_before_opening_a_window(tmp_path: Path) -> None:
    result = run_subprocess("view", "nothing.zarr", cwd=tmp_path, env=screens.gui_env())
    assert result.returncode == 1 and "no such" in result.stderr


@pytest.mark.gui
def test_serve_napari_receives_and_stops_its_viewer(tmp_path: Path) -> None:
    pytest.importorskip("napari")
    from fiji_testing import free_ports

    endpoint = f"tcp://127.0.0.1:{free_ports(1)[0]}"
    serve = subprocess.Popen([sys.executable, "-m", "polystore", "serve", "napari", "--endpoint", endpoint],
                             env=screens.gui_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert serve.stdout is not None
        first = serve.stdout.readline()
        assert f"listening on {endpoint}" in first, first + (serve.stderr.read() if serve.poll() is not None else "")
        viewer_pid = int(first.split("pid ")[1].split(")")[0])
        sender = textwrap.dedent(
            """
            import numpy as np
            from polystore import BackendRegistry, FileManager
            from polystore.streaming.napari import NapariStreamingBackend
            fm = FileManager(BackendRegistry(napari=NapariStreamingBackend(send_timeout=20)))
            fm.save(np.ones((16, 16), np.uint8), "A01/x.tif", backend="napari")
            fm.get_backend("napari").close()
            """
        )
        env = {**os.environ, "POLYSTORE_NAPARI_ENDPOINT": endpoint}
        sent = subprocess.run([sys.executable, "-c", sender], env=env, capture_output=True, text=True, timeout=60)
        assert sent.returncode == 0, sent.stderr
    finally:
        serve.send_signal(signal.SIGTERM)
        code = serve.wait(30)
    assert code == 0
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and _alive(viewer_pid):
        time.sleep(0.1)
    assert not _alive(viewer_pid), "the viewer started by serve is still running"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is dead for our purpose
        return "Z" not in Path(f"/proc/{pid}/stat").read_text().split()[2]
    except OSError:
        return False


def test_serve_rejects_a_bad_endpoint(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(capsys, "serve", "fiji", "--endpoint", "ipc:///tmp/x")
    assert code == 2 and "tcp://HOST:PORT" in err


@pytest.mark.java
def test_serve_fiji_starts_a_bridge_and_stops_it(tmp_path: Path) -> None:
    from fiji_testing import build_jar, free_port_pair

    build_jar()
    port = free_port_pair()
    serve = subprocess.Popen([sys.executable, "-m", "polystore", "serve", "fiji", "--headless",
                              "--endpoint", f"tcp://127.0.0.1:{port}"],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert serve.stdout is not None
        first = serve.stdout.readline()
        assert f"listening on tcp://127.0.0.1:{port}" in first, first + (serve.stderr.read() if serve.poll() is not None else "")
        bridge_pid = int(first.split("pid ")[1].split(")")[0])
        from polystore.streaming.fiji import FijiStreamingBackend

        backend = FijiStreamingBackend(port=port)
        backend.save(np.arange(64, dtype=np.uint16).reshape(8, 8), "A01/x.tif")
        assert backend.flush()["placed"] == 1
        backend.close()
    finally:
        serve.send_signal(signal.SIGTERM)
        code = serve.wait(30)
    assert code == 0
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and _alive(bridge_pid):
        time.sleep(0.1)
    assert not _alive(bridge_pid)


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
