"""File formats of the disk backend, chosen by extension (case-insensitive)."""

from __future__ import annotations

import os

from polystore.exceptions import UnsupportedFormatError
from polystore.formats._codec import Codec
from polystore.formats.csv_file import CsvCodec
from polystore.formats.file_format import (
    DEFAULT_IMAGE_EXTENSIONS,
    FILE_FORMAT_EXTENSIONS,
    FileFormat,
    get_format_from_extension,
)
from polystore.formats.json_file import JsonCodec
from polystore.formats.npy import NpyCodec
from polystore.formats.npz import NpzCodec
from polystore.formats.text import TextCodec
from polystore.formats.tiff import TiffCodec
from polystore.formats.torch_file import TorchCodec

__all__ = [
    "Codec",
    "CODECS",
    "SUPPORTED_EXTENSIONS",
    "IMAGE_EXTENSIONS",
    "codec_for",
    "FileFormat",
    "FILE_FORMAT_EXTENSIONS",
    "DEFAULT_IMAGE_EXTENSIONS",
    "get_format_from_extension",
]

CODECS: dict[str, Codec] = {}
for _codec in (NpyCodec(), NpzCodec(), TiffCodec(), TorchCodec(), CsvCodec(), JsonCodec(), TextCodec()):
    for _ext in _codec.extensions:
        CODECS[_ext] = _codec

#: Every extension the disk backend reads and writes.
SUPPORTED_EXTENSIONS: tuple[str, ...] = tuple(sorted(CODECS))
#: Extensions ``list_image_files`` looks for by default.
IMAGE_EXTENSIONS: frozenset[str] = frozenset({".tif", ".tiff", ".npy", ".png", ".jpg", ".jpeg"})


def codec_for(path: str) -> Codec:
    """The codec for ``path``'s extension, or :class:`UnsupportedFormatError` naming the supported ones."""
    ext = os.path.splitext(path)[1].lower()
    codec = CODECS.get(ext)
    if codec is None:
        shown = ext or "(no extension)"
        raise UnsupportedFormatError(
            f"disk: unsupported format {shown} for {path!r}; supported: {', '.join(SUPPORTED_EXTENSIONS)}"
        )
    return codec
