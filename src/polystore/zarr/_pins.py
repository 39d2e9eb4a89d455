"""One version per load: pin what a load reads from, start over when it changed underneath.

Writers never change an array in place on local stores: a save builds the
new array beside the old one and swaps the folders; a replaced batch image
swaps its member folder (``_batch``). So a load that saw the same folders at
the end as at the start read one version. :class:`_Pins` remembers the
folders a load reads from (the node folders are held open, so their inode
cannot be reused meanwhile; member folders by inode and change time) and
:func:`read_stable` repeats the load while a pin moved.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import TypeVar

from polystore.exceptions import ImageLoadError, PathNotFoundError, StorageResolutionError
from polystore.zarr._fs import _FS

T = TypeVar("T")


class _Pins:
    """Identities of the folders (and chunk files) one load reads from (local stores only)."""

    def __init__(self, fs: _FS) -> None:
        self.local = fs.supports_pins
        self._held: list[tuple[str, int | None]] = []
        self._seen: list[tuple[str, tuple[int, int, int] | None]] = []

    def hold(self, path: str) -> None:
        """Pin ``path`` by keeping it open (for the few node folders of a load)."""
        if not self.local:
            return
        try:
            fd: int | None = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
        except OSError:
            fd = None
        self._held.append((path, fd))

    def note(self, path: str) -> None:
        """Pin ``path`` by inode and change time (member folders: any number of them)."""
        if self.local:
            self._seen.append((path, _identity(path)))

    def changed(self) -> bool:
        """True if any pinned path now names something else (or appeared, or vanished)."""
        for path, fd in self._held:
            now = _identity(path)
            if fd is None or now is None:
                if (fd is None) != (now is None):
                    return True
                continue
            st = os.fstat(fd)
            if (st.st_dev, st.st_ino) != now[:2]:
                return True
        return any(_identity(path) != seen for path, seen in self._seen)

    def close(self) -> None:
        for _, fd in self._held:
            if fd is not None:
                os.close(fd)
        self._held.clear()


def _identity(path: str) -> tuple[int, int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_dev, st.st_ino, st.st_ctime_ns)


def read_stable(fs: _FS, retries: int, where: str, read: Callable[[_Pins], T]) -> T:
    """Run ``read`` until it finishes with none of the paths it pinned changed.

    An error raised while something changed underneath (a chunk that
    vanished, metadata that no longer fits) also starts over; an error with
    nothing changed is real and propagates. After ``retries`` attempts that
    all saw a change, :class:`ImageLoadError` says so.
    """
    for attempt in range(retries):
        pins = _Pins(fs)
        try:
            try:
                result = read(pins)
            except (ImageLoadError, PathNotFoundError, StorageResolutionError, IndexError, ValueError):
                if not pins.changed():
                    raise
            else:
                if not pins.changed():
                    return result
        finally:
            pins.close()
        time.sleep(min(0.05, 0.001 * 2**attempt))
    raise ImageLoadError(
        f"zarr: {where} changed while being read, {retries} times in a row (other processes keep "
        "rewriting it); try again, or raise ZarrConfig.read_retries"
    )
