"""The disk backend's TIFF load returns exactly what ``tifffile.imread(path)`` returns, for every kind of TIFF.

``polystore.formats.tiff.read_tiff`` reads a one-page "shaped" TIFF's page
directly and sends every other file through tifffile's own series detection;
these tests write real files of each kind with tifffile and compare shape,
dtype (byte order included) and values with a plain ``tifffile.imread``.
"""

from __future__ import annotations

import itertools
import os
import struct
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import tifffile
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from polystore import BackendRegistry, FileManager
from polystore.formats.tiff import _plain_shaped_page, read_tiff

SETTINGS = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
_names = itertools.count()

DTYPES = ["uint8", "int8", "uint16", "int16", "uint32", "int32", "float32", "float64", "complex64", "bool", "uint64"]


def _assert_same(path: str) -> None:
    """``read_tiff`` and ``fm.load`` give what ``tifffile.imread`` gives: shape, dtype, byte order, values."""
    expected = tifffile.imread(path)
    for got in (read_tiff(path), FileManager(BackendRegistry()).load(path, backend="disk")):
        assert type(got) is type(expected)
        assert got.shape == expected.shape
        assert got.dtype == expected.dtype and got.dtype.str == expected.dtype.str
        assert got.flags.c_contiguous == expected.flags.c_contiguous
        np.testing.assert_array_equal(got, expected)


def _array(draw: Any, dtype: str, shape: tuple[int, ...]) -> np.ndarray[Any, Any]:
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    if dtype == "bool":
        return rng.integers(0, 2, shape).astype(bool)
    kind = np.dtype(dtype).kind
    if kind in "fc":
        data = rng.standard_normal(shape) * 1000
        if kind == "c":
            data = data + 1j * rng.standard_normal(shape)
        return data.astype(dtype)
    info = np.iinfo(dtype)
    return rng.integers(info.min, info.max, shape, dtype=dtype, endpoint=True)


@st.composite
def tiff_files(draw: Any) -> tuple[str, dict[str, Any], np.ndarray[Any, Any]]:
    """A kind of TIFF a user may load, as (kind, imwrite keywords, data)."""
    kind = draw(st.sampled_from([
        "shaped_2d", "shaped_metadata", "shaped_stack", "shaped_singleton", "generic_2d", "generic_stack",
        "rgb", "rgb_planar", "imagej", "ome", "compressed", "tiled", "big_endian", "bigtiff", "truncated",
        "pyramid", "old_shaped", "predictor_uncompressed", "fillorder", "bad_next_ifd",
    ]))
    side = st.integers(1, 40)
    h, w = draw(side), draw(side)
    dtype = draw(st.sampled_from(DTYPES))
    options: dict[str, Any] = {}
    shape: tuple[int, ...] = (h, w)
    if kind == "shaped_metadata":
        options["metadata"] = {"axes": "YX", "note": draw(st.text(max_size=20)), "pixel": [1.5, 2]}
    elif kind == "shaped_stack":
        shape = (draw(st.integers(2, 5)), h, w)
    elif kind == "shaped_singleton":  # one page, but the stored shape is (1, h, w) or (1, 1, h, w)
        shape = (1,) * draw(st.integers(1, 2)) + (h, w)
    elif kind in ("generic_2d", "generic_stack"):
        options["metadata"] = None
        if kind == "generic_stack":
            shape = (draw(st.integers(2, 4)), h, w)
    elif kind in ("rgb", "rgb_planar"):
        dtype = draw(st.sampled_from(["uint8", "uint16"]))
        shape = (h, w, 3) if kind == "rgb" else (3, h, w)
        options["photometric"] = "rgb"
        options["planarconfig"] = "contig" if kind == "rgb" else "separate"
    elif kind == "imagej":
        dtype = draw(st.sampled_from(["uint8", "uint16", "float32"]))
        axes = draw(st.sampled_from(["YX", "ZYX", "CYX", "TZCYX", "TYX"]))
        shape = tuple(draw(st.integers(1, 3)) for _ in axes[:-2]) + (h, w)
        options.update(imagej=True, metadata={"axes": axes})
    elif kind == "ome":
        axes = draw(st.sampled_from(["YX", "ZYX", "CZYX"]))
        shape = tuple(draw(st.integers(1, 3)) for _ in axes[:-2]) + (h, w)
        options.update(ome=True, metadata={"axes": axes})
        dtype = draw(st.sampled_from([d for d in DTYPES if d != "uint64"]))  # OME-XML has no uint64 type
    elif kind == "compressed":
        options["compression"] = draw(st.sampled_from(["zlib", "lzma"]))
    elif kind == "tiled":
        h, w = draw(st.integers(16, 70)), draw(st.integers(16, 70))
        shape = (h, w)
        options["tile"] = draw(st.sampled_from([(16, 16), (32, 16), (16, 48)]))
    elif kind == "big_endian":
        options["byteorder"] = ">"
    elif kind == "bigtiff":
        options["bigtiff"] = True
    elif kind == "truncated":  # shape says several pages, one is written
        shape = (draw(st.integers(2, 4)), h, w)
        options["truncate"] = True
    elif kind == "pyramid":
        options["subifds"] = 1
    elif kind == "old_shaped":  # the "shape=(...)" description of old tifffile versions
        options.update(metadata=None, description=f"shape=({h}, {w})")
    elif kind == "predictor_uncompressed":  # a Predictor tag on raw bytes: TiffPage.asarray undoes it
        dtype = draw(st.sampled_from(["uint8", "uint16", "int32"]))
        options["patch_tag"] = 317
    elif kind == "fillorder":  # FillOrder 2 (bits stored reversed): TiffPage.asarray undoes it
        dtype = "uint8"
        options["patch_tag"] = 266
    elif kind == "bad_next_ifd":  # the first page's link to a next page points anywhere (a damaged file)
        options["next_ifd"] = draw(st.integers(1, 2**16))
    data = _array(draw, dtype, shape)
    return kind, options, data


