"""A backend of your own: arrays in one SQLite file, used through FileManager.

Subclassing :class:`polystore.StorageBackend` with ``_backend_type = "sqlite"``
registers the class under that name. Only ``save`` and ``load`` are required;
this one also lists (``supports_listing``) but has no directories to create,
delete or move (``supports_directories = False``), so FileManager refuses those
calls with a clear error instead of the backend stubbing them.

Run: ``python examples/custom_backend.py [DATABASE]``.
"""

from __future__ import annotations

import fnmatch
import io
import posixpath
import sqlite3
import sys
from collections.abc import Iterable
from typing import Any

import numpy as np

from polystore import BackendRegistry, FileManager, PathNotFoundError, StorageBackend, StorageError
from polystore.base import PathLike


class SQLiteBackend(StorageBackend):
    """NumPy arrays stored as .npy bytes in a SQLite table, keyed by path."""

    _backend_type = "sqlite"
    supports_directories = False

    def __init__(self, database: str = ":memory:") -> None:
        self.db = sqlite3.connect(database)
        self.db.execute("CREATE TABLE IF NOT EXISTS arrays (path TEXT PRIMARY KEY, data BLOB)")

    @staticmethod
    def _key(path: PathLike) -> str:
        return posixpath.normpath(str(path)).lstrip("/")

    def save(self, data: Any, file_path: PathLike, **kwargs: Any) -> None:
        """Store ``data`` (an array) at ``file_path``, replacing what was there."""
        buffer = io.BytesIO()
        np.save(buffer, np.asarray(data), allow_pickle=False)
        with self.db:  # one transaction: the row is replaced whole or not at all
            self.db.execute("INSERT OR REPLACE INTO arrays VALUES (?, ?)", (self._key(file_path), buffer.getvalue()))

    def load(self, file_path: PathLike, **kwargs: Any) -> Any:
        """Return the array stored at ``file_path``."""
        row = self.db.execute("SELECT data FROM arrays WHERE path = ?", (self._key(file_path),)).fetchone()
        if row is None:
            raise PathNotFoundError(self._key(file_path), "sqlite")
        return np.load(io.BytesIO(row[0]), allow_pickle=False)

    def list_files(
        self, directory: PathLike, pattern: str | None = None, extensions: Iterable[str] | None = None,
        recursive: bool = False,
    ) -> list[str]:
        """Paths under ``directory`` (directories are implied by the paths)."""
        prefix = self._key(directory)
        prefix = "" if prefix == "." else prefix + "/"
        exts = tuple(e.lower() for e in extensions) if extensions else None
        found = []
        for (path,) in self.db.execute("SELECT path FROM arrays WHERE path LIKE ? ORDER BY path", (prefix + "%",)):
            rest = path[len(prefix) :]
            name = posixpath.basename(path)
            if (not recursive and "/" in rest) or (exts and not name.lower().endswith(exts)):
                continue
            if pattern is None or fnmatch.fnmatchcase(name, pattern):
                found.append(path)
        return found

    def is_file(self, path: PathLike) -> bool:
        """True if an array is stored at ``path``."""
        return self.db.execute("SELECT 1 FROM arrays WHERE path = ?", (self._key(path),)).fetchone() is not None

    def is_dir(self, path: PathLike) -> bool:
        """True if some stored path lies below ``path``."""
        prefix = self._key(path) + "/"
        return self.db.execute("SELECT 1 FROM arrays WHERE path LIKE ?", (prefix + "%",)).fetchone() is not None


def main(argv: list[str] | None = None) -> int:
    """Save, list and load through the custom backend with the ordinary FileManager calls."""
    database = ((sys.argv[1:] if argv is None else argv) or [":memory:"])[0]
    fm = FileManager(BackendRegistry(sqlite=SQLiteBackend(database)))
    assert "sqlite" in BackendRegistry().get_available_backends()  # the class registered itself

    frames = [np.full((4, 4), t, dtype=np.uint16) for t in range(3)]
    fm.save_batch(frames, [f"A01/t{t}.npy" for t in range(3)], backend="sqlite")
    fm.save(np.eye(3), "A01/reference.npy", backend="sqlite")

    print(fm.list_files("A01", backend="sqlite", pattern="t*"))
    assert np.array_equal(fm.load("A01/t2.npy", backend="sqlite"), frames[2])
    assert fm.is_dir("A01", backend="sqlite") and fm.exists("A01/t0.npy", backend="sqlite")

    try:
        fm.delete("A01/t0.npy", backend="sqlite")
    except StorageError as exc:  # supports_directories is False
        print(f"refused as expected: {exc}")
    try:
        fm.load("A01/missing.npy", backend="sqlite")
    except FileNotFoundError as exc:  # PathNotFoundError is also a FileNotFoundError
        print(f"missing as expected: {exc}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
