"""``.roi`` / ``.roi.zip``: ImageJ ROIs (points and shapes) through ``roifile``.

A ``.roi`` file holds one ROI (one shape, or points in one plane); a
``.roi.zip`` holds any number, one ``.roi`` entry each, as ImageJ's ROI Manager
saves them, and a zip comment holding polystore's header (kind, axes,
property names: what an empty archive needs to load as it was). What maps to what is in :mod:`polystore.annotations.roi`. Loading
returns :class:`~polystore.annotations.Points` or
:class:`~polystore.annotations.Shapes`; ``kind="points"``/``"shapes"`` picks
one from a file that holds both.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

from polystore.annotations import Points, Shapes, from_rois, to_rois
from polystore.annotations.roi import import_roifile
from polystore.formats._codec import Codec, data_type_error


class RoiCodec(Codec):
    """One ImageJ ROI (``.roi``)."""

    name = "ImageJ ROI"
    extensions = (".roi",)
    kinds = frozenset({"points", "shapes"})
    archive: ClassVar[bool] = False

    def write(self, data: Any, path: str, metadata: dict[str, Any] | None, **kwargs: Any) -> None:
        """Write Points or Shapes (a ``.roi`` file needs them to make exactly one ROI)."""
        if not isinstance(data, (Points, Shapes)):
            raise data_type_error(self, "polystore.annotations Points or Shapes", data)
        import json
        import zipfile

        rois = to_rois(data)
        if not self.archive:
            if len(rois) != 1:
                raise TypeError(f"a .roi file holds one ROI, and this data makes {len(rois)}; save it as .roi.zip")
            rois[0].tofile(path)
            return
        used: set[str] = set()
        with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
            header = {"version": 1, "kind": data.kind, "axes": list(data.axes), "properties": list(data.properties)}
            archive.comment = json.dumps({"polystore": header}).encode()
            for roi in rois:
                entry, n = f"{roi.name}.roi", 1
                while entry in used:
                    n += 1
                    entry = f"{roi.name}-{n}.roi"
                used.add(entry)
                archive.writestr(entry, roi.tobytes())

    def read(self, path: str, **kwargs: Any) -> Any:
        """Return the Points or Shapes in the file (``kind=`` to pick one of a mix)."""
        import json
        import zipfile

        roifile = import_roifile()
        rois = roifile.roiread(path)
        if self.archive and not rois:  # an empty archive: kind, axes and columns from its comment
            with zipfile.ZipFile(path) as archive:
                try:
                    header = json.loads(archive.comment or b"{}").get("polystore", {})
                except ValueError:
                    header = {}
            kind = kwargs.get("kind") or header.get("kind", "shapes")
            axes = header.get("axes") or ["y", "x"]
            columns: dict[str, list[Any]] = {str(n): [] for n in header.get("properties", [])}
            if kind == "points":
                return Points(np.empty((0, len(axes))), properties=columns, axes=axes)
            return Shapes([], properties=columns, axes=axes)
        return from_rois(rois, kind=kwargs.get("kind"))


class RoiZipCodec(RoiCodec):
    """ImageJ ROI Manager archives (``.roi.zip``): one ``.roi`` entry per ROI."""

    name = "ImageJ ROI zip"
    extensions = (".roi.zip",)
    archive = True
