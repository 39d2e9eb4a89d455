"""HCS plates: OME-NGFF plate and well metadata for images saved at ``<plate>/<row>/<col>/<field>``.

An OME image (``save(..., axes=...)`` or :meth:`declare_image`) saved at a
path whose last three parts are a row, a column and a field joins a plate:

- at the root of a store, when the parts look like one (row letters, column
  digits, field letters or digits: ``plate.zarr/B/3/0``);
- anywhere, under a group made by :meth:`ZarrBackend.declare_plate` (then any
  alphanumeric names: ``screen.zarr/p1/r02/c03/f1``).

After the image is written, under the plate's lock (the same lock file as a
batch, beside the plate group), the well group's ``well.images`` gains the
field and the plate group's ``plate`` gains the row, column, well and
acquisition; rows and columns are kept in natural order and every well's
``rowIndex``/``columnIndex`` is recomputed. Each document is replaced
atomically, so concurrent writers of different wells (or fields) all land.
zarr v3 stores get OME-NGFF 0.5 (under ``ome``), v2 stores 0.4. The layout
is written down in ``docs/plates.md``.
"""

from __future__ import annotations

import contextlib
import re
from contextlib import AbstractContextManager
from collections.abc import Mapping, Sequence
from typing import Any

from polystore.exceptions import ImageSaveError, StorageError
from polystore.zarr._batch import batch_lock
from polystore.zarr._meta import _write_group
from polystore.zarr._model import GroupMeta
from polystore.zarr._nodes import _Loc
from polystore.zarr._locate import _Resolver

_AUTO = re.compile(r"^[A-Za-z]{1,3}/[0-9]{1,3}/[A-Za-z0-9]+$")
_NAME = re.compile(r"^[A-Za-z0-9]+$")


def natural_key(name: str) -> tuple[Any, ...]:
    """Sort key putting ``B`` before ``AA`` and ``2`` before ``10`` (rows, columns, fields)."""
    parts = re.split(r"(\d+)", name)
    return (len(name) if name.isalpha() else 0,) + tuple((0, int(p)) if p.isdigit() else (1, p) for p in parts if p)


def ome_block(attrs: Mapping[str, Any], what: str) -> dict[str, Any] | None:
    """The ``plate`` or ``well`` object of a group's attributes (0.5 under ``ome``, 0.4 at the top)."""
    ome = attrs.get("ome")
    block = ome.get(what) if isinstance(ome, dict) else attrs.get(what)
    return dict(block) if isinstance(block, dict) else None


def plate_summary(attrs: Mapping[str, Any]) -> dict[str, Any] | None:
    """What ``info`` reports about a plate or well group (None for other groups)."""
    plate = ome_block(attrs, "plate")
    if plate is not None:
        return {
            "hcs": "plate",
            "plate_name": plate.get("name"),
            "rows": [r.get("name") for r in plate.get("rows") or [] if isinstance(r, dict)],
            "columns": [c.get("name") for c in plate.get("columns") or [] if isinstance(c, dict)],
            "wells": [w.get("path") for w in plate.get("wells") or [] if isinstance(w, dict)],
            "field_count": plate.get("field_count"),
            "acquisitions": [a.get("id") for a in plate.get("acquisitions") or [] if isinstance(a, dict)],
        }
    well = ome_block(attrs, "well")
    if well is not None:
        images = [i for i in well.get("images") or [] if isinstance(i, dict)]
        return {"hcs": "well", "fields": [i.get("path") for i in images]}
    return None


def _with_block(attrs: Mapping[str, Any], what: str, block: dict[str, Any], zarr_format: int) -> dict[str, Any]:
    out = dict(attrs)
    if zarr_format == 2:
        out[what] = {**block, "version": "0.4"}
    else:  # the block repeats the version: ome-zarr-models warns without it
        ome = dict(out.get("ome") or {})
        ome["version"] = "0.5"
        ome[what] = {**block, "version": "0.5"}
        out["ome"] = ome
    return out


