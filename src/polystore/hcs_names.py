"""File names of HCS exports (ImageXpress, Opera/Operetta) -> one plate of fields: what ``polystore cp`` reads.

A folder whose image files are **all** named by one of these patterns (case
ignored; ``.tif`` or ``.tiff``) is a plate export; ``polystore cp`` then
writes it as one OME-NGFF HCS plate (``docs/plates.md``):

- **ImageXpress** (MetaXpress): ``<plate>_<well>[_s<site>][_w<wavelength>][_thumb][<GUID>].tif``,
  e.g. ``Plate1_B02_s1_w1.tif``; the well is 1-2 row letters and 2 column
  digits; files with ``_thumb`` are thumbnails and skipped; time points and
  z steps are the folders ``TimePoint_<n>`` and ``ZStep_<n>`` on the way to
  the file (anywhere in its relative path).
- **Opera / Operetta** (Harmony): ``r<row>c<col>f<field>p<plane>-ch<channel>sk<time>fk<n>fl<n>.tiff``,
  e.g. ``r02c03f01p01-ch1sk1fk1fl1.tiff``; row 2 is ``B``.

Each well's site (field) becomes ``<ROW>/<col>/<field>`` (``B/2/0`` for
``B02_s1``: columns without leading zeros, fields counted from 0) holding the
planes stacked as ``(t, c, z, y, x)``, with only the axes that have more than
one value across the plate besides ``c`` (``czyx``, ``tcyx``, ``cyx``, ...).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from polystore.exceptions import StorageError

__all__ = ["HcsPlane", "PlateLayout", "parse_hcs_name", "plate_layout"]

_IMAGEXPRESS = re.compile(
    r"^(?P<plate>.*?)_(?P<row>[A-Z]{1,2})(?P<col>\d{2})(?:_s(?P<site>\d+))?(?:_w(?P<channel>\d+))?"
    r"(?P<thumb>_thumb)?(?P<guid>[0-9A-F]{8}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{4}-[0-9A-F]{12})?\.tiff?$",
    re.IGNORECASE,
)
_OPERA = re.compile(
    r"^r(?P<row>\d{2})c(?P<col>\d{2})f(?P<site>\d{2,})p(?P<z>\d{2,})-ch(?P<channel>\d+)sk(?P<t>\d+)fk\d+fl\d+\.tiff?$",
    re.IGNORECASE,
)
_TIMEPOINT = re.compile(r"^TimePoint_(\d+)$", re.IGNORECASE)
_ZSTEP = re.compile(r"^ZStep_(\d+)$", re.IGNORECASE)


@dataclass(frozen=True)
class HcsPlane:
    """One image file of an HCS export: where it sits in the plate (indices as in the name, from 1)."""

    path: str  # relative to the export folder, "/"-separated
    vendor: str  # "imagexpress" | "opera"
    row: str  # row letters, "B"
    column: int
    site: int
    channel: int
    t: int
    z: int
    thumbnail: bool = False


def _row_letters(number: int) -> str:
    """1 -> "A", 26 -> "Z", 27 -> "AA"."""
    letters = ""
    while number > 0:
        number, rest = divmod(number - 1, 26)
        letters = chr(ord("A") + rest) + letters
    return letters


def parse_hcs_name(path: str) -> HcsPlane | None:
    """The plane an ImageXpress or Opera/Operetta file name (with its folders) stands for, or None."""
    parts = path.replace("\\", "/").split("/")
    name = parts[-1]
    got = _OPERA.match(name)
    if got is not None:
        return HcsPlane(
            path, "opera", _row_letters(int(got["row"])), int(got["col"]), int(got["site"]), int(got["channel"]),
            int(got["t"]), int(got["z"]),
        )
    got = _IMAGEXPRESS.match(name)
    if got is None or int(got["col"]) < 1:
        return None
    t = z = 1
    for folder in parts[:-1]:
        if (m := _TIMEPOINT.match(folder)) is not None:
            t = int(m[1])
        elif (m := _ZSTEP.match(folder)) is not None:
            z = int(m[1])
    return HcsPlane(
        path, "imagexpress", got["row"].upper(), int(got["col"]), int(got["site"] or 1), int(got["channel"] or 1),
        t, z, thumbnail=got["thumb"] is not None,
    )


@dataclass
class PlateLayout:
    """A plate export grouped by field: ``fields[(row, col, field)][(t, c, z)]`` is a file's relative path."""

    vendor: str
    axes: str  # of every field image, e.g. "czyx"
    rows: list[str]
    columns: list[str]
    channel_names: list[str]
    index_shape: tuple[int, int, int]  # t, c, z
    fields: dict[tuple[str, str, str], dict[tuple[int, int, int], str]] = field(default_factory=dict)
    thumbnails: int = 0

    def target(self, key: tuple[str, str, str]) -> str:
        """The field's path inside the plate: ``"B/2/0"``."""
        return "/".join(key)


def plate_layout(paths: list[str]) -> PlateLayout | None:
    """The plate that ``paths`` (relative file paths of a folder) make, or None if they are not an export.

    None unless every path is an ImageXpress name (thumbnails aside) or every
    path an Opera/Operetta name. Raises :class:`~polystore.exceptions.StorageError`
    naming the field and the missing planes when a field lacks a plane that
    other fields have (before anything is written), or when two files claim
    the same plane.
    """
    planes = [parse_hcs_name(p) for p in paths]
    if not planes or any(p is None for p in planes):
        return None
    found = [p for p in planes if p is not None]
    vendors = {p.vendor for p in found}
    images = [p for p in found if not p.thumbnail]
    if len(vendors) != 1 or not images:
        return None
    ts = sorted({p.t for p in images})
    cs = sorted({p.channel for p in images})
    zs = sorted({p.z for p in images})
    sites = sorted({p.site for p in images})
    axes = ("t" if len(ts) > 1 else "") + "c" + ("z" if len(zs) > 1 else "") + "yx"
    prefix = "w" if vendors == {"imagexpress"} else "ch"
    layout = PlateLayout(
        vendors.pop(), axes,
        sorted({p.row for p in images}, key=lambda r: (len(r), r)),
        [str(c) for c in sorted({p.column for p in images})],
        [f"{prefix}{c}" for c in cs], (len(ts), len(cs), len(zs)), thumbnails=len(found) - len(images),
    )
    for p in images:
        key = (p.row, str(p.column), str(sites.index(p.site)))
        index = (ts.index(p.t), cs.index(p.channel), zs.index(p.z))
        planes_of = layout.fields.setdefault(key, {})
        if index in planes_of:
            raise StorageError(f"HCS export: {planes_of[index]!r} and {p.path!r} are the same plane of well {key[0]}{key[1]}")
        planes_of[index] = p.path
    expected = len(ts) * len(cs) * len(zs)
    for key, planes_of in sorted(layout.fields.items()):
        if len(planes_of) != expected:
            missing = [
                f"t={ts[i]} {prefix}{cs[j]} z={zs[k]}"
                for i in range(len(ts)) for j in range(len(cs)) for k in range(len(zs)) if (i, j, k) not in planes_of
            ]
            raise StorageError(
                f"HCS export: well {key[0]}{int(key[1]):02d} site {sites[int(key[2])]} lacks {len(missing)} plane(s) "
                f"the other fields have ({', '.join(missing[:5])}{' ...' if len(missing) > 5 else ''}); "
                "nothing was written"
            )
    return layout
