"""dtypes in zarr metadata: which are supported, and their fill values."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from polystore.exceptions import UnsupportedFormatError


def _dtype_from_meta(meta: Mapping[str, Any]) -> np.dtype[Any] | None:
    name = meta.get("data_type")
    if not isinstance(name, str):
        return None
    try:
        return np.dtype(name).newbyteorder("<")
    except TypeError:
        return None


def _check_dtype(dtype: np.dtype[Any], where: str) -> None:
    if dtype.kind not in "biufc" or dtype.kind == "c" and dtype.itemsize > 16:
        raise UnsupportedFormatError(
            f"zarr backend: cannot store dtype {dtype} at {where!r}; supported dtypes are "
            "bool, signed/unsigned integers, floats and complex numbers"
        )


def _fill_value(dtype: np.dtype[Any]) -> Any:
    if dtype.kind == "b":
        return False
    if dtype.kind == "c":
        return [0.0, 0.0]
    if dtype.kind == "f":
        return 0.0
    return 0
