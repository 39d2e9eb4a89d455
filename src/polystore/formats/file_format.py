"""The format names of the existing polystore package: ``FileFormat`` and its extensions."""

from __future__ import annotations

import enum

__all__ = ["FileFormat", "FILE_FORMAT_EXTENSIONS", "DEFAULT_IMAGE_EXTENSIONS", "get_format_from_extension"]


class FileFormat(enum.Enum):
    """Kinds of files, each with its extensions (``FileFormat.TIFF.extensions``)."""

    NUMPY = "numpy"
    TORCH = "torch"
    JAX = "jax"
    CUPY = "cupy"
    TENSORFLOW = "tensorflow"
    ZARR = "zarr"
    TIFF = "tiff"
    CSV = "csv"
    JSON = "json"
    TEXT = "text"
    ROI = "roi"

    @property
    def extensions(self) -> list[str]:
        """The extensions of this format, with their dot (``[".tif", ".tiff"]``)."""
        return list(FILE_FORMAT_EXTENSIONS.get(self, ()))


#: Extensions of each format. The disk backend reads and writes those listed in
#: ``polystore.formats.SUPPORTED_EXTENSIONS``; the others (``.jax``, ``.cupy``,
#: ``.tf``, ``.roi.zip``) are names only unless registered (see ``FileFormatRegistry``).
FILE_FORMAT_EXTENSIONS: dict[FileFormat, tuple[str, ...]] = {
    FileFormat.NUMPY: (".npy", ".npz"),
    FileFormat.TORCH: (".pt", ".pth"),
    FileFormat.JAX: (".jax",),
    FileFormat.CUPY: (".cupy",),
    FileFormat.TENSORFLOW: (".tf",),
    FileFormat.ZARR: (".zarr",),
    FileFormat.TIFF: (".tif", ".tiff"),
    FileFormat.CSV: (".csv",),
    FileFormat.JSON: (".json",),
    FileFormat.TEXT: (".txt",),
    FileFormat.ROI: (".roi.zip",),
}

#: The image extensions the existing package's ``list_image_files`` used by default.
DEFAULT_IMAGE_EXTENSIONS: frozenset[str] = frozenset({".tif", ".tiff", ".png", ".jpg", ".jpeg"})


def get_format_from_extension(ext: str) -> FileFormat:
    """The :class:`FileFormat` of ``ext`` (``"tif"`` or ``".TIF"``); ``ValueError`` if unknown."""
    key = (ext if ext.startswith(".") else "." + ext).lower()
    for fmt, extensions in FILE_FORMAT_EXTENSIONS.items():
        if key in extensions:
            return fmt
    raise ValueError(f"unknown file extension {key!r}; known: {sorted(e for x in FILE_FORMAT_EXTENSIONS.values() for e in x)}")
