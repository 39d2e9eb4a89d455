"""File formats of the disk backend, chosen by extension (case-insensitive).

The codec of an extension is imported on first use of that extension, the way
fsspec's registry loads a filesystem class: a ``.npy`` save never imports the
TIFF, CSV, ROI or torch codecs (nor what they import). :data:`CODECS` maps
every supported extension to its codec and loads one on lookup; membership
tests (``ext in CODECS``) load nothing.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterator, Mapping
from typing import Any

from polystore.exceptions import UnsupportedFormatError
from polystore.formats._codec import Codec, take_kind
from polystore.formats.file_format import (
    DEFAULT_IMAGE_EXTENSIONS,
    FILE_FORMAT_EXTENSIONS,
    FileFormat,
    get_format_from_extension,
)

__all__ = [
    "Codec",
    "CODECS",
    "KNOWN_CODECS",
    "SUPPORTED_EXTENSIONS",
    "IMAGE_EXTENSIONS",
    "codec_for",
    "check_kind",
    "KIND_EXTENSIONS",
    "FileFormat",
    "FILE_FORMAT_EXTENSIONS",
    "DEFAULT_IMAGE_EXTENSIONS",
    "get_format_from_extension",
]

#: Extension -> ``"module:Class"`` of its codec (``tests/test_formats_lazy.py`` checks
#: this table against each class's own ``extensions`` and ``kinds``).
KNOWN_CODECS: dict[str, str] = {
    ".npy": "polystore.formats.npy:NpyCodec",
    ".npz": "polystore.formats.npz:NpzCodec",
    ".tif": "polystore.formats.tiff:TiffCodec",
    ".tiff": "polystore.formats.tiff:TiffCodec",
    ".pt": "polystore.formats.torch_file:TorchCodec",
    ".pth": "polystore.formats.torch_file:TorchCodec",
    ".csv": "polystore.formats.csv_file:CsvCodec",
    ".json": "polystore.formats.json_file:JsonCodec",
    ".txt": "polystore.formats.text:TextCodec",
    ".roi": "polystore.formats.roi_file:RoiCodec",
    ".roi.zip": "polystore.formats.roi_file:RoiZipCodec",
    ".geojson": "polystore.formats.geojson_file:GeoJsonCodec",
}

#: Annotation kind -> the extensions that hold it (``{"labels": [".tif", ".tiff"], ...}``).
KIND_EXTENSIONS: dict[str, list[str]] = {
    "labels": [".tif", ".tiff"],
    "points": [".csv", ".geojson", ".roi", ".roi.zip"],
    "shapes": [".geojson", ".roi", ".roi.zip"],
}

_instances: dict[str, Codec] = {}


def _load(spec: str) -> Codec:
    """The one instance of the codec class ``"module:Class"``, imported now if needed."""
    codec = _instances.get(spec)
    if codec is None:
        module, name = spec.split(":")
        codec = _instances[spec] = getattr(importlib.import_module(module), name)()
    return codec


class _LazyCodecs(Mapping[str, Codec]):
    """Extension -> codec; a codec's module is imported when its extension is first looked up."""

    def __init__(self) -> None:
        self._loaded: dict[str, Codec] = {}

    def __getitem__(self, ext: str) -> Codec:
        codec = self._loaded.get(ext)
        if codec is None:
            codec = self._loaded[ext] = _load(KNOWN_CODECS[ext])
        return codec

    def get(self, ext: str, default: Any = None) -> Any:
        """The codec of ``ext`` (loaded now if needed), or ``default`` for an unknown one."""
        codec = self._loaded.get(ext)
        if codec is not None:
            return codec
        return self[ext] if ext in KNOWN_CODECS else default

    def __contains__(self, ext: object) -> bool:
        return ext in KNOWN_CODECS

    def __iter__(self) -> Iterator[str]:
        return iter(KNOWN_CODECS)

    def __len__(self) -> int:
        return len(KNOWN_CODECS)


#: Every supported extension -> its codec, imported on first lookup.
CODECS: Mapping[str, Codec] = _LazyCodecs()
#: Extensions of more than one dot (``.roi.zip``), found by their last part.
_DOUBLE: dict[str, list[str]] = {}
for _ext in KNOWN_CODECS:
    if _ext.count(".") > 1:
        _DOUBLE.setdefault(_ext[_ext.rfind(".") :], []).append(_ext)

#: Every extension the disk backend reads and writes.
SUPPORTED_EXTENSIONS: tuple[str, ...] = tuple(sorted(KNOWN_CODECS))
#: Extensions ``list_image_files`` looks for by default.
IMAGE_EXTENSIONS: frozenset[str] = frozenset({".tif", ".tiff", ".npy", ".png", ".jpg", ".jpeg"})


def codec_for(path: str) -> Codec:
    """The codec for ``path``'s extension, or :class:`UnsupportedFormatError` naming the supported ones."""
    ext = os.path.splitext(path)[1].lower()
    if ext in _DOUBLE:
        name = path.lower()
        ext = next((double for double in _DOUBLE[ext] if name.endswith(double)), ext)
    codec: Codec | None = CODECS.get(ext)
    if codec is None:
        shown = ext or "(no extension)"
        raise UnsupportedFormatError(
            f"disk: unsupported format {shown} for {path!r}; supported: {', '.join(SUPPORTED_EXTENSIONS)}"
        )
    return codec


def check_kind(codec: Codec, kwargs: dict[str, Any], path: str) -> None:
    """Check a ``kind=`` keyword against ``codec`` (see :func:`polystore.formats._codec.take_kind`)."""
    take_kind(codec, kwargs, path, KIND_EXTENSIONS)
