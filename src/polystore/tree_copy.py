"""Resumable copy of a file, folder or zarr store between disk and zarr: ``FileManager.copy_tree``.

The engine behind ``polystore cp``. A folder of TIFF/.npy files becomes one
zarr store (each file an OME-Zarr image at the same relative path, without
its extension) and a store becomes a folder of files again. Rules:

* **never a half-written target**: a new destination is built in a hidden
  sibling (``.NAME.cp-partial[.zarr]``) and renamed to DST only when every item
  is done; each item is itself written atomically (temp + rename);
* **resumable**: every finished item is appended to a journal
  (``DST/.polystore-cp.jsonl``: source stamp and a BLAKE2 digest of the
  pixels). Running the same copy again skips an item when the journal
  says it is done for an unchanged source *and* the target's pixels still
  hash to the recorded digest; everything else is (re)written. An
  interrupted run leaves its partial copy, which the next run continues.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from polystore._listing import COPY_JOURNAL_NAME
from polystore.copy_journal import Journal, digest
from polystore.exceptions import StorageError
from polystore.hcs_names import PlateLayout, plate_layout
from polystore.path_kinds import ARRAY_EXTENSIONS, guess_backend, is_url, is_zarr_dir

if TYPE_CHECKING:
    from polystore.filemanager import FileManager

__all__ = ["plate_items", "copy_tree", "digest", "ome_axes", "JOURNAL_NAME", "CopyResult", "CopyOptionError", "Journal"]


class CopyOptionError(StorageError, ValueError):
    """Two options of a copy that do not go together; ``option`` names the one to change."""

    def __init__(self, message: str, option: str) -> None:
        super().__init__(message)
        self.option = option


#: Journal of finished items, at the root of the destination (hidden from listings).
JOURNAL_NAME = COPY_JOURNAL_NAME
_PARTIAL = ".cp-partial"
_OME_DEFAULT = {2: "yx", 3: "zyx", 4: "czyx", 5: "tczyx"}


@dataclass
class Item:
    """One thing to copy."""

    source: str  # path for the source backend
    rel: str  # source path relative to SRC (journal key for the source)
    target: str  # destination path relative to the destination root ("" for a single item)
    stamp: list[int] | None  # [size, mtime_ns] of a local source file; None: compare digests
    #: an HCS field: the files of its planes (``(t, c, z)`` order) stacked into one image
    planes: list[str] | None = None
    #: save keywords of the item (an HCS field's axes and channel names)
    extra: dict[str, Any] | None = None
    #: an HCS field's shape along its axes before y and x
    lead_shape: tuple[int, ...] | None = None


@dataclass
class CopyResult:
    """What a copy did."""

    copied: int
    skipped: int
    destination: str


def _valid_ome(axes: str, ndim: int) -> bool:
    if len(axes) != ndim or not 2 <= ndim <= 5 or len(set(axes)) != ndim:
        return False
    if any(a not in "tczyx" for a in axes):
        return False
    order = ["tczyx".index(a) for a in axes]
    return order == sorted(order) and axes.endswith("yx")


def ome_axes(ndim: int, hint: str | None) -> str | None:
    """OME-Zarr axes for an ``ndim`` array whose file said ``hint`` (e.g. TIFF "ZYX").

    A hint that is valid OME order is used; a hint with unknown letters ("Q")
    or none falls back to yx / zyx / czyx / tczyx by dimension count; a known
    but non-OME order (ImageJ "TZCYX", RGB "YXS") gives None: a plain array.
    """
    if hint:
        h = hint.lower()
        if _valid_ome(h, ndim):
            return h
        if "q" not in h:
            return None
    return _OME_DEFAULT.get(ndim)


def _tiff_axes(axes: str | None) -> str | None:
    """``axes`` in upper case if ImageJ can take them without reordering, else None."""
    if not axes:
        return None
    upper = axes.upper()
    if any(a not in "TZCYXS" for a in upper):
        return None
    order = ["TZCYXS".index(a) for a in upper]
    return upper if order == sorted(order) and len(set(upper)) == len(upper) else None


def _strip_ext(rel: str) -> str:
    root, ext = os.path.splitext(rel)
    return root if ext.lower() in ARRAY_EXTENSIONS else rel


def _stamp(path: str) -> list[int]:
    st = os.stat(path)
    return [st.st_size, st.st_mtime_ns]


def _disk_sources(root: str, exclude: str | None = None) -> Iterator[tuple[str, str]]:
    """(path, relative path) of the array files under a folder.

    Hidden entries, zarr stores and the folder ``exclude`` (a destination
    inside the source) are skipped.
    """
    skip = os.path.abspath(exclude) if exclude else None
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(
            d for d in dirs if not d.startswith(".") and not d.lower().endswith(".zarr")
            and not is_zarr_dir(os.path.join(folder, d)) and os.path.abspath(os.path.join(folder, d)) != skip
        )
        for name in sorted(files):
            if name.startswith(".") or os.path.splitext(name)[1].lower() not in ARRAY_EXTENSIONS:
                continue
            path = os.path.join(folder, name)
            yield path, os.path.relpath(path, root).replace(os.sep, "/")


def _items(
    fm: Any, src: str, src_backend: str, to: str, fmt: str | None, dst: str | None = None
) -> tuple[list[Item], bool]:
    """The items to copy and whether SRC is a single file/array."""
    if not fm.exists(src, src_backend):
        raise StorageError(f"{src_backend}: no such file, folder or store: {src!r}")
    single = fm.is_file(src, src_backend)
    if src_backend == "disk":
        if single:
            pairs = [(src, os.path.basename(src))]
        else:
            pairs = list(_disk_sources(src, dst))
    else:
        if single:
            pairs = [(src, src.rstrip("/").rsplit("/", 1)[-1])]
        else:
            base = src.rstrip("/")
            pairs = [
                (p, p[len(base) + 1 :] if p.startswith(base + "/") else os.path.relpath(p, base).replace(os.sep, "/"))
                for p in fm.list_files(base, "zarr", recursive=True)
            ]
    items = []
    for path, rel in pairs:
        if to == "zarr":
            target = _strip_ext(rel)
        else:
            ext = f".{fmt}" if fmt else (os.path.splitext(rel)[1].lower() if src_backend == "disk" else ".tif")
            target = _strip_ext(rel) + ext
        stamp = _stamp(path) if src_backend == "disk" else None
        items.append(Item(path, rel, target, stamp))
    return items, single


def plate_items(src: str, layout: PlateLayout) -> list[Item]:
    """One item per field of the HCS export ``layout`` found in the folder ``src`` (see :mod:`polystore.hcs_names`)."""
    items = []
    for key, planes in sorted(layout.fields.items()):
        files = [os.path.join(src, planes[i]) for i in sorted(planes)]
        stamp = [n for path in files for n in _stamp(path)]
        extra = {"axes": layout.axes, "channel_names": layout.channel_names}
        lead = tuple(n for a, n in zip("tcz", layout.index_shape) if a in layout.axes)
        items.append(Item(files[0], f"{planes[min(planes)]} (+{len(files) - 1} planes)", layout.target(key), stamp,
                          files, extra, lead))
    return items


def _stack_planes(fm: Any, item: Item) -> Any:
    """An HCS field: its plane files read one by one into one image of ``item.lead_shape`` + (y, x)."""
    import numpy as np

    assert item.planes is not None and item.lead_shape is not None
    out = None
    for n, path in enumerate(item.planes):
        plane = _load_array(fm, path, "disk")
        if out is None:
            out = np.empty((len(item.planes), *plane.shape), plane.dtype)
        if plane.shape != out.shape[1:] or plane.dtype != out.dtype or plane.ndim != 2:
            raise StorageError(
                f"HCS export: {path!r} is {plane.dtype} {plane.shape}, but a plane of this field is 2-D "
                f"{out.dtype} {out.shape[1:]} (from {item.planes[0]!r}); nothing of {item.target!r} was written"
            )
        out[n] = plane
    assert out is not None
    return out.reshape(item.lead_shape + out.shape[1:])


def _save_kwargs(
    fm: Any, item: Item, data: Any, src_backend: str, to: str, axes: str | None, compressor: str | None,
    src_info: dict[str, Any] | None,
) -> dict[str, Any]:
    try:
        metadata = fm.load_metadata(item.source, src_backend)
    except Exception:  # noqa: BLE001 - metadata is a courtesy; the pixels are what is copied
        metadata = None
    kwargs: dict[str, Any] = {}
    hint = (src_info or {}).get("axes") or (metadata or {}).get("axes")
    if to == "zarr":
        chosen = axes or ome_axes(data.ndim, hint)
        if chosen:
            kwargs["axes"] = chosen
        if compressor:
            kwargs["compressor"] = compressor
        if metadata:
            kwargs["metadata"] = metadata
        return kwargs
    chosen_axes = axes or hint
    if item.target.lower().endswith((".tif", ".tiff")):
        tiff = _tiff_axes(chosen_axes)
        meta = dict(metadata or {})
        if tiff and data.dtype.byteorder != ">":
            kwargs["axes"] = tiff
        elif chosen_axes and len(chosen_axes) == data.ndim:
            meta["axes"] = chosen_axes.upper()
        if meta:
            kwargs["metadata"] = meta
    elif metadata:
        kwargs["metadata"] = metadata
    return kwargs


def _zarr_info(fm: Any, path: str) -> dict[str, Any]:
    info: dict[str, Any] = fm.get_backend("zarr").info(path)
    return info


def _target_digest(fm: Any, target: str, backend: str) -> str | None:
    try:
        if not fm.is_file(target, backend):
            return None
        return digest(fm.load(target, backend))
    except Exception:  # noqa: BLE001 - unreadable target: rewrite it
        return None


def _cleanup_leftovers(fm: Any, root: str, to: str) -> None:
    """Remove temp files/folders of writers killed mid-save under ``root``."""
    if to == "zarr":
        fm.get_backend("zarr").cleanup(root)
        return
    fm.get_backend("disk").cleanup(root)


def _load_array(fm: Any, path: str, backend: str) -> Any:
    import numpy as np

    data = fm.load(path, backend)
    arr = np.asarray(data)
    if arr.dtype.byteorder == ">":
        arr = arr.astype(arr.dtype.newbyteorder("="))
    return arr


def _load_item(fm: Any, item: Item, backend: str) -> Any:
    return _stack_planes(fm, item) if item.planes else _load_array(fm, item.source, backend)


def copy_tree(
    fm: FileManager,
    src: str,
    dst: str,
    to: str | None = None,
    fmt: str | None = None,
    compressor: str | None = None,
    axes: str | None = None,
    progress: bool | None = None,
    plate: bool | None = None,
    client: Any = None,
) -> CopyResult:
    """Copy ``src`` (file, folder, store, array) to ``dst`` through ``fm``; return the counts.

    Called as ``FileManager().copy_tree(src, dst, ...)`` and by ``polystore cp``.
    A folder of ImageXpress or Opera/Operetta files copied to zarr becomes
    one HCS plate (:mod:`polystore.hcs_names`) unless ``plate=False``;
    ``plate=True`` refuses any other folder. With ``client`` (a
    ``distributed.Client``) each item is one task on the cluster's workers
    (:mod:`polystore.cluster_copy`); the journal and the final rename stay here.
    Raises :class:`CopyOptionError` for options that do not go together,
    :class:`StorageError` for bad input and for a failed item (naming the
    partial copy that the next call continues), and lets KeyboardInterrupt
    through with a note naming that partial copy.
    """
    from tqdm import tqdm

    if is_url(src) or is_url(dst):
        raise StorageError("cp copies between local paths (use the zarr backend's storage_options for URLs)")
    src = src.rstrip("/") or "/"
    dst = dst.rstrip("/") or "/"
    src_backend = guess_backend(src)
    to = to or ("zarr" if dst.lower().endswith(".zarr") else "disk")
    if fmt and to == "zarr":
        raise CopyOptionError("--format applies to --to disk only", "format")
    if compressor and to != "zarr":
        raise CopyOptionError("--compressor applies to --to zarr only", "compressor")
    if os.path.abspath(src) == os.path.abspath(dst):
        raise StorageError("source and destination are the same")
    items, single = _items(fm, src, src_backend, to, fmt, dst)
    if not items:
        raise StorageError(f"nothing to copy in {src!r} (looked for {', '.join(ARRAY_EXTENSIONS)} files)")
    layout = None
    if plate is not False and to == "zarr" and src_backend == "disk" and not single:
        layout = plate_layout([item.rel for item in items])
        if layout is not None:
            items = plate_items(src, layout)
    if plate and layout is None:
        raise CopyOptionError(
            f"{src!r} is not a folder of ImageXpress or Opera/Operetta files copied to zarr "
            "(the naming patterns are in docs/plates.md)", "plate"
        )

    if single:
        target = dst
        if to == "disk":
            if os.path.isdir(dst):
                target = os.path.join(dst, os.path.basename(items[0].target))
            elif os.path.splitext(dst)[1].lower() not in ARRAY_EXTENSIONS:
                target = dst + os.path.splitext(items[0].target)[1]
        item = items[0]
        data = _load_array(fm, item.source, src_backend)
        src_info = _zarr_info(fm, item.source) if src_backend == "zarr" else None
        if _target_digest(fm, target, to) == digest(data):
            return CopyResult(0, 1, target)
        fm.save(data, target, to, **_save_kwargs(fm, item, data, src_backend, to, axes, compressor, src_info))
        return CopyResult(1, 0, target)

    seen: dict[str, str] = {}
    for item in items:
        if item.target in seen:
            raise StorageError(
                f"{seen[item.target]!r} and {item.rel!r} would both be written to {item.target!r}"
            )
        seen[item.target] = item.rel
    if os.path.exists(dst) and not os.path.isdir(dst):
        raise StorageError(f"destination {dst!r} is a file; a folder or store is needed for {src!r}")
    final = Path(dst)
    partial = final.parent / f".{final.name}{_PARTIAL}{'.zarr' if to == 'zarr' else ''}"
    root = final if final.exists() else partial
    if to == "zarr":
        fm.ensure_directory(str(root), "zarr")
    else:
        root.mkdir(parents=True, exist_ok=True)
    _cleanup_leftovers(fm, str(root), to)
    if layout is not None:
        name = final.name[:-5] if final.name.lower().endswith(".zarr") else final.name
        zarr_backend: Any = fm.get_backend("zarr")
        zarr_backend.declare_plate(str(root), layout.rows, layout.columns, name=name)
    journal = Journal(root / JOURNAL_NAME)
    journal.keep_only({item.rel for item in items})
    copied = skipped = 0
    try:
        if client is not None:
            from polystore.cluster_copy import copy_on_cluster

            copied, skipped = copy_on_cluster(
                client, items, str(root), journal, (src_backend, to, axes, compressor), progress, final.name
            )
        else:
            bar = tqdm(items, desc=f"cp -> {final.name}", unit="file",
                       disable=None if progress is None else not progress, file=sys.stderr)
            for item in bar:
                got = copy_item(fm, item, str(root), journal.records.get(item.target), src_backend, to, axes,
                                compressor)
                if got is None:
                    skipped += 1
                else:
                    journal.add(got)
                    copied += 1
    except Exception as exc:
        if root != partial:
            raise
        raise StorageError(
            f"{_one_line(exc)} (the finished part is kept in {str(partial)!r}; run the same copy again to resume)"
        ) from exc
    except KeyboardInterrupt as exc:
        if root == partial:
            exc.add_note(f"the finished part is kept in {str(partial)!r}; run the same copy again to resume")
        raise
    finally:
        journal.close()
    if root == partial:
        _cleanup_leftovers(fm, str(root), to)
        if final.exists():
            raise StorageError(f"{dst!r} appeared while copying; the copy is complete in {str(partial)!r}")
        os.rename(partial, final)
    return CopyResult(copied, skipped, str(final))


def copy_item(
    fm: Any, item: Item, root: str, record: dict[str, Any] | None, src_backend: str, to: str,
    axes: str | None, compressor: str | None,
) -> dict[str, Any] | None:
    """Copy one item under ``root`` unless ``record`` (its journal entry) shows it done; its new record or None."""
    target = os.path.join(root, item.target)
    data = None
    if record is not None and record.get("source") == item.rel:
        if item.stamp is None:
            data = _load_item(fm, item, src_backend)
            fresh = record.get("digest") == digest(data)
        else:
            fresh = record.get("stamp") == item.stamp
        if fresh and _target_digest(fm, target, to) == record.get("digest"):
            return None
    if data is None:
        data = _load_item(fm, item, src_backend)
    src_info = _zarr_info(fm, item.source) if src_backend == "zarr" else None
    kwargs = {**_save_kwargs(fm, item, data, src_backend, to, axes, compressor, src_info), **(item.extra or {})}
    fm.save(data, target, to, **kwargs)
    return {"target": item.target, "source": item.rel, "stamp": item.stamp, "digest": digest(data),
            "shape": list(data.shape), "dtype": data.dtype.str}


def _one_line(exc: BaseException) -> str:
    """The first line of ``exc``'s message, with the type for errors that are not polystore's."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    first = lines[0] if lines else ""
    if isinstance(exc, StorageError):
        return first
    return f"{type(exc).__name__}: {first}" if first else type(exc).__name__
