"""The journal of a resumable copy (``polystore cp``) and the pixel digest it records."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import IO, Any

from polystore.atomic import atomic_write

__all__ = ["Journal", "digest"]


def digest(array: Any) -> str:
    """BLAKE2b digest of an array's dtype, shape and pixels (hex)."""
    import numpy as np

    a = np.ascontiguousarray(array)
    h = hashlib.blake2b(digest_size=16)
    h.update(f"{a.dtype.str}|{a.shape}|".encode())
    h.update(a.reshape(-1).view(np.uint8).data)
    return h.hexdigest()



class Journal:
    """Append-only record of finished items (JSON lines; a torn last line is ignored)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.records: dict[str, dict[str, Any]] = {}
        if path.is_file():
            for line in path.read_text(errors="replace").splitlines():
                try:
                    record = json.loads(line)
                except ValueError:
                    continue
                if isinstance(record, dict) and "target" in record:
                    self.records[str(record["target"])] = record
        self._handle: IO[str] | None = None

    def keep_only(self, sources: set[str]) -> int:
        """Drop the records whose source is not in ``sources`` (deleted since); return how many.

        The journal file is rewritten atomically without them.
        """
        stale = [t for t, r in self.records.items() if r.get("source") not in sources]
        if not stale:
            return 0
        for target in stale:
            del self.records[target]
        self.close()
        with atomic_write(self.path, lock=False) as handle:
            handle.writelines(json.dumps(r) + "\n" for r in self.records.values())
        return len(stale)

    def add(self, record: dict[str, Any]) -> None:
        """Record a finished item (flushed to the OS at once)."""
        if self._handle is None:
            self._handle = open(self.path, "a", encoding="utf-8")
        self._handle.write(json.dumps(record) + "\n")
        self._handle.flush()
        self.records[str(record["target"])] = record

    def close(self) -> None:
        """Close the journal file."""
        if self._handle is not None:
            self._handle.close()
            self._handle = None