def _write_with_tag(path: str, data: np.ndarray[Any, Any], code: int, **options: Any) -> None:
    """A shaped TIFF with tag ``code`` = 2, which tifffile does not write itself (written as a private tag, renumbered)."""
    tifffile.imwrite(path, data, extratags=[(65000, "H", 1, 2, True)], **options)
    raw = bytearray(Path(path).read_bytes())
    order = "<" if raw[:2] == b"II" else ">"
    entry = raw.find(struct.pack(order + "HHI", 65000, 3, 1))
    assert entry > 0
    raw[entry:entry + 2] = struct.pack(order + "H", code)
    Path(path).write_bytes(bytes(raw))


def _write_with_next_ifd(path: str, data: np.ndarray[Any, Any], offset: int) -> None:
    """A one-page shaped TIFF whose next-page offset (0: none) is replaced by ``offset``."""
    tifffile.imwrite(path, data)
    with tifffile.TiffFile(path) as tif:
        page = tif.pages.first
        link = page.offset + 2 + 12 * len(page.tags)  # after the tag count and the tags (classic TIFF)
    raw = bytearray(Path(path).read_bytes())
    raw[link:link + 4] = struct.pack("<I", offset)
    Path(path).write_bytes(bytes(raw))


def _write(folder: Path, kind: str, options: dict[str, Any], data: np.ndarray[Any, Any]) -> str | None:
    path = str(folder / f"{kind}-{next(_names)}.ome.tif" if kind == "ome" else folder / f"{kind}-{next(_names)}.tif")
    try:
        if kind == "pyramid":
            with tifffile.TiffWriter(path) as tif:
                tif.write(data, subifds=1)
                tif.write(data[::2, ::2], subfiletype=1)
        elif "patch_tag" in options:
            _write_with_tag(path, data, options["patch_tag"])
        elif "next_ifd" in options:
            _write_with_next_ifd(path, data, options["next_ifd"])
        else:
            tifffile.imwrite(path, data, **options)
    except (ValueError, TypeError, NotImplementedError, KeyError):
        return None  # a combination tifffile refuses to write (e.g. ImageJ with complex data)
    return path


@pytest.mark.filterwarnings("ignore::DeprecationWarning")  # tifffile: 3-sample stacks stored as RGB by default
@SETTINGS
@given(spec=tiff_files())
def test_load_equals_tifffile_imread_for_every_kind(tmp_path: Path, spec: tuple[str, dict[str, Any], Any]) -> None:
    kind, options, data = spec
    path = _write(tmp_path, kind, options, data)
    if path is None:
        return
    try:
        tifffile.imread(path)
    except Exception as exc:  # imread itself refuses: the load must refuse too
        with pytest.raises(Exception):
            read_tiff(path)
        assert exc is not None
        return
    _assert_same(path)