class _PlateWriter(_Resolver):
    """Plate and well metadata of :class:`~polystore.zarr.backend.ZarrBackend` (a mixin)."""

    def _group_attrs(self, loc: _Loc, key: str) -> tuple[GroupMeta | None, str]:
        path = loc.fs.join(loc.store, key) if key else loc.store
        got = self._read_meta(loc.fs, path)
        return (got if isinstance(got, GroupMeta) else None), path

    def _plate_of(self, loc: _Loc) -> tuple[str, str, str, str] | None:
        """``(plate key, row, column, field)`` when an image at ``loc`` is a field of a plate."""
        parts = [p for p in loc.key.split("/") if p]
        if len(parts) < 3:
            return None
        plate_key = "/".join(parts[:-3])
        row, col, field = parts[-3:]
        if plate_key:  # deeper than the store root: only under a declared plate
            got, _ = self._group_attrs(loc, plate_key)
            if got is None or ome_block(got.attributes, "plate") is None:
                return None
        elif not _AUTO.match("/".join(parts)):
            got, _ = self._group_attrs(loc, "")
            if got is None or ome_block(got.attributes, "plate") is None:
                return None
        bad = [p for p in (row, col, field) if not _NAME.match(p)]
        if bad:
            raise ImageSaveError(
                f"zarr: {self._where(loc)} is in a plate, but plate rows, columns and fields must be "
                f"letters and digits only (OME-NGFF); {bad} are not. Nothing was written"
            )
        return plate_key, row, col, field

    def _plate_lock(self, loc: _Loc, found: tuple[str, ...] | None) -> AbstractContextManager[None]:
        """The lock of the plate ``found[0]`` (a key; ``found``: :meth:`_plate_of`), or no lock for None.

        Held while the groups on the way to a field are made: a writer that
        found no well (or plate) group must not write an empty one over the
        metadata another writer has just put there.
        """
        if found is None:
            return contextlib.nullcontext()
        plate_path = loc.fs.join(loc.store, found[0]) if found[0] else loc.store
        return batch_lock(loc.fs, plate_path, self.config.lock_timeout)

    def _register_field(self, loc: _Loc, found: tuple[str, str, str, str] | None, acquisition: Any) -> None:
        """Add the image just written at ``loc`` to its well and plate (``found``: :meth:`_plate_of`)."""
        if found is None:
            return
        plate_key, row, col, field = found
        acq = 0 if acquisition is None else int(acquisition)
        fs = loc.fs
        plate_path = fs.join(loc.store, plate_key) if plate_key else loc.store
        try:
            with batch_lock(fs, plate_path, self.config.lock_timeout):
                fields = self._update_well(loc, f"{plate_key}/{row}/{col}".strip("/"), field, acq)
                self._update_plate(loc, plate_key, row, col, acq, fields)
        except (StorageError, OSError) as exc:
            raise ImageSaveError(
                f"zarr: the image {self._where(loc)} was written, but the plate metadata of "
                f"{fs.url(plate_path)!r} could not be updated: {exc}; save the image again to retry"
            ) from exc

    def _update_well(self, loc: _Loc, well_key: str, field: str, acq: int) -> int:
        """Add ``field`` to the well's images; return how many the well has."""
        got, path = self._group_attrs(loc, well_key)
        if got is None:
            raise ImageSaveError(f"zarr: the well {self._where(loc, well_key)} is not a group")
        well = ome_block(got.attributes, "well") or {}
        images = [dict(i) for i in well.get("images") or [] if isinstance(i, dict) and i.get("path") != field]
        images.append({"path": field, "acquisition": acq})
        images.sort(key=lambda i: natural_key(str(i.get("path"))))
        _write_group(loc.fs, path, _with_block(got.attributes, "well", {"images": images}, got.zarr_format), got.zarr_format)
        return len(images)

    def _update_plate(self, loc: _Loc, plate_key: str, row: str, col: str, acq: int, fields: int) -> None:
        got, path = self._group_attrs(loc, plate_key)
        if got is None:
            raise ImageSaveError(f"zarr: the plate {self._where(loc, plate_key)} is not a group")
        old = ome_block(got.attributes, "plate") or {}
        name = old.get("name") or plate_key.rpartition("/")[2] or loc.store.rstrip("/").rpartition("/")[2]
        block = _plate_block(old, str(name).removesuffix(".zarr"), [row], [col], [f"{row}/{col}"], [acq])
        block["field_count"] = max(int(old.get("field_count") or 0), fields)
        _write_group(loc.fs, path, _with_block(got.attributes, "plate", block, got.zarr_format), got.zarr_format)

    def _declare_plate(
        self,
        loc: _Loc,
        rows: Sequence[str],
        columns: Sequence[str],
        name: str | None,
        acquisitions: Sequence[Mapping[str, Any]] | None,
    ) -> None:
        """Make the existing group at ``loc`` a plate with ``rows`` and ``columns`` (or add them to it)."""
        names = [str(r) for r in rows] + [str(c) for c in columns]
        bad = [n for n in names if not _NAME.match(n)]
        if bad or not rows or not columns:
            raise ValueError(f"declare_plate: rows and columns must be non-empty lists of letters/digits; {bad}")
        acqs = [dict(a) for a in acquisitions] if acquisitions else [{"id": 0}]
        if any(not isinstance(a.get("id"), int) or a["id"] < 0 for a in acqs):
            raise ValueError(f"declare_plate: every acquisition needs an integer id >= 0, got {acqs}")
        fs = loc.fs
        with batch_lock(fs, loc.full, self.config.lock_timeout):
            got, path = self._group_attrs(loc, loc.key)
            if got is None or got.multiscale is not None or got.names is not None:
                raise ImageSaveError(f"zarr: {self._where(loc)} is not a plain group; a plate cannot go there")
            old = ome_block(got.attributes, "plate") or {}
            plate_name = name or old.get("name") or (loc.key or loc.store).rstrip("/").rpartition("/")[2]
            block = _plate_block(old, str(plate_name).removesuffix(".zarr"), rows, columns, [], [])
            known = {a.get("id") for a in block["acquisitions"]}
            block["acquisitions"] += [a for a in acqs if a["id"] not in known]
            _write_group(fs, path, _with_block(got.attributes, "plate", block, got.zarr_format), got.zarr_format)


