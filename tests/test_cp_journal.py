"""``polystore cp`` resume: the journal forgets items whose source was deleted."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from polystore import DiskBackend
from polystore.cli import main
from polystore.cli.cp import JOURNAL_NAME


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
