"""Where a path is and what lives there: store boundary, root containment, validated node metadata."""

from __future__ import annotations

import os
import posixpath
import threading
from collections.abc import Sequence
from typing import Any

from polystore.base import PathLike
from polystore.config import ZarrConfig
from polystore.exceptions import ImageLoadError, StorageResolutionError
from polystore.zarr._fs import _FS, _FsspecFS, _LocalFS, _contained
from polystore.zarr._meta import _META, _V2_META
from polystore.zarr._model import ArrayMeta, GroupMeta, parse_node
from polystore.zarr._nodes import _Loc, _Node

#: A node's ``zarr.json``, ``.zarray``, ``.zgroup`` and ``.zattrs`` (None: absent or not read).
_Docs = tuple[bytes | None, bytes | None, bytes | None, bytes | None]


def read_node_meta(fs: _FS, path: str) -> ArrayMeta | GroupMeta | None:
    """The validated metadata of the node at ``path`` (None: no zarr node there).

    ``zarr.json`` decides when present (:func:`~polystore.zarr._model.parse_node`),
    so it is fetched alone first; only without one are the v2 documents
    asked for (on object stores each document is a request: a v3 node costs
    one, not three).
    """
    return parse_v3_or_v2(fs, path, fs.read(fs.join(path, _META)))


def parse_v3_or_v2(fs: _FS, path: str, raw3: bytes | None) -> ArrayMeta | GroupMeta | None:
    """The node at ``path`` from its ``zarr.json`` (``raw3``, already read) or else its v2 documents."""
    return parse_node(*node_docs(fs, [path], [raw3])[0], fs.url(path))


def node_docs(fs: _FS, paths: Sequence[str], raw3s: Sequence[bytes | None]) -> list[_Docs]:
    """What :func:`~polystore.zarr._model.parse_node` takes for each of ``paths``, given their
    ``zarr.json`` (``raw3s``): the v2 documents are fetched, in one batch, only where that is absent."""
    v2 = [p for p, raw in zip(paths, raw3s) if raw is None]
    got = fs.read_many([fs.join(p, m) for p in v2 for m in _V2_META])
    docs = {p: (got[2 * i], got[2 * i + 1]) for i, p in enumerate(v2)}
    attrs = [p for p in v2 if docs[p][0] is not None or docs[p][1] is not None]
    zattrs = dict(zip(attrs, fs.read_many([fs.join(p, ".zattrs") for p in attrs])))
    return [(raw3, *docs.get(p, (None, None)), zattrs.get(p)) for p, raw3 in zip(paths, raw3s)]


def _v3_array(fs: _FS, path: str, raw3: bytes | None) -> ArrayMeta | None:
    """The array ``raw3`` (the ``zarr.json`` at ``path``) describes, or None (not valid v3 array metadata)."""
    try:
        got = parse_node(raw3, None, None, None, fs.url(path)) if raw3 is not None else None
    except ImageLoadError:
        return None
    return got if isinstance(got, ArrayMeta) else None


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
                    fs = _FsspecFS(protocol, self.storage_options, self.config.request_batch_bytes,
                                   self.config.use_tensorstore)
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
        if not loc.key:
            got = self._read_meta(loc.fs, loc.full)
            return None if got is None else _Node.of(loc.full, got)
        parent_key, _, name = loc.key.rpartition("/")
        parent_path = loc.fs.join(loc.store, parent_key) if parent_key else loc.store
        # both zarr.json in one batch of requests: a batch member has no metadata of its own
        raw3, praw3 = loc.fs.read_many([loc.fs.join(loc.full, _META), loc.fs.join(parent_path, _META)])
        docs: _Docs
        pdocs: _Docs | None
        parray = _v3_array(loc.fs, parent_path, praw3) if raw3 is None else None
        if raw3 is not None:  # the parent's v2 documents only if this is not a node after all
            docs, pdocs = (raw3, None, None, None), None
        elif parray is not None:  # nothing in a v3 array's folder is a node
            docs, pdocs = (None, None, None, None), None
        else:
            docs, pdocs = node_docs(loc.fs, [loc.full, parent_path], [None, praw3])
        got = parse_node(*docs, loc.fs.url(loc.full))
        if got is not None:
            return _Node.of(loc.full, got)
        pgot = parray if parray is not None else parse_node(
            *(pdocs or node_docs(loc.fs, [parent_path], [praw3])[0]), loc.fs.url(parent_path)
        )
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
