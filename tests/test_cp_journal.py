"""Resuming a copy (``polystore cp``, ``FileManager.copy_tree``): the journal, a failed item."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from polystore import DiskBackend, FileManager, StorageError
from polystore.cli import main
from polystore.tree_copy import JOURNAL_NAME, CopyOptionError


def _journal_sources(root: Path) -> set[str]:
    return {json.loads(line)["source"] for line in (root / JOURNAL_NAME).read_text().splitlines()}


def test_cp_rerun_drops_journal_entries_of_deleted_sources(tmp_path: Path) -> None:
    src, dst = tmp_path / "src", tmp_path / "dst"
    disk = DiskBackend()
    for name in ("a", "b", "c"):
        disk.save(np.full((4, 4), ord(name), np.uint16), src / f"{name}.npy")
    assert main(["cp", str(src), str(dst), "--no-progress"]) == 0
    assert _journal_sources(dst) == {"a.npy", "b.npy", "c.npy"}
    (src / "b.npy").unlink()
    assert main(["cp", str(src), str(dst), "--no-progress"]) == 0
    assert _journal_sources(dst) == {"a.npy", "c.npy"}
    assert disk.list_files(dst) == [str(dst / "a.npy"), str(dst / "b.npy"), str(dst / "c.npy")]
    assert main(["cp", str(src), str(dst), "--no-progress"]) == 0  # the rewritten journal still resumes
    assert _journal_sources(dst) == {"a.npy", "c.npy"}


def test_copy_tree_from_python_resumes_after_a_failed_item(tmp_path: Path) -> None:
    # The engine is the library's: a copy that fails mid-way keeps its finished part, and the
    # same call, once the cause is fixed, continues it instead of starting again.
    src, dst = tmp_path / "src", tmp_path / "plate.zarr"
    disk = DiskBackend()
    images = {name: np.full((4, 5), i, np.uint16) for i, name in enumerate("abcd")}
    for name, image in images.items():
        disk.save(image, src / f"{name}.npy")
    (src / "c.npy").write_bytes(b"\x93NUMPY garbage")  # unreadable: the copy stops at c
    fm = FileManager()
    with pytest.raises(StorageError, match="finished part is kept in .*run the same copy again") as caught:
        fm.copy_tree(src, dst)
    assert "c.npy" in str(caught.value)
    partial = tmp_path / ".plate.zarr.cp-partial.zarr"
    assert not dst.exists() and _journal_sources(partial) == {"a.npy", "b.npy"}

    disk.save(images["c"], src / "c.npy")
    result = fm.copy_tree(src, dst)
    assert (result.copied, result.skipped, result.destination) == (2, 2, str(dst))
    assert not partial.exists()
    for name, image in images.items():
        assert np.array_equal(fm.load(dst / name, "zarr"), image)


def test_copy_tree_options_that_do_not_go_together_name_the_option(tmp_path: Path) -> None:
    np.save(tmp_path / "a.npy", np.zeros(3))
    with pytest.raises(CopyOptionError, match="--compressor applies to --to zarr only") as caught:
        FileManager().copy_tree(tmp_path / "a.npy", tmp_path / "b.npy", compressor="zstd")
    assert caught.value.option == "compressor" and isinstance(caught.value, StorageError)
