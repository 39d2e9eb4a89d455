"""The disk backend's path operations: path checks, copy, move and symlinks.

:class:`DiskPathOps` is a base of :class:`~polystore.disk.DiskBackend`; none of
these ever overwrites an existing destination (docs/backend-contract.md).
"""

from __future__ import annotations

import contextlib
import os

from polystore.atomic import temp_name_beside
from polystore.base import PathLike
from polystore.exceptions import (
    InvalidPathError,
    PathExistsError,
    PathIsADirectoryError,
    PathNotFoundError,
)

__all__ = ["SIDECAR_SUFFIX", "DiskPathOps", "disk_path"]

#: Metadata of ``image.npy`` lives in ``image.npy.meta.json``.
SIDECAR_SUFFIX = ".meta.json"


def disk_path(path: PathLike) -> str:
    """``path`` as ``str``; :class:`InvalidPathError` for a NUL byte, which no filesystem allows."""
    text = path if isinstance(path, str) else os.fspath(path)
    if "\x00" in text:
        raise InvalidPathError(
            f"disk: path {text!r} contains a NUL byte, which no filesystem allows; remove it from the name"
        )
    return text


class DiskPathOps:
    """copy, move, create_symlink and is_symlink on local files (mixed into DiskBackend)."""

    def copy(self, source: PathLike, destination: PathLike) -> None:
        """Copy a file (atomically, with its sidecar) or a folder tree.

        Never overwrites: an existing ``destination`` raises
        :class:`PathExistsError` (a ``FileExistsError``).
        """
        src, dst = disk_path(source), disk_path(destination)
        if not os.path.exists(src):
            raise PathNotFoundError(src, "disk")
        _refuse_existing(dst)
        if os.path.isdir(src):
            import shutil
            shutil.copytree(src, dst)
            return
        for suffix in ("", SIDECAR_SUFFIX):
            if suffix and not os.path.exists(src + suffix):
                continue
            folder = os.path.dirname(dst)
            if folder:
                os.makedirs(folder, exist_ok=True)
            tmp = temp_name_beside(dst + suffix)
            try:
                import shutil
                shutil.copy2(src + suffix, tmp)
                os.replace(tmp, dst + suffix)
            except BaseException:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
                raise

    def move(self, source: PathLike, destination: PathLike) -> None:
        """Move a file (with its sidecar) or a folder; never onto an existing ``destination``."""
        src, dst = disk_path(source), disk_path(destination)
        if not os.path.lexists(src):
            raise PathNotFoundError(src, "disk")
        _refuse_existing(dst)
        folder = os.path.dirname(dst)
        if folder:
            os.makedirs(folder, exist_ok=True)
        import shutil
        shutil.move(src, dst)
        if os.path.exists(src + SIDECAR_SUFFIX):
            import shutil
            shutil.move(src + SIDECAR_SUFFIX, dst + SIDECAR_SUFFIX)


    # -- symlinks ---------------------------------------------------------
    def create_symlink(self, source: PathLike, link_name: PathLike, overwrite: bool = False) -> None:
        """Make ``link_name`` a symlink to ``source`` (made absolute), creating parent folders.

        An existing ``link_name`` raises :class:`PathExistsError` unless
        ``overwrite=True``, which swaps the new link in atomically (a
        directory is never replaced).
        """
        src = os.path.abspath(disk_path(source))
        link = disk_path(link_name)
        if not os.path.exists(src):
            raise PathNotFoundError(src, "disk")
        if not overwrite:
            _refuse_existing(link)
        folder = os.path.dirname(link)
        if folder:
            os.makedirs(folder, exist_ok=True)
        tmp = temp_name_beside(link)
        os.symlink(src, tmp, target_is_directory=os.path.isdir(src))
        try:
            if os.path.isdir(link) and not os.path.islink(link):
                raise PathIsADirectoryError(
                    f"disk: cannot replace directory {link!r} with a symlink; delete it first",
                    link,
                    "disk",
                )
            os.replace(tmp, link)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    def is_symlink(self, path: PathLike) -> bool:
        """True if ``path`` is a symbolic link (even a broken one)."""
        return os.path.islink(disk_path(path))

    def _link_target(self, path: PathLike) -> str:
        return os.readlink(disk_path(path))


def _refuse_existing(path: str) -> None:
    if os.path.lexists(path):
        raise PathExistsError(
            f"disk: destination {path!r} already exists; delete it first to replace it "
            "(copy, move and create_symlink never overwrite)",
            path,
            "disk",
        )
