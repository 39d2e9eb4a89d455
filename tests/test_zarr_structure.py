"""The zarr package's shape (issue 9): one store-access seam, a small facade, tunables in ZarrConfig."""

from __future__ import annotations

import ast
import pathlib

import numpy as np
import pytest

pytest.importorskip("zarr")

from polystore.zarr import ZarrBackend  # noqa: E402
from polystore.zarr._fs import _FS, _FsspecFS, _LocalFS  # noqa: E402

PACKAGE = pathlib.Path(__file__).resolve().parents[1] / "src" / "polystore" / "zarr"


def _isinstance_of_fs_class(tree: ast.AST) -> list[int]:
    """Lines of ``isinstance(x, _LocalFS | _FsspecFS)`` calls."""
    lines = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "isinstance" and len(node.args) == 2:
            names = {n.id for n in ast.walk(node.args[1]) if isinstance(n, ast.Name)}
            if names & {"_LocalFS", "_FsspecFS"}:
                lines.append(node.lineno)
    return lines


def test_no_module_outside_the_seam_tests_the_store_type() -> None:
    found = {
        path.name: lines
        for path in sorted(PACKAGE.glob("*.py"))
        if path.name != "_fs.py" and (lines := _isinstance_of_fs_class(ast.parse(path.read_text())))
    }
    assert found == {}, f"ask the _FS capability flags instead of testing the type: {found}"


def test_capabilities_are_flags_of_the_seam() -> None:
    flags = ("supports_rename", "supports_locks", "supports_pins", "supports_native_files", "prefers_batches")
    assert all(isinstance(getattr(_FS, f), bool) for f in flags)
    assert [getattr(_LocalFS, f) for f in flags] == [True, True, True, True, False]
    assert [getattr(_FsspecFS, f) for f in flags] == [False, False, False, False, True]


class _PlainFolderFS(_LocalFS):
    """Local files, but saying it can rename, lock, pin and mmap nothing (an object store's flags)."""

    supports_rename = False
    supports_locks = False
    supports_pins = False
    supports_native_files = False
    prefers_batches = True


def test_the_backend_follows_the_flags_not_the_type(tmp_path: pathlib.Path) -> None:
    """With an object store's flags, local files take the object-store paths (and still round-trip)."""
    backend = ZarrBackend(root=tmp_path)
    backend._local = _PlainFolderFS()
    frames = [np.full((16, 16), i, np.uint16) for i in range(3)]
    backend.save_batch(frames, [f"s.zarr/f{i}" for i in range(3)])
    backend.save(np.full((16, 16), 9, np.uint16), "s.zarr/f1")  # replace: chunk by chunk, no staging
    backend.save_batch([np.full((16, 16), 7, np.uint16)], ["s.zarr/f3"])  # append
    assert not list((tmp_path / "s.zarr").rglob("*polystore-tmp*"))
    assert not (tmp_path / ".s.zarr.polystore.lock").exists()  # no lock taken
    assert [int(backend.load(f"s.zarr/f{i}")[0, 0]) for i in range(4)] == [0, 9, 2, 7]
    backend.move("s.zarr", "t.zarr")  # no rename: copy then delete
    assert backend.list_files("t.zarr") == [f"t.zarr/f{i}" for i in range(4)]
    assert not (tmp_path / "s.zarr").exists()


def test_the_backend_is_a_facade_and_no_module_is_long() -> None:
    lengths = {p.name: len(p.read_text().splitlines()) for p in PACKAGE.glob("*.py")}
    assert lengths["backend.py"] <= 350, lengths
    assert max(lengths.values()) <= 450, lengths


def test_tunables_are_config_fields_not_module_globals() -> None:
    import polystore.zarr as pz
    from polystore.config import ZarrConfig

    assert not hasattr(pz, "_PUT_BATCH_BYTES")
    backend = ZarrBackend(config=ZarrConfig(request_batch_bytes=4096))
    fs, _ = backend._fs_for("s3://bucket/x.zarr")  # s3fs makes no request until used
    assert fs.request_batch_bytes == 4096
    with pytest.raises(ValueError, match="request_batch_bytes"):
        ZarrConfig(request_batch_bytes=0)
    with pytest.raises(ValueError, match="keep_buffer_bytes"):
        ZarrConfig(keep_buffer_bytes=0)


@pytest.mark.parametrize("keep", [1, 64 * 1024 * 1024])
def test_keep_buffer_bytes_decides_what_a_reading_thread_keeps(tmp_path: pathlib.Path, keep: int) -> None:
    import threading

    from polystore.config import ZarrConfig
    from polystore.zarr._fs import _SCRATCH

    # the own reader's buffers (a whole-array load would go to zarrs when it is installed)
    backend = ZarrBackend(root=tmp_path, config=ZarrConfig(keep_buffer_bytes=keep, use_zarrs=False))
    backend.save(np.arange(64 * 64, dtype=np.uint16).reshape(64, 64), "k.zarr/a")  # one Blosc chunk
    kept: list[bool] = []

    def read() -> None:  # a fresh thread: its buffers are whatever this read left
        np.testing.assert_array_equal(backend.load("k.zarr/a")[1], np.arange(64, 128))
        kept.append(bool(vars(_SCRATCH)))

    thread = threading.Thread(target=read)
    thread.start()
    thread.join()
    assert kept == [keep > 1]
