"""``.tif``/``.tiff`` through tifffile: 2-D images and N-D stacks.

With ``axes=`` (e.g. ``"tzcyx"``) and a uint8/uint16/float32 array the file is
an ImageJ hyperstack: the data is transposed to ImageJ's TZCYX order and user
metadata goes into the ImageJ ``Info`` property as JSON. Otherwise the file
is a tifffile "shaped" TIFF whose JSON description holds the axes and the
user metadata. Either way :meth:`read_metadata` returns the user metadata.

With ``kind="labels"`` (or a :class:`~polystore.annotations.Labels`) the data
must be an integer label image; it is written with its axes and the metadata
entry ``"kind": "labels"``, and loading with ``kind="labels"`` returns a
``Labels`` with the stored axes (in ImageJ's TZCYX order for a hyperstack).
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from polystore.annotations import Labels, as_annotation
from polystore.formats._codec import Codec, data_type_error

IMAGEJ_AXES = "TZCYXS"
IMAGEJ_DTYPES = (np.dtype(np.uint8), np.dtype(np.uint16), np.dtype(np.float32))
#: dtype kinds a TIFF sample can be: bool, unsigned, signed, float, complex.
TIFF_KINDS = "buifc"
_INFO_KEY = "polystore"
#: tifffile's parser of shaped descriptions, imported on first use (``import polystore`` loads no tifffile).
_parse_shaped: Any = None


def _imagej_order(array: np.ndarray[Any, Any], axes: str) -> tuple[np.ndarray[Any, Any], str]:
    axes = axes.upper()
    if len(axes) != array.ndim or len(set(axes)) != len(axes):
        raise ValueError(f"axes {axes!r} do not match an array of {array.ndim} dimensions")
    unknown = set(axes) - set(IMAGEJ_AXES)
    if unknown:
        raise ValueError(f"axes {axes!r}: ImageJ knows only {IMAGEJ_AXES}, not {''.join(sorted(unknown))}")
    ordered = "".join(a for a in IMAGEJ_AXES if a in axes)
    return np.transpose(array, [axes.index(a) for a in ordered]), ordered


def read_tiff(path: str | os.PathLike[str]) -> Any:
    """What ``tifffile.imread(path)`` returns, without its series detection when it is not needed.

    ``imread`` parses the first page, then works out the file's series
    (50-80 us per file, whatever its size). For the file ``imread`` writes by
    default, and polystore writes for a 2-D image, that is one page whose
    "shaped" description holds the page's own shape: the series is that page,
    so its array is read directly. Every other file (stacks, ImageJ, OME,
    truncated, pyramids) goes through ``TiffFile.asarray`` as in ``imread``,
    on the file already open. The file is opened here (not by tifffile, which
    resolves the path's links first, ~15 us): when the path has links in it,
    a multi-file format would look for its other files beside the resolved
    path, so then ``imread`` itself reads it. Paths ``imread`` would glob
    (``*``, ``?``) go to ``imread`` too.
    """
    import tifffile

    path = os.fspath(path)
    if "*" in path or "?" in path:  # imread reads these as a glob pattern
        return tifffile.imread(path)
    with open(path, "rb") as handle, tifffile.TiffFile(handle) as tif:
        page = _plain_shaped_page(tif)
        if page is not None:
            return page.asarray()
        if os.path.realpath(path) == os.path.abspath(path):  # tifffile would have named the same file
            return tif.asarray()
    return tifffile.imread(path)


def _plain_shaped_page(tif: Any) -> Any:
    """The only page of ``tif`` when it is the whole of the first series ``imread`` returns, else None.

    ``TiffFile.series`` tries the "shaped" kind first: when the first page has
    a shaped description, it alone decides the series. With one page, no
    SubIFDs and a stored shape equal to the page's shape, that series is the
    page, unsqueezed; ``imread`` then reads the page's bytes as
    ``TiffPage.asarray`` does (directly when they are stored in final form,
    else through ``asarray`` itself).
    """
    global _parse_shaped
    pages = tif.pages
    if not pages or tif.is_lsm or tif.is_scanimage or tif.is_ndpi:  # __init__ reorganised these
        return None
    page = pages.first
    description = page.shaped_description
    if description is None or page.subifds is not None or pages.is_multipage:
        return None
    shape = page.shape
    # the description tifffile writes for a plain image, else parsed as TiffFile.series parses it
    if description != f'{{"shape": [{", ".join(map(str, shape))}]}}':
        if _parse_shaped is None:
            from tifffile.tifffile import shaped_description_metadata
            _parse_shaped = shaped_description_metadata
        try:
            if tuple(int(n) for n in _parse_shaped(description)["shape"]) != shape:
                return None
        except Exception:  # imread's series detection decides what a malformed description gives
            return None
    if (page.fillorder != 1 or page.predictor != 1 or page.is_subsampled) and page.is_contiguous:
        return None  # TiffPage.asarray would decode these bytes where the series reads them as stored
    return page


class TiffCodec(Codec):
    """TIFF images and stacks, with ImageJ hyperstack metadata when axes are given."""

    name = "TIFF"
    extensions = (".tif", ".tiff")
    embeds_metadata = True
    kinds = frozenset({"labels"})

    def write(self, data: Any, path: str, metadata: dict[str, Any] | None, **kwargs: Any) -> None:
        """Write; keyword ``axes`` makes a hyperstack, ``compression`` passes to tifffile."""
        import tifffile

        if kwargs.pop("kind", None) == "labels" or isinstance(data, Labels):
            labels = as_annotation(data, "labels", kwargs.get("axes"))
            data, kwargs["axes"] = labels.data, "".join(labels.axes)
            metadata = {**(metadata or {}), "kind": "labels"}

        if not isinstance(data, np.ndarray):
            raise data_type_error(self, "NumPy arrays", data)
        if data.dtype.kind not in TIFF_KINDS:
            raise TypeError(
                f"TIFF holds numbers (bool, int, uint, float, complex), not dtype {data.dtype}; "
                "save it as .npy instead"
            )
        if data.size == 0:
            raise TypeError(f"TIFF cannot hold an empty array (shape {data.shape}); save it as .npy instead")
        axes: str | None = kwargs.pop("axes", None)
        options: dict[str, Any] = {}
        if "compression" in kwargs:
            options["compression"] = kwargs.pop("compression")
        if axes and data.dtype in IMAGEJ_DTYPES:
            data, ordered = _imagej_order(data, axes)
            ij_meta: dict[str, Any] = {"axes": ordered}
            if metadata:
                import json
                ij_meta["Info"] = json.dumps({_INFO_KEY: metadata})
            tifffile.imwrite(path, data, imagej=True, metadata=ij_meta, **options)
            return
        shaped: dict[str, Any] = dict(metadata or {})
        if axes:
            shaped["axes"] = axes.upper()
        bigtiff = data.nbytes > 2**32 - 2**25
        tifffile.imwrite(path, data, metadata=shaped, bigtiff=bigtiff, photometric="minisblack", **options)

    def read(self, path: str, **kwargs: Any) -> Any:
        """Read the whole image or stack (``key=`` selects pages, as in tifffile).

        ``kind="labels"`` returns a :class:`~polystore.annotations.Labels`.
        """
        import tifffile

        kind = kwargs.pop("kind", None)
        image = read_tiff(path) if not kwargs else tifffile.imread(path, **kwargs)
        if getattr(image, "size", 1) == 0:  # tifffile returns an empty array for a broken first IFD
            raise ValueError("no image in the file: it is truncated or not a TIFF")
        if kind == "labels":
            axes = (self.read_metadata(path) or {}).get("axes")
            if isinstance(axes, str) and len(axes) == image.ndim:
                return Labels(image, axes=axes.lower())
            return Labels(image)
        return image

    def read_metadata(self, path: str) -> dict[str, Any] | None:
        """Return the user metadata and, when known, the stored ``axes``."""
        import tifffile

        with tifffile.TiffFile(path) as tif:
            if tif.is_imagej and tif.imagej_metadata is not None:
                ij = tif.imagej_metadata
                result: dict[str, Any] = {}
                info = ij.get("Info")
                if isinstance(info, str):
                    try:
                        import json
                        result.update(json.loads(info).get(_INFO_KEY, {}))
                    except (ValueError, AttributeError):
                        pass
                result["axes"] = tif.series[0].axes
                return result
            shaped = tif.shaped_metadata
            if shaped:
                meta = dict(shaped[0])
                meta.pop("shape", None)
                return meta
        return None
