"""Listing and describing a store: children of a node, recursive listings, ``info``."""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

from polystore._listing import matches, normalize_extensions
from polystore.base import PathLike
from polystore.exceptions import ImageLoadError, PathNotADirectoryError, PathNotFoundError
from polystore.zarr._fs import _FS
from polystore.zarr._locate import _Resolver
from polystore.zarr._meta import _META, _V2_META
from polystore.zarr._model import ArrayMeta, GroupMeta, parse_node
from polystore.zarr._nodes import _Loc, _Node, _is_hidden
from polystore.zarr._ome import _drop_lead_axis, _ome_display
from polystore.zarr._plate import plate_summary


class _Lister(_Resolver):
    """The listing half of :class:`~polystore.zarr.backend.ZarrBackend` (a mixin)."""

    def _children(self, loc: _Loc, node: _Node | None) -> list[tuple[str, bool, bool]]:
        """(name, is_file, is_dir) of entries directly inside ``loc``."""
        fs = loc.fs
        if node is not None:
            if node.kind == "member":
                return []
            names = node.names
            if names is not None:
                return [(n, True, False) for n in names if n is not None]
            if node.kind == "array" or node.is_image:
                return []
        entries = fs.listdir(loc.full)
        if entries is None:
            return []
        entries = sorted(e for e in entries if not _is_hidden(e) and e not in _V2_META and e != ".zattrs")
        inside_store = node is not None or self._has_zarr_meta(fs, loc.store)
        paths = [fs.join(loc.full, e) for e in entries]
        out: list[tuple[str, bool, bool]] = []
        metas = fs.read_many([fs.join(p, _META) for p in paths])
        for name, p, raw in zip(entries, paths, metas):
            try:
                got = parse_node(raw, None, None, None, fs.url(p)) if raw is not None else self._read_meta(fs, p)
            except ImageLoadError:
                out.append((name, True, False))  # listed; loading it reports what is wrong
                continue
            out.append(self._classify(name, got, fs, p, inside_store))
        return out

    @staticmethod
    def _classify(
        name: str, got: ArrayMeta | GroupMeta | None, fs: _FS, path: str, inside_store: bool
    ) -> tuple[str, bool, bool]:
        if got is None:
            if inside_store:
                return (name, False, False)  # chunk dirs, interrupted writes: not nodes
            # outside stores only folders count (they may hold stores); other files are not zarr
            return (name, False, fs.isdir(path))
        n = _Node.of(path, got)
        if n.names is not None:
            return (name, False, True)
        return (name, n.is_file, not n.is_file)

    def _not_a_group(self, loc: _Loc) -> PathNotADirectoryError:
        return PathNotADirectoryError(
            f"zarr: cannot list {self._where(loc)}: it is an array, not a group", loc.display, "zarr"
        )

    def _list_files(
        self, directory: PathLike, pattern: str | None, extensions: Iterable[str] | None, recursive: bool
    ) -> list[str]:
        """``list_files``: arrays, OME images and batch members under ``directory`` (paths, sorted)."""
        exts = normalize_extensions(extensions)
        base = os.fspath(directory).rstrip("/") or "/"
        loc = self._locate(base)
        node = self._node(loc)
        if node is None and not loc.fs.isdir(loc.full):
            raise PathNotFoundError(base, "zarr")
        if node is not None and node.is_file:
            raise self._not_a_group(loc)
        found: list[str] = []

        def walk(display: str, wloc: _Loc, wnode: _Node | None) -> None:
            for name, is_file, is_dir in self._children(wloc, wnode):
                child_display = display.rstrip("/") + "/" + name
                if is_file:
                    if matches(name, pattern, exts):
                        found.append(child_display)
                elif is_dir and recursive:
                    cloc = self._locate(child_display)
                    walk(child_display, cloc, self._node(cloc))

        walk(base, loc, node)
        return sorted(found)

    def _is_junk(self, loc: _Loc) -> bool:
        """A directory inside a store without metadata (chunk dirs, interrupted writes)."""
        return bool(loc.key) and self._has_zarr_meta(loc.fs, loc.store)

    def _info(self, path: PathLike) -> dict[str, Any]:
        """``info``: what a viewer needs to know about the node at ``path``."""
        loc = self._locate(path)
        node = self._node(loc)
        if node is None:
            raise PathNotFoundError(loc.display, "zarr")
        out: dict[str, Any] = {"kind": "image" if node.is_image else node.kind, "zarr_format": node.zarr_format}
        arr_node = node.member_of if node.kind == "member" and node.member_of else node
        ms = arr_node.multiscale
        if arr_node.kind == "group" and ms is not None:
            out["axes"] = "".join(ms.axes)
            out["levels"] = len(ms.datasets)
            display = _ome_display(ms.ome)
            if node.kind == "member":
                display = _drop_lead_axis(display)
                out["axes"] = "".join(display["axis_names"])
            out.update(display)
            arr_node = self._image_array(arr_node, 0, loc)
        elif node.kind == "group":
            out.update(plate_summary(node.attrs) or {})
        if node.is_image and loc.key:
            parent = loc.key.rpartition("/")[0]
            got = self._read_meta(loc.fs, loc.fs.join(loc.store, parent) if parent else loc.store)
            if isinstance(got, GroupMeta) and (plate_summary(got.attributes) or {}).get("hcs") == "well":
                out["hcs"] = "field"
        meta = arr_node.array
        if meta is not None:
            out["shape"] = meta.shape[1:] if node.kind == "member" else meta.shape
            out["dtype"] = str(meta.dtype) if meta.dtype is not None else str(
                meta.raw.get("data_type", meta.raw.get("dtype"))
            )
            out["chunks"] = meta.chunks
        return out
