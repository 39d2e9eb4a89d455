"""zarr v2/v3 metadata documents: dtypes, fill values, array and group metadata."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from polystore.zarr._codec import _Codec, _SHUFFLE_IDS
from polystore.zarr._dtypes import _fill_value
from polystore.zarr._fs import _FS


_META = "zarr.json"
_V2_META = (".zarray", ".zgroup")


def _array_metadata(
    shape: tuple[int, ...],
    dtype: np.dtype[Any],
    chunks: tuple[int, ...],
    codec: _Codec,
    attributes: Mapping[str, Any],
    dimension_names: Sequence[str] | None,
) -> dict[str, Any]:
    meta: dict[str, Any] = {
        "zarr_format": 3,
        "node_type": "array",
        "shape": list(shape),
        "data_type": dtype.name if dtype.kind != "b" else "bool",
        "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": list(chunks)}},
        "chunk_key_encoding": {"name": "default", "configuration": {"separator": "/"}},
        "fill_value": _fill_value(dtype),
        "codecs": codec.metadata(dtype.itemsize),
        "attributes": dict(attributes),
    }
    if dimension_names is not None:
        meta["dimension_names"] = list(dimension_names)
    return meta


def _group_metadata(attributes: Mapping[str, Any] | None = None) -> dict[str, Any]:
    return {"zarr_format": 3, "node_type": "group", "attributes": dict(attributes or {})}


def _dumps(meta: Mapping[str, Any]) -> bytes:
    return json.dumps(meta, indent=2).encode()


def _array_metadata_v2(
    shape: tuple[int, ...], dtype: np.dtype[Any], chunks: tuple[int, ...], codec: _Codec
) -> dict[str, Any]:
    """``.zarray`` of a zarr v2 array (chunk keys ``i/j/k``)."""
    compressor = None
    if codec.cname is not None:
        compressor = {
            "id": "blosc",
            "cname": codec.cname,
            "clevel": codec.clevel,
            "shuffle": _SHUFFLE_IDS[codec.shuffle],
            "blocksize": 0,
        }
    fill = _fill_value(dtype)
    return {
        "zarr_format": 2,
        "shape": list(shape),
        "chunks": list(chunks),
        "dtype": dtype.str,
        "compressor": compressor,
        "fill_value": None if isinstance(fill, list) else fill,
        "order": "C",
        "filters": None,
        "dimension_separator": "/",
    }


def _write_group(fs: _FS, path: str, attrs: Mapping[str, Any], zarr_format: int) -> None:
    """Write a group's metadata: v3 ``zarr.json``, or v2 ``.zattrs`` then ``.zgroup`` (last)."""
    if zarr_format == 2:
        if attrs:
            fs.write_atomic(fs.join(path, ".zattrs"), _dumps(attrs))
        fs.write_atomic(fs.join(path, ".zgroup"), _dumps({"zarr_format": 2}))
    else:
        fs.write_atomic(fs.join(path, _META), _dumps(_group_metadata(attrs)))
