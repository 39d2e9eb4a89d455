"""The Fiji dtype policy: which NumPy dtypes ImageJ 1 holds, and how others are converted."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from polystore.exceptions import UnsupportedFormatError

__all__ = ["IMAGEJ_DTYPES", "FijiConversionWarning", "to_imagej_dtype", "as_imagej_array"]

#: ImageJ 1 pixel types: 8-bit, 16-bit unsigned, 32-bit float.
IMAGEJ_DTYPES = (np.dtype(np.uint8), np.dtype(np.uint16), np.dtype(np.float32))


class FijiConversionWarning(UserWarning):
    """An array was converted to a dtype ImageJ can hold before it was sent."""


def to_imagej_dtype(array: np.ndarray[Any, Any]) -> tuple[np.ndarray[Any, Any], str | None]:
    """Return ``array`` in a dtype ImageJ holds, and a note when it had to convert.

    The rule depends on the dtype only (never on the values), so every frame of
    a stream lands in the same hyperstack type:

    ========================================  ===========  ==========================
    sent dtype                                shown as     values
    ========================================  ===========  ==========================
    uint8, uint16, float32 (either byte order)  unchanged    exact
    bool                                      uint8        False -> 0, True -> 1
    int8, int16, float16                      float32      exact
    int32, uint32, int64, uint64              float32      exact up to 2**24, rounded above
    float64                                   float32      rounded to float32
    complex, anything else                    refused      UnsupportedFormatError
    ========================================  ===========  ==========================
    """
    dtype = array.dtype
    if dtype.newbyteorder("=") in IMAGEJ_DTYPES or dtype in IMAGEJ_DTYPES:
        return array, None
    kind, size = dtype.kind, dtype.itemsize
    if kind == "b":
        return array.astype(np.uint8), "bool converted to uint8 (0/1)"
    if (kind == "i" and size <= 2) or (kind == "f" and size == 2):
        return array.astype(np.float32), f"{dtype.name} converted to float32 (exact)"
    if kind in "iu":
        return (
            array.astype(np.float32),
            f"{dtype.name} converted to float32 (exact up to 2**24, rounded above)",
        )
    if kind == "f":
        return array.astype(np.float32), f"{dtype.name} converted to float32 (rounded)"
    raise UnsupportedFormatError(
        f"fiji: cannot show dtype {dtype} in ImageJ (it holds uint8, uint16 and float32); "
        "convert the array first, e.g. np.abs(z).astype(np.float32) for complex data"
    )


def as_imagej_array(data: Any, stacklevel: int = 4) -> np.ndarray[Any, Any]:
    """``data`` (NumPy, torch, JAX, ...) as a NumPy array ImageJ holds; warns when converted."""
    try:
        from polystore.frameworks import to_numpy
    except ImportError:  # pragma: no cover - frameworks lands with the core
        array = np.asarray(data)
    else:
        array = np.asarray(to_numpy(data))
    converted, note = to_imagej_dtype(array)
    if note is not None:
        warnings.warn(
            f"fiji: {note}; ImageJ holds only uint8, uint16 and float32 pixels",
            FijiConversionWarning,
            stacklevel=stacklevel,
        )
    return converted
