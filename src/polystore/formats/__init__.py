"""File formats of the disk backend, chosen by extension (case-insensitive)."""

from __future__ import annotations

import os
from typing import Any

from polystore.exceptions import UnsupportedFormatError
from polystore.formats._codec import Codec, take_kind
from polystore.formats.csv_file import CsvCodec
from polystore.formats.file_format import (
    DEFAULT_IMAGE_EXTENSIONS,
    FILE_FORMAT_EXTENSIONS,
    FileFormat,
    get_format_from_extension,
)
from polystore.formats.json_file import JsonCodec
from polystore.formats.npy import NpyCodec
from polystore.formats.geojson_file import GeoJsonCodec
from polystore.formats.npz import NpzCodec
from polystore.formats.roi_file import RoiCodec, RoiZipCodec
from polystore.formats.text import TextCodec
from polystore.formats.tiff import TiffCodec
from polystore.formats.torch_file import TorchCodec

__all__ = [
    "Codec",
    "CODECS",
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

CODECS: dict[str, Codec] = {}
_codec: Codec
for _codec in (NpyCodec(), NpzCodec(), TiffCodec(), TorchCodec(), CsvCodec(), JsonCodec(), TextCodec(),
               RoiCodec(), RoiZipCodec(), GeoJsonCodec()):
    for _ext in _codec.extensions:
        CODECS[_ext] = _codec

#: Annotation kind -> the extensions that hold it (``{"labels": [".tif", ".tiff"], ...}``).
KIND_EXTENSIONS: dict[str, list[str]] = {}
for _ext, _codec in sorted(CODECS.items()):
    for _kind in _codec.kinds:
        KIND_EXTENSIONS.setdefault(_kind, []).append(_ext)
#: Extensions of more than one dot (``.roi.zip``), found by their last part.
_DOUBLE: dict[str, list[str]] = {}
for _ext in CODECS:
    if _ext.count(".") > 1:
        _DOUBLE.setdefault(_ext[_ext.rfind(".") :], []).append(_ext)

#: Every extension the disk backend reads and writes.
SUPPORTED_EXTENSIONS: tuple[str, ...] = tuple(sorted(CODECS))
#: Extensions ``list_image_files`` looks for by default.
IMAGE_EXTENSIONS: frozenset[str] = frozenset({".tif", ".tiff", ".npy", ".png", ".jpg", ".jpeg"})


def codec_for(path: str) -> Codec:
    """The codec for ``path``'s extension, or :class:`UnsupportedFormatError` naming the supported ones."""
    ext = os.path.splitext(path)[1].lower()
    if ext in _DOUBLE:
        name = path.lower()
        ext = next((double for double in _DOUBLE[ext] if name.endswith(double)), ext)
    codec = CODECS.get(ext)
    if codec is None:
        shown = ext or "(no extension)"
        raise UnsupportedFormatError(
            f"disk: unsupported format {shown} for {path!r}; supported: {', '.join(SUPPORTED_EXTENSIONS)}"
        )
    return codec


def check_kind(codec: Codec, kwargs: dict[str, Any], path: str) -> None:
    """Check a ``kind=`` keyword against ``codec`` (see :func:`polystore.formats._codec.take_kind`)."""
    take_kind(codec, kwargs, path, KIND_EXTENSIONS)
