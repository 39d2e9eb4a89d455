"""Changing the tree: delete, copy and move arrays, images, groups and batch members."""

from __future__ import annotations

import os

from polystore.base import PathLike
from polystore.exceptions import DirectoryNotEmptyError, PathExistsError, PathNotFoundError
from polystore.zarr._load import _Loader
from polystore.zarr._nodes import _Loc
from polystore.zarr._save import _Saver


class _TreeEditor(_Saver, _Loader):
    """Delete, copy and move of :class:`~polystore.zarr.backend.ZarrBackend` (a mixin)."""

    def _delete(self, path: PathLike, recursive: bool) -> None:
        """``delete``: a member leaves the batch index; a non-empty group needs ``recursive``."""
        loc = self._locate(path)
        node = self._node(loc)
        fs = loc.fs
        if node is None:
            if fs.isdir(loc.full):
                if fs.listdir(loc.full) and not recursive:
                    raise self._not_empty(loc, f"directory {loc.display!r}")
                fs.rmtree(loc.full)
                return
            raise PathNotFoundError(loc.display, "zarr")
        if node.kind == "member":
            parent_key, _, name = loc.key.rpartition("/")
            ploc = _Loc(fs, loc.store, parent_key, loc.display.rstrip("/").rpartition("/")[0])
            if not self._delete_member(ploc, name):
                raise PathNotFoundError(loc.display, "zarr")
            return
        if node.kind == "group" and not node.is_image and not recursive:
            if any(f or d for _, f, d in self._children(loc, node)):
                raise self._not_empty(loc, self._where(loc))
        fs.rmtree(loc.full)

    def _not_empty(self, loc: _Loc, where: str) -> DirectoryNotEmptyError:
        return DirectoryNotEmptyError(
            f"zarr: {where} is not empty; pass recursive=True (or call delete_all) to delete it",
            loc.display,
            "zarr",
        )

    def _refuse_existing(self, operation: str, dst: _Loc) -> None:
        """Raise :class:`PathExistsError` when anything (node, directory, file) is at ``dst``."""
        if self._node(dst) is not None or dst.fs.isdir(dst.full) or dst.fs.isfile(dst.full):
            raise PathExistsError(
                f"zarr: {operation} destination {self._where(dst)} already exists; delete it first to "
                "replace it (copy and move never overwrite)",
                dst.display,
                "zarr",
            )

    def _copy(self, source: PathLike, destination: PathLike) -> None:
        """``copy``: a tree copy in one store; a member or another store: load and save."""
        src = self._locate(source)
        node = self._node(src)
        if node is None:
            raise PathNotFoundError(src.display, "zarr")
        dst = self._locate(destination)
        self._refuse_existing("copy", dst)
        if node.kind == "member" or src.fs is not dst.fs:
            self._save(self._load(source, {}), destination, {"overwrite": False})
            return
        if dst.key:
            self._ensure_groups(dst.fs, dst.store, dst.key, parents_only=True)
        else:
            dst.fs.makedirs(os.path.dirname(dst.store))
        dst.fs.copytree(src.full, dst.full)

    def _move(self, source: PathLike, destination: PathLike) -> None:
        """``move``: a rename where the store can; otherwise copy, then delete the source."""
        src = self._locate(source)
        node = self._node(src)
        if node is None:
            raise PathNotFoundError(src.display, "zarr")
        dst = self._locate(destination)
        self._refuse_existing("move", dst)
        if node.kind != "member" and src.fs.supports_rename and dst.fs is src.fs:
            if dst.key:
                self._ensure_groups(dst.fs, dst.store, dst.key, parents_only=True)
            else:
                dst.fs.makedirs(os.path.dirname(dst.store))
            dst.fs.rename(src.full, dst.full)
            return
        self._copy(source, destination)
        self._delete(source, recursive=True)
