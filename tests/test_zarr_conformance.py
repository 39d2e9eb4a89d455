"""Conformance: what polystore writes, zarr-python and tensorstore read; what zarr-python writes, polystore reads.

The matrix is cut so that the suite stays quick: every dtype meets every
shape (the compressors rotate across them) and every compressor meets every
shape for one dtype; both zarr formats throughout. OME images are checked
with ome-zarr-models.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("zarr")
ts = pytest.importorskip("tensorstore")

import numcodecs  # noqa: E402
import zarr  # noqa: E402
from zarr.codecs import (  # noqa: E402
    BloscCodec,
    BytesCodec,
    Crc32cCodec,
    GzipCodec,
    TransposeCodec,
    ZstdCodec,
)

from polystore.config import ZarrCompressor, ZarrConfig  # noqa: E402
from polystore.zarr import ZarrBackend  # noqa: E402

DTYPES = ["bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
          "float16", "float32", "float64", "complex64", "complex128", ">f4", ">i2"]
#: (shape, explicit chunks or None): 0-d, an empty axis, 1-D, chunks not dividing, 4-D, 5-D.
SHAPES: list[tuple[tuple[int, ...], tuple[int, ...] | None]] = [
    ((), None),
    ((0, 5), None),
    ((7,), (3,)),
    ((5, 7), (2, 3)),
    ((2, 3, 5, 4), (1, 2, 3, 3)),
    ((2, 1, 3, 4, 5), (1, 1, 2, 3, 2)),
]
COMPRESSORS = list(ZarrCompressor)


def _data(shape: tuple[int, ...], dtype: str, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    dt = np.dtype(dtype)
    if dt.kind == "b":
        return rng.integers(0, 2, shape).astype(dt)
    if dt.kind in "iu":
        info = np.iinfo(dt)
        return rng.integers(info.min, info.max, shape, dtype=dt.newbyteorder("=")).astype(dt)
    values = rng.standard_normal(shape) * 100
    if dt.kind == "c":
        values = values + 1j * rng.standard_normal(shape)
    return values.astype(dt)


def _tensorstore(path: Path, fmt: int) -> np.ndarray:
    spec = {"driver": "zarr3" if fmt == 3 else "zarr", "kvstore": {"driver": "file", "path": str(path)}}
    return np.asarray(ts.open(spec, open=True, read=True).result().read().result())


def _check(backend: ZarrBackend, root: Path, name: str, data: np.ndarray, fmt: int, **save: Any) -> None:
    backend.save(data, name, zarr_format=fmt, **save)
    want = data.astype(data.dtype.newbyteorder("="))
    for got in (backend.load(name), backend.load(name, lazy=True).compute()):
        assert got.dtype == want.dtype and got.shape == want.shape, name
        np.testing.assert_array_equal(got, want, err_msg=name)
    by_zarr = zarr.open_array(str(root / name), mode="r")[...]
    np.testing.assert_array_equal(by_zarr, want, err_msg=f"{name} read by zarr-python")
    assert by_zarr.dtype == want.dtype
    np.testing.assert_array_equal(_tensorstore(root / name, fmt), want, err_msg=f"{name} read by tensorstore")


@pytest.mark.parametrize("fmt", [2, 3])
@pytest.mark.parametrize("dtype", DTYPES)
def test_polystore_writes_every_dtype_and_shape(tmp_path: Path, dtype: str, fmt: int) -> None:
    backend = ZarrBackend(root=tmp_path)
    offset = DTYPES.index(dtype)
    for j, (shape, chunks) in enumerate(SHAPES):
        comp = COMPRESSORS[(j + offset) % len(COMPRESSORS)]
        _check(backend, tmp_path, f"a{j}.zarr", _data(shape, dtype, j), fmt, chunks=chunks, compressor=comp)


@pytest.mark.parametrize("fmt", [2, 3])
@pytest.mark.parametrize("compressor", COMPRESSORS)
def test_polystore_writes_every_compressor(tmp_path: Path, compressor: ZarrCompressor, fmt: int) -> None:
    backend = ZarrBackend(root=tmp_path, config=ZarrConfig(compressor=compressor, compression_level=5))
    for j, (shape, chunks) in enumerate(SHAPES):
        _check(backend, tmp_path, f"c{j}.zarr", _data(shape, "uint16", j), fmt, chunks=chunks)


# ----------------------------------------------------------------------------- written by zarr-python

V3_PIPELINES: dict[str, dict[str, Any]] = {
    "blosc": {"compressors": [BloscCodec(cname="zstd", clevel=3, shuffle="bitshuffle")]},
    "zstd": {"compressors": [ZstdCodec(level=3)]},
    "gzip": {"compressors": [GzipCodec(level=5)]},
    "crc32c": {"compressors": [Crc32cCodec()]},
    "transpose": {"filters": [TransposeCodec(order=(1, 0))], "serializer": BytesCodec(endian="big")},
    "sharding": {"shards": (4, 6)},
    "dot keys": {"chunk_key_encoding": {"name": "default", "separator": "."}},
    "v2 keys": {"chunk_key_encoding": {"name": "v2", "separator": "/"}},
    "no compressor": {"compressors": None},
}
V2_PIPELINES: dict[str, dict[str, Any]] = {
    "filters and order F": {"filters": [numcodecs.Delta(dtype="<i4")], "order": "F"},
    "slash keys": {"chunk_key_encoding": {"name": "v2", "separator": "/"}},
    "dot keys": {},
    "zlib": {"compressors": numcodecs.Zlib(level=3)},
    "blosc": {"compressors": numcodecs.Blosc(cname="lz4", clevel=5, shuffle=numcodecs.Blosc.BITSHUFFLE)},
    "no compressor": {"compressors": None},
}


def _zarr_python_writes(path: Path, data: np.ndarray, fmt: int, options: dict[str, Any]) -> None:
    chunks = (2, 3) if data.ndim == 2 else ()
    a = zarr.create_array(str(path), shape=data.shape, dtype=data.dtype, chunks=chunks, zarr_format=fmt,
                          fill_value=0, **options)
    a[...] = data


@pytest.mark.parametrize(("fmt", "pipeline"), [(3, p) for p in V3_PIPELINES] + [(2, p) for p in V2_PIPELINES])
def test_polystore_reads_what_zarr_python_writes(tmp_path: Path, fmt: int, pipeline: str) -> None:
    options = (V3_PIPELINES if fmt == 3 else V2_PIPELINES)[pipeline]
    backend = ZarrBackend(root=tmp_path)
    dtypes = ["int32"] if "filters" in pipeline else ["uint16", "float32", "complex64", "bool"]
    for dtype in dtypes:
        data = _data((8, 12), dtype, 1)
        data[4:6, 6:9] = 0  # an all-fill chunk zarr-python leaves out
        name = f"{dtype}.zarr"
        _zarr_python_writes(tmp_path / name, data, fmt, options)
        for got in (backend.load(name), backend.load(name, lazy=True).compute(), backend.load(name, lazy=True)[3:7, 2:11]):
            want = data if got.shape == data.shape else data[3:7, 2:11]
            np.testing.assert_array_equal(np.asarray(got), want, err_msg=f"{pipeline} {dtype}")
        assert backend.info(name)["shape"] == data.shape
    if pipeline not in ("sharding", "transpose", "filters and order F"):
        scalar = np.array(3.5, np.float32)
        _zarr_python_writes(tmp_path / "scalar.zarr", scalar, fmt, options)
        assert backend.load("scalar.zarr") == 3.5 and backend.load("scalar.zarr", lazy=True).compute() == 3.5


# ----------------------------------------------------------------------------- OME metadata


@pytest.mark.parametrize("fmt", [2, 3])
@pytest.mark.parametrize(("axes", "shape"), [("yx", (16, 12)), ("czyx", (2, 3, 16, 16)), ("tczyx", (2, 2, 2, 8, 8))])
def test_ome_images_validate_with_ome_zarr_models(tmp_path: Path, fmt: int, axes: str, shape: tuple[int, ...]) -> None:
    if fmt == 3:
        from ome_zarr_models.v05.image import Image
    else:
        from ome_zarr_models.v04.image import Image  # type: ignore[assignment]
    backend = ZarrBackend(root=tmp_path)
    data = _data(shape, "uint16")
    backend.save(data, "img.zarr", axes=axes, pyramid_levels=2, zarr_format=fmt, scale=[0.5] * len(axes))
    model = Image.from_zarr(zarr.open_group(str(tmp_path / "img.zarr"), mode="r"))
    multiscale = model.attributes.ome.multiscales[0] if fmt == 3 else model.attributes.multiscales[0]
    assert [a.name for a in multiscale.axes] == list(axes)
    assert [d.path for d in multiscale.datasets] == ["0", "1", "2"]
    np.testing.assert_array_equal(backend.load("img.zarr"), data)