def _plate_block(
    old: Mapping[str, Any],
    name: str,
    rows: Sequence[str],
    columns: Sequence[str],
    wells: Sequence[str],
    acquisitions: Sequence[int],
) -> dict[str, Any]:
    """``old`` plate metadata with more rows, columns, wells and acquisitions, indices recomputed."""
    row_names = {str(r.get("name")) for r in old.get("rows") or []} | {str(r) for r in rows}
    col_names = {str(c.get("name")) for c in old.get("columns") or []} | {str(c) for c in columns}
    row_list = sorted(row_names, key=natural_key)
    col_list = sorted(col_names, key=natural_key)
    paths = {str(w.get("path")) for w in old.get("wells") or []} | set(wells)
    well_list = []
    for p in sorted(paths, key=lambda p: tuple(natural_key(x) for x in p.split("/"))):
        r, _, c = p.partition("/")
        well_list.append({"path": p, "rowIndex": row_list.index(r), "columnIndex": col_list.index(c)})
    acqs = [dict(a) for a in old.get("acquisitions") or [] if isinstance(a, dict)]
    known = {a.get("id") for a in acqs}
    acqs += [{"id": i} for i in sorted(set(acquisitions)) if i not in known]
    block: dict[str, Any] = {
        "name": name,
        "rows": [{"name": r} for r in row_list],
        "columns": [{"name": c} for c in col_list],
        "wells": well_list,
        "acquisitions": acqs,
    }
    if old.get("field_count"):
        block["field_count"] = int(old["field_count"])
    return block
