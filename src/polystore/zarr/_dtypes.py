"""dtypes in zarr metadata: which are supported, and their fill values (written and read)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

import numpy as np

from polystore.exceptions import ImageLoadError, UnsupportedFormatError


_FLOAT_WORDS = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def _dtype_from_meta(meta: Mapping[str, Any]) -> np.dtype[Any] | None:
    name = meta.get("data_type")
    if not isinstance(name, str):
        return None
    try:
        return np.dtype(name).newbyteorder("<")
    except TypeError:
        return None


def _check_dtype(dtype: np.dtype[Any], where: str) -> None:
    """Refuse dtypes other tools cannot read back (long double, objects, strings, ...)."""
    too_wide = dtype.kind == "c" and dtype.itemsize > 16 or dtype.kind == "f" and dtype.itemsize > 8
    if dtype.kind not in "biufc" or too_wide or dtype.fields is not None:
        raise UnsupportedFormatError(
            f"zarr backend: cannot store dtype {dtype} at {where!r}; supported dtypes are "
            "bool, signed/unsigned integers, float16/32/64 and complex64/128 "
            "(convert long double with .astype(np.float64))"
        )


def _fill_value(dtype: np.dtype[Any]) -> Any:
    if dtype.kind == "b":
        return False
    if dtype.kind == "c":
        return [0.0, 0.0]
    if dtype.kind == "f":
        return 0.0
    return 0


def _float_fill(value: Any, dtype: np.dtype[Any], where: str) -> float:
    """One float fill value: a number, "NaN"/"Infinity"/"-Infinity" or hex bytes "0x..."."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str) and value in _FLOAT_WORDS:
        return _FLOAT_WORDS[value]
    if isinstance(value, str) and value.startswith("0x") and len(value) == 2 + 2 * dtype.itemsize:
        try:
            raw = bytes.fromhex(value[2:])
        except ValueError:
            pass
        else:  # the IEEE 754 bits, big-endian (zarr v3 spec)
            return float(np.frombuffer(raw, dtype=dtype.newbyteorder(">"))[0])
    raise ImageLoadError(f"zarr: invalid metadata at {where!r}: fill_value {value!r:.60} is not a {dtype}")


def _parse_fill(value: Any, dtype: np.dtype[Any], zarr_format: int, where: str) -> np.ndarray:
    """The fill value as a 0-d array of ``dtype``, parsed as the zarr specs write it.

    Missing chunks read as this value. ``null`` (allowed by v2) means zero.
    """
    bad = ImageLoadError(f"zarr: invalid metadata at {where!r}: fill_value {value!r:.60} is not a {dtype}")
    if value is None:
        return np.zeros((), dtype)
    if dtype.kind == "b":
        if isinstance(value, bool) or value in (0, 1):
            return np.array(bool(value), dtype)
        raise bad
    if dtype.kind in "iu":
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        info = np.iinfo(dtype)
        if isinstance(value, int) and not isinstance(value, bool) and info.min <= value <= info.max:
            return np.array(value, dtype)
        raise bad
    if dtype.kind == "f":
        return np.array(_float_fill(value, dtype, where), dtype)
    part = np.dtype(f"f{dtype.itemsize // 2}")
    if isinstance(value, list) and len(value) == 2:
        re_, im = (_float_fill(v, part, where) for v in value)
        return np.array(complex(re_, im), dtype)
    if isinstance(value, (int, float)) and not isinstance(value, bool) or value in _FLOAT_WORDS:
        return np.array(_float_fill(value, part, where), dtype)
    raise bad
