"""Where a path is and what lives there: store boundary, root containment, validated node metadata."""

from __future__ import annotations

import os
import posixpath
import threading
from typing import Any

from polystore.base import PathLike
from polystore.config import ZarrConfig
from polystore.exceptions import ImageLoadError, StorageResolutionError
from polystore.zarr._fs import _FS, _FsspecFS, _LocalFS, _contained
from polystore.zarr._meta import _META, _V2_META
from polystore.zarr._model import ArrayMeta, GroupMeta, parse_node
from polystore.zarr._nodes import _Loc, _Node


def read_node_meta(fs: _FS, path: str) -> ArrayMeta | GroupMeta | None:
    """The validated metadata of the node at ``path`` (None: no zarr node there)."""
    raw3, rawa, rawg = fs.read_many([fs.join(path, _META), fs.join(path, ".zarray"), fs.join(path, ".zgroup")])
    zattrs = fs.read(fs.join(path, ".zattrs")) if raw3 is None and (rawa or rawg) else None
    return parse_node(raw3, rawa, rawg, zattrs, fs.url(path))


class _Resolver:
    """Path resolution and node lookup of :class:`~polystore.zarr.backend.ZarrBackend` (a mixin)."""

    config: ZarrConfig
    root: str | None
    storage_options: dict[str, Any]
    _local: _FS
    _remote: dict[str, _FsspecFS]
    _lock: threading.Lock

    def _init_stores(self) -> None:
        """The local filesystem now; fsspec filesystems made on first use, one per protocol."""
        self._local = _LocalFS()
        self._remote = {}
        self._lock = threading.Lock()

    def _fs_for(self, url: str) -> tuple[_FS, str]:
        if "://" in url:
            protocol, _, rest = url.partition("://")
            if protocol == "file":
                return self._local, os.path.abspath(rest)
            with self._lock:
                fs = self._remote.get(protocol)
                if fs is None:
                    fs = _FsspecFS(protocol, self.storage_options, self.config.request_batch_bytes)
                    self._remote[protocol] = fs
            rest = posixpath.normpath(rest) if rest else rest
            if rest == ".." or rest.startswith("../"):
                raise StorageResolutionError(f"zarr: {url!r} climbs above its bucket")
            return fs, rest.rstrip("/")
        return self._local, os.path.abspath(url)

    def _absolute(self, path: PathLike) -> str:
        """``path`` under ``root`` (when set); a path resolving outside ``root`` is refused."""
        p = os.fspath(path)
        if self.root is None or "://" in p and not p.startswith(self.root + "/"):
            return p  # no root, or an explicit URL elsewhere
        rel = p[len(self.root) :] if p == self.root or p.startswith(self.root + "/") else p
        got = _contained(self.root, rel.replace("\\", "/").strip("/"))
        if got is None:
            raise StorageResolutionError(
                f"zarr: {p!r} resolves outside the backend root {self.root!r}; refusing to use it"
            )
        return got

    def _locate(self, path: PathLike) -> _Loc:
        display = os.fspath(path)
        fs, full = self._fs_for(self._absolute(display))
        parts = [p for p in full.split("/") if p not in ("", ".")]
        lead = "/" if full.startswith("/") else ""
        # 1. the first component named *.zarr ends the store
        for i, part in enumerate(parts):
            if part.lower().endswith(".zarr"):
                return _Loc(fs, lead + "/".join(parts[: i + 1]), "/".join(parts[i + 1 :]), display)
        # 2. the topmost existing ancestor holding zarr metadata is the store
        for i in range(1, len(parts) + 1):
            candidate = lead + "/".join(parts[:i])
            if self._has_zarr_meta(fs, candidate):
                return _Loc(fs, candidate, "/".join(parts[i:]), display)
        # 3. otherwise the whole path is a (new) store
        return _Loc(fs, lead + "/".join(parts), "", display)

    @staticmethod
    def _has_zarr_meta(fs: _FS, path: str) -> bool:
        return fs.any_file([fs.join(path, m) for m in (_META, *_V2_META)])

    def _where(self, loc: _Loc, key: str | None = None) -> str:
        key = loc.key if key is None else key
        return f"{key or '/'!r} in store {loc.fs.url(loc.store)!r}"

    # ------------------------------------------------------------------ metadata

    def _read_meta(self, fs: _FS, path: str) -> ArrayMeta | GroupMeta | None:
        """The validated metadata of the node at ``path`` (None: no zarr node there)."""
        return read_node_meta(fs, path)

    def _node(self, loc: _Loc) -> _Node | None:
        """What lives at ``loc`` (array, group, or a member of a batch), or None."""
        got = self._read_meta(loc.fs, loc.full)
        if got is not None:
            return _Node.of(loc.full, got)
        if loc.key:
            parent_key, _, name = loc.key.rpartition("/")
            parent_path = loc.fs.join(loc.store, parent_key) if parent_key else loc.store
            pgot = self._read_meta(loc.fs, parent_path)
            if pgot is not None:
                parent = _Node.of(parent_path, pgot)
                names = parent.names
                if names is not None and name in names:
                    return _Node(
                        "member", parent_path, parent.meta, parent.zarr_format, names.index(name), parent,
                        parent.parsed,
                    )
        return None

    def _image_array(self, node: _Node, level: int, loc: _Loc) -> _Node:
        """The array of pyramid ``level`` of an OME image group (always inside its store)."""
        ms = node.multiscale
        assert ms is not None
        if not 0 <= level < len(ms.datasets):
            raise StorageResolutionError(
                f"zarr: image {self._where(loc)} has {len(ms.datasets)} levels; level {level} does not exist"
            )
        rel = ms.datasets[level].path
        apath = loc.fs.inside(node.path, rel)
        got = self._read_meta(loc.fs, apath)
        if not isinstance(got, ArrayMeta):
            raise ImageLoadError(
                f"zarr: image {self._where(loc)} lists level {rel!r} but that array is missing"
            )
        return _Node.of(apath, got)