def test_each_kind_is_covered_and_fast_path_only_where_series_is_the_page(tmp_path: Path) -> None:
    """One file of each kind: the direct page read is taken exactly for one-page shaped files."""
    rng = np.random.default_rng(3)
    image = rng.integers(0, 4096, (24, 32), dtype=np.uint16)
    cases: dict[str, tuple[dict[str, Any], Any, bool]] = {
        "shaped": ({}, image, True),
        "shaped_with_metadata": ({"metadata": {"axes": "YX", "note": "x"}}, image, True),
        "big_endian": ({"byteorder": ">"}, image, True),
        "bigtiff": ({"bigtiff": True}, image, True),
        "compressed": ({"compression": "zlib"}, image, True),
        "tiled": ({"tile": (16, 16)}, image, True),
        "rgb": ({"photometric": "rgb"}, rng.integers(0, 255, (24, 32, 3), dtype=np.uint8), True),
        "old_shaped": ({"metadata": None, "description": "shape=(24, 32)"}, image, True),
        "singleton": ({}, image[None], False),
        "stack": ({}, np.stack([image, image + 1]), False),
        "generic": ({"metadata": None}, image, False),
        "imagej": ({"imagej": True, "metadata": {"axes": "ZYX"}}, np.stack([image, image]), False),
        "ome": ({"ome": True}, image, False),
        "truncated": ({"truncate": True}, np.stack([image, image]), False),
        "predictor_uncompressed": ({"patch_tag": 317}, image, False),
        "fillorder": ({"patch_tag": 266}, image.astype(np.uint8), False),
    }
    for name, (options, data, direct) in cases.items():
        path = str(tmp_path / (f"{name}.ome.tif" if name == "ome" else f"{name}.tif"))
        if "patch_tag" in options:
            _write_with_tag(path, data, options["patch_tag"])
        else:
            tifffile.imwrite(path, data, **options)
        with tifffile.TiffFile(path) as tif:
            assert (_plain_shaped_page(tif) is not None) is direct, name
        try:
            tifffile.imread(path)
        except Exception:  # e.g. a Predictor on raw integers: imread refuses, and so must the load
            with pytest.raises(Exception):
                read_tiff(path)
            continue
        _assert_same(path)


def test_a_stack_polystore_writes_loads_as_imread_reads_it(tmp_path: Path) -> None:
    fm = FileManager(BackendRegistry())
    stack = np.arange(3 * 5 * 7, dtype=np.float32).reshape(3, 5, 7)
    for name, kwargs in (("plain", {}), ("axes", {"axes": "zyx"}), ("labels", {"kind": "labels"})):
        path = str(tmp_path / f"{name}.tif")
        data = stack.astype(np.uint16) if name == "labels" else stack
        fm.save(data, path, backend="disk", **kwargs)
        _assert_same(path)


def test_glob_characters_in_a_path_are_read_as_imread_reads_them(tmp_path: Path) -> None:
    """``imread`` treats ``*``/``?`` as a glob pattern; the load reads what it reads, not the literal name."""
    image = np.arange(12, dtype=np.uint8).reshape(3, 4)
    tifffile.imwrite(tmp_path / "a1.tif", image)
    pattern = os.path.join(tmp_path, "a?.tif")
    np.testing.assert_array_equal(read_tiff(pattern), tifffile.imread(pattern))
    np.testing.assert_array_equal(read_tiff(pattern), image)


def test_a_path_through_a_symlink_reads_as_imread_reads_it(tmp_path: Path) -> None:
    """A linked folder: the fallback is ``imread`` itself (multi-file formats look beside the resolved path)."""
    real = tmp_path / "real"
    real.mkdir()
    stack = np.arange(2 * 3 * 4, dtype=np.uint16).reshape(2, 3, 4)
    tifffile.imwrite(real / "stack.tif", stack)
    tifffile.imwrite(real / "plane.tif", stack[0])
    tifffile.imwrite(real / "hyper.tif", stack, imagej=True, metadata={"axes": "ZYX"})
    (tmp_path / "link").symlink_to(real, target_is_directory=True)
    for name in ("stack.tif", "plane.tif", "hyper.tif"):
        _assert_same(str(tmp_path / "link" / name))
    np.testing.assert_array_equal(read_tiff(tmp_path / "link" / "stack.tif"), stack)  # a Path works too


def test_a_broken_tiff_still_raises(tmp_path: Path) -> None:
    path = tmp_path / "broken.tif"
    path.write_bytes(b"II*\x00garbage")
    with pytest.raises(Exception):
        FileManager(BackendRegistry()).load(str(path), backend="disk")
