"""Hostile, crafted and unusual zarr stores: refused cleanly, contained, read as the spec says."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("zarr")

import zarr  # noqa: E402
from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402

from polystore.cli import main as cli_main  # noqa: E402
from polystore.exceptions import (  # noqa: E402
    ImageLoadError,
    ImageSaveError,
    StorageError,
    StorageResolutionError,
    UnsupportedFormatError,
)
from polystore.zarr import ZarrBackend  # noqa: E402


@pytest.fixture
def backend(tmp_path: Path) -> ZarrBackend:
    return ZarrBackend(root=tmp_path)


def _array_doc(**changes: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "zarr_format": 3,
        "node_type": "array",
        "shape": [4, 6],
        "data_type": "uint16",
        "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": [2, 3]}},
        "chunk_key_encoding": {"name": "default", "configuration": {"separator": "/"}},
        "fill_value": 0,
        "codecs": [{"name": "bytes", "configuration": {"endian": "little"}}],
        "attributes": {},
    }
    doc.update(changes)
    return doc


def _craft(path: Path, doc: dict[str, Any]) -> None:
    path.mkdir(parents=True, exist_ok=True)
    (path / "zarr.json").write_text(json.dumps(doc))


# ----------------------------------------------------------------------------- hostile metadata

HOSTILE = {
    "huge shape": {"shape": [10**12, 10**12], "chunk_grid": {"name": "regular", "configuration": {"chunk_shape": [1, 1]}}},
    "float shape": {"shape": [1e12, 1e12]},
    "zero chunk": {"chunk_grid": {"name": "regular", "configuration": {"chunk_shape": [0, 3]}}},
    "negative chunk": {"chunk_grid": {"name": "regular", "configuration": {"chunk_shape": [-2, 3]}}},
    "negative shape": {"shape": [-4, 6]},
    "shape is a string": {"shape": "4x6"},
    "chunk axes differ": {"chunk_grid": {"name": "regular", "configuration": {"chunk_shape": [2]}}},
    "grid without configuration": {"chunk_grid": {"name": "regular"}},
    "codecs not objects": {"codecs": [1, 2]},
    "codecs not a list": {"codecs": "bytes"},
    "dtype is a number": {"data_type": 7},
    "fill overflow": {"fill_value": 10**30},
    "fill wrong type": {"fill_value": "lots"},
    "attributes not an object": {"attributes": [1, 2]},
    "huge chunk": {"chunk_grid": {"name": "regular", "configuration": {"chunk_shape": [2**40, 3]}}},
    "bad separator": {"chunk_key_encoding": {"name": "default", "configuration": {"separator": "/../../x"}}},
    "unknown key encoding": {"chunk_key_encoding": {"name": "mine"}},
    "node_type": {"node_type": 3},
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_hostile_metadata_is_refused_before_allocating(backend: ZarrBackend, tmp_path: Path, name: str) -> None:
    _craft(tmp_path / "h.zarr", _array_doc(**HOSTILE[name]))
    for call in (
        lambda: backend.load("h.zarr", lazy=True),
        lambda: backend.load("h.zarr"),
        lambda: backend.info("h.zarr"),
    ):
        with pytest.raises(ImageLoadError, match=r"invalid metadata at .*h\.zarr"):
            call()
    assert backend.exists("h.zarr") and backend.list_files(".") == ["./h.zarr"]


def test_hostile_metadata_through_polystore_info(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _craft(tmp_path / "h.zarr", _array_doc(chunk_grid={"name": "regular", "configuration": {"chunk_shape": [0, 3]}}))
    code = cli_main(["info", str(tmp_path / "h.zarr")])
    _, err = capsys.readouterr()
    assert code == 1
    assert "invalid metadata" in err and "chunk_shape" in err and "Traceback" not in err


def test_a_huge_array_is_lazy_without_allocating(backend: ZarrBackend, tmp_path: Path) -> None:
    """Valid but enormous: a lazy view stays small (blocks span several chunks when there are very many)."""
    doc = _array_doc(
        shape=[2**30, 2**30], data_type="uint8",
        chunk_grid={"name": "regular", "configuration": {"chunk_shape": [1, 1]}},
    )
    _craft(tmp_path / "big.zarr", doc)
    lazy = backend.load("big.zarr", lazy=True)
    assert lazy.shape == (2**30, 2**30) and math.prod(lazy.numblocks) <= 2**20
    with pytest.raises(ImageLoadError, match="does not fit in memory.*lazy=True"):
        backend.load("big.zarr")  # NumPy refuses 1 EiB up front; polystore says so clearly
    assert backend.exists("big.zarr") and backend.info("big.zarr")["shape"] == (2**30, 2**30)


_JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
    max_leaves=8,
)
_FIELDS = ["shape", "data_type", "chunk_grid", "chunk_key_encoding", "fill_value", "codecs", "attributes",
           "dimension_names", "node_type"]


@settings(max_examples=120, deadline=None, database=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(field=st.sampled_from(_FIELDS), value=_JSON, chunk=st.lists(st.integers(-3, 2**40), min_size=2, max_size=2))
def test_any_mutated_metadata_loads_or_raises_a_storage_error(
    tmp_path: Path, field: str, value: Any, chunk: list[int]
) -> None:
    """Property: whatever the metadata says, info/lazy load succeed or raise a polystore error."""
    backend = ZarrBackend(root=tmp_path)
    doc = _array_doc(**{field: value})
    doc["chunk_grid"] = doc["chunk_grid"] if field == "chunk_grid" else {
        "name": "regular", "configuration": {"chunk_shape": chunk}}
    _craft(tmp_path / "m.zarr", doc)
    try:
        info = backend.info("m.zarr")
        lazy = backend.load("m.zarr", lazy=True)
    except StorageError:
        return
    if info.get("shape") is not None and math.prod(info["shape"]) <= 10_000:
        try:
            np.asarray(lazy)
        except StorageError:
            pass


# ----------------------------------------------------------------------------- containment


def test_escaping_chunk_key_separator_reads_and_writes_nothing_outside(backend: ZarrBackend, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    doc = _array_doc(
        chunk_key_encoding={"name": "default", "configuration": {"separator": "/../../../outside/"}},
        attributes={"polystore": {"names": ["f0", "f1", "f2", "f3"]}},
        shape=[4, 6, 6], chunk_grid={"name": "regular", "configuration": {"chunk_shape": [1, 6, 6]}},
    )
    _craft(tmp_path / "s.zarr" / "b", doc)
    (tmp_path / "s.zarr" / "zarr.json").write_text(json.dumps({"zarr_format": 3, "node_type": "group"}))
    with pytest.raises(ImageLoadError, match="separator"):
        backend.load("s.zarr/b")
    with pytest.raises(ImageLoadError, match="separator"):
        backend.save(np.ones((6, 6), np.uint16), "s.zarr/b/f0")
    assert list(outside.iterdir()) == []
    assert not list(tmp_path.glob("c*"))


def test_ome_dataset_path_outside_the_image_is_refused(backend: ZarrBackend, tmp_path: Path) -> None:
    secret = np.arange(16, dtype=np.uint8).reshape(4, 4)
    backend.save(secret, "other.zarr/a")
    backend.save(np.zeros((4, 4), np.uint8), "img.zarr", axes="yx")
    meta = json.loads((tmp_path / "img.zarr" / "zarr.json").read_text())
    meta["attributes"]["ome"]["multiscales"][0]["datasets"][0]["path"] = "../other.zarr/a"
    (tmp_path / "img.zarr" / "zarr.json").write_text(json.dumps(meta))
    with pytest.raises(ImageLoadError, match="dataset path '../other.zarr/a'"):
        backend.load("img.zarr")
    with pytest.raises(ImageLoadError, match="dataset path"):
        backend.info("img.zarr")


@pytest.mark.parametrize("path", ["../../x.zarr", "a/../../x.zarr", "../x.zarr/img"])
def test_root_refuses_paths_outside_it(tmp_path: Path, path: str) -> None:
    root = tmp_path / "deep" / "root"
    root.mkdir(parents=True)
    backend = ZarrBackend(root=root)
    with pytest.raises(StorageResolutionError, match="outside the backend root"):
        backend.save(np.ones((3, 3), np.uint8), path)
    with pytest.raises(StorageResolutionError):
        backend.load(path)
    assert sorted(p.name for p in tmp_path.rglob("*")) == ["deep", "root"]
    backend.save(np.ones((3, 3), np.uint8), "a/../inside.zarr")  # stays inside: fine
    assert (root / "inside.zarr" / "zarr.json").is_file()


def test_save_onto_a_plain_file_is_refused(backend: ZarrBackend, tmp_path: Path) -> None:
    (tmp_path / "results.csv").write_text("a,b\n1,2\n")
    with pytest.raises(ImageSaveError, match="is a file"):
        backend.save(np.ones((3, 3), np.uint8), "results.csv")
    assert (tmp_path / "results.csv").read_text() == "a,b\n1,2\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.csv"]


# ----------------------------------------------------------------------------- 0-d arrays


@pytest.mark.parametrize("fmt", [2, 3])
@pytest.mark.parametrize("lazy", [False, True])
def test_zero_d_array_round_trips(backend: ZarrBackend, fmt: int, lazy: bool) -> None:
    backend.save(np.array(42.0), "z.zarr", zarr_format=fmt)
    got = backend.load("z.zarr", lazy=lazy)
    got = np.asarray(got.compute() if lazy else got)
    assert got.shape == () and got.dtype == np.float64 and got == 42.0
    assert zarr.open_array(str(backend.root) + "/z.zarr", mode="r")[()] == 42.0


@pytest.mark.parametrize("fmt", [2, 3])
@pytest.mark.parametrize("compressors", ["default", None])
def test_zero_d_array_written_by_zarr_python(tmp_path: Path, fmt: int, compressors: Any) -> None:
    kwargs: dict[str, Any] = {} if compressors == "default" else {"compressors": None}
    a = zarr.create_array(str(tmp_path / "z.zarr"), shape=(), dtype="int32", zarr_format=fmt, **kwargs)
    a[()] = -7
    backend = ZarrBackend(root=tmp_path)
    for lazy in (False, True):
        got = backend.load("z.zarr", lazy=lazy)
        assert np.asarray(got.compute() if lazy else got) == -7


# ----------------------------------------------------------------------------- dtypes, fill values


def test_long_double_is_refused_at_save(backend: ZarrBackend, tmp_path: Path) -> None:
    if np.dtype(np.longdouble).itemsize <= 8:
        pytest.skip("long double is float64 on this platform")
    with pytest.raises(UnsupportedFormatError, match="longdouble|float128"):
        backend.save(np.ones(3, np.longdouble), "ld.zarr")
    assert not (tmp_path / "ld.zarr").exists()


@pytest.mark.parametrize(
    ("dtype", "fill", "expected"),
    [
        ("float32", "NaN", np.nan),
        ("float64", "-Infinity", -np.inf),
        ("float32", "0x7fc00000", np.nan),
        ("float32", "0x3f800000", 1.0),
        ("float64", "0x4000000000000000", 2.0),
        ("complex64", ["NaN", 0.0], complex(np.nan, 0.0)),
        ("complex128", [1.5, "Infinity"], complex(1.5, np.inf)),
        ("int16", -5, -5),
        ("bool", True, True),
    ],
)
def test_spec_fill_values_fill_missing_chunks(
    backend: ZarrBackend, tmp_path: Path, dtype: str, fill: Any, expected: Any
) -> None:
    codecs = [{"name": "bytes", "configuration": {"endian": "little"}}]
    _craft(tmp_path / "f.zarr", _array_doc(data_type=dtype, fill_value=fill, codecs=codecs))
    want = np.full((4, 6), expected, dtype=dtype)
    for lazy in (False, True):
        got = backend.load("f.zarr", lazy=lazy)
        np.testing.assert_array_equal(np.asarray(got), want)
    np.testing.assert_array_equal(zarr.open_array(str(tmp_path / "f.zarr"), mode="r")[...], want)


@pytest.mark.parametrize("fmt", [2, 3])
def test_fill_values_written_by_zarr_python(tmp_path: Path, fmt: int) -> None:
    for name, dtype, fill in (("nan", "float32", np.nan), ("inf", "float64", -np.inf),
                              ("cplx", "complex128", complex(np.nan, 2.0)), ("i", "uint8", 9)):
        a = zarr.create_array(str(tmp_path / "s.zarr" / name), shape=(5, 4), chunks=(2, 2), dtype=dtype,
                              fill_value=fill, zarr_format=fmt)
        a[0:2, 0:2] = np.ones((2, 2), dtype)
    backend = ZarrBackend(root=tmp_path)
    for name in ("nan", "inf", "cplx", "i"):
        want = zarr.open_array(str(tmp_path / "s.zarr" / name), mode="r")[...]
        np.testing.assert_array_equal(backend.load(f"s.zarr/{name}"), want)


# ----------------------------------------------------------------------------- missing chunks


def test_chunk_deleted_by_zarr_python_reads_as_fill(backend: ZarrBackend, tmp_path: Path) -> None:
    """zarr-python (write_empty_chunks=False) deletes a chunk that becomes all-fill: not damage."""
    data = np.arange(1, 4 * 8 * 8 + 1, dtype=np.uint16).reshape(4, 8, 8)
    backend.save(data, "d.zarr", chunks=(1, 8, 8))
    z = zarr.open_array(str(tmp_path / "d.zarr"), mode="r+")
    z[2] = 0
    assert not (tmp_path / "d.zarr" / "c" / "2").exists() or not any((tmp_path / "d.zarr" / "c" / "2").rglob("*.*"))
    data[2] = 0
    np.testing.assert_array_equal(backend.load("d.zarr"), data)
    np.testing.assert_array_equal(backend.load("d.zarr", lazy=True)[2].compute(), data[2])


# ----------------------------------------------------------------------------- pyramids


@pytest.mark.parametrize("dtype", ["uint32", "int64", "float64", "complex64", "complex128"])
def test_pyramid_levels_are_exact_2x2_means(backend: ZarrBackend, dtype: str) -> None:
    rng = np.random.default_rng(3)
    if np.dtype(dtype).kind in "iu":
        base = min(np.iinfo(dtype).max // 2, 2**40)  # exact in float64, not in float32
        img = (base + rng.integers(0, 1000, (8, 8))).astype(dtype)
    elif np.dtype(dtype).kind == "c":
        img = (rng.random((8, 8)) * 1e6 + 1j * rng.random((8, 8))).astype(dtype)
    else:
        img = (1e9 + rng.random((8, 8))).astype(dtype)
    backend.save(img, "p.zarr", axes="yx", pyramid_levels=2)
    x = img.astype(np.complex128 if img.dtype.kind == "c" else np.float64)
    mean = (x[0::2, 0::2] + x[1::2, 0::2] + x[0::2, 1::2] + x[1::2, 1::2]) * 0.25
    want = (np.rint(mean) if img.dtype.kind in "iu" else mean).astype(dtype)
    np.testing.assert_array_equal(backend.load("p.zarr", level=1), want)


def test_pyramid_deeper_than_the_image_is_refused(backend: ZarrBackend, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="pyramid_levels=4 is deeper"):
        backend.save(np.ones((6, 5), np.uint8), "p.zarr", axes="yx", pyramid_levels=4)
    assert not (tmp_path / "p.zarr").exists()
    backend.save(np.ones((6, 5), np.uint8), "p.zarr", axes="yx", pyramid_levels=2)
    assert backend.info("p.zarr")["levels"] == 3
    assert backend.load("p.zarr", level=2).shape == (1, 1)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(pytest.main([__file__, "-q"]))
