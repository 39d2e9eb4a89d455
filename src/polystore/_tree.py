"""Walking a backend's tree: the helpers behind FileManager's tree methods."""

from __future__ import annotations

import posixpath
from collections import deque
from typing import TYPE_CHECKING

from polystore.exceptions import PathExistsError, PathNotFoundError

if TYPE_CHECKING:
    from polystore.base import StorageBackend

__all__ = ["basename", "collect_dirs_and_files", "mirror_pairs", "check_link_targets"]


def basename(path: str) -> str:
    """The last component of a ``/`` or ``\\`` separated path."""
    return posixpath.basename(path.replace("\\", "/").rstrip("/"))


def _join(folder: str, name: str) -> str:
    return name if folder in ("", ".") else folder.rstrip("/") + "/" + name


def collect_dirs_and_files(
    backend: StorageBackend, base_dir: str, recursive: bool
) -> tuple[list[str], list[str]]:
    """Breadth-first ``(dirs, files)`` under ``base_dir``; symlinks are files, never followed."""
    if backend.is_file(base_dir) or backend.is_symlink(base_dir):
        return [], [base_dir]
    if not backend.is_dir(base_dir):
        raise PathNotFoundError(base_dir, backend.backend_name)
    dirs: list[str] = [base_dir]
    files: list[str] = []
    queue = deque([base_dir])
    while queue:
        folder = queue.popleft()
        for name in backend.list_dir(folder):
            path = _join(folder, name)
            if backend.is_symlink(path) or not backend.is_dir(path):
                files.append(path)
                continue
            dirs.append(path)
            if recursive:
                queue.append(path)
    return dirs, files


def mirror_pairs(source_dir: str, target_dir: str, files: list[str]) -> list[tuple[str, str]]:
    """``(source file, link path)`` for each file: the same relative path under ``target_dir``."""
    prefix = source_dir.rstrip("/") + "/"
    pairs = []
    for path in files:
        relative = path[len(prefix):] if path.startswith(prefix) else basename(path)
        pairs.append((path, _join(target_dir, relative)))
    return pairs


def check_link_targets(
    backend: StorageBackend, pairs: list[tuple[str, str]], overwrite_symlinks_only: bool
) -> list[bool]:
    """For each pair, whether its link replaces an existing symlink; raise before any is made.

    Raises :class:`PathExistsError` for the first link path that exists and may
    not be replaced.
    """
    overwrite = []
    for _, link in pairs:
        is_link = backend.is_symlink(link)
        if is_link or backend.exists(link):
            if not (overwrite_symlinks_only and is_link):
                raise PathExistsError(
                    f"{backend.backend_name}: {link!r} already exists; nothing was linked "
                    "(pass overwrite_symlinks_only=True to replace existing symlinks)",
                    link,
                    backend.backend_name,
                )
            overwrite.append(True)
        else:
            overwrite.append(False)
    return overwrite
