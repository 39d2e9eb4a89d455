"""S3 array reads delegated to tensorstore's zarr driver (issue 9's rule), on the session's real moto server.

The real tensorstore does the work in every test; a counting wrapper around
``_ts_delegate.read`` only records whether it returned the region (delegated)
or None (the own reader read it). The own path's guarantees must hold on the
delegated one: same values as the own reader (fill values, edge chunks, v2
and v3, both separators), a damaged chunk named, absent chunks making a load
check its version, options that do not translate reading through s3fs.
"""

from __future__ import annotations

import json
import multiprocessing
import pickle
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

pytest.importorskip("zarr")
pytest.importorskip("s3fs")
pytest.importorskip("tensorstore")
boto3 = pytest.importorskip("boto3")

import zarr  # noqa: E402

import polystore.zarr._ts_delegate as td  # noqa: E402
from s3_testing import s3_options  # noqa: E402
from polystore.config import ZarrConfig  # noqa: E402
from polystore.exceptions import ImageLoadError  # noqa: E402
from polystore.zarr import ZarrBackend  # noqa: E402

pytestmark = pytest.mark.s3


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, int]]:
    """Regions tensorstore read ("ts"), and those it was asked for but left to the own reader ("own").

    Readers of ``ZarrConfig(use_tensorstore=False)`` are not counted.
    """
    real = td.read
    seen = {"ts": 0, "own": 0}

    def counting(reader: Any, starts: Any, stops: Any) -> Any:
        got = real(reader, starts, stops)
        if reader.use_tensorstore:
            seen["ts" if got is not None else "own"] += 1
        return got

    monkeypatch.setattr(td, "read", counting)
    yield seen


def _client(s3_server: str) -> Any:
    return boto3.client("s3", endpoint_url=s3_server, aws_access_key_id="testing",
                        aws_secret_access_key="testing", region_name="us-east-1")


def _backends(s3_server: str, bucket: str, **config: Any) -> tuple[ZarrBackend, ZarrBackend]:
    """(delegating, own path) backends on ``s3://bucket/p``."""
    root, options = f"s3://{bucket}/p", s3_options(s3_server)
    return (ZarrBackend(root=root, storage_options=options, config=ZarrConfig(**config)),
            ZarrBackend(root=root, storage_options=options, config=ZarrConfig(use_tensorstore=False, **config)))


DTYPES = ["bool", "int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64", "float16", "float32", "float64",
          "complex64", "complex128"]  # every dtype the own reader decodes


@pytest.mark.parametrize("fmt", [2, 3])
def test_whole_arrays_and_members_equal_the_own_path_for_every_dtype(
    s3_server: str, bucket: str, calls: dict[str, int], fmt: int
) -> None:
    ours, own = _backends(s3_server, bucket, zarr_format=fmt)
    rng = np.random.default_rng(fmt)
    for dtype in DTYPES:
        data = (rng.standard_normal((3, 37, 41)) * 50).astype(dtype)  # chunks do not divide the shape
        ours.save(data, f"{dtype}.zarr", chunks=(2, 16, 16))
        before = calls["ts"]
        got = ours.load(f"{dtype}.zarr")
        assert calls["ts"] == before + 1, dtype
        assert got.dtype == data.dtype and np.array_equal(got, data, equal_nan=dtype.startswith(("f", "c")))
        np.testing.assert_array_equal(got, own.load(f"{dtype}.zarr"))
    frames = [(rng.standard_normal((37, 41)) * 50).astype("float32") for _ in range(5)]
    ours.save_batch(frames, [f"b.zarr/f{i}" for i in range(5)], chunks=(1, 16, 16))
    before = calls["ts"]
    np.testing.assert_array_equal(ours.load("b.zarr/f3"), frames[3])
    for got, want in zip(ours.load_batch(["b.zarr/f4", "b.zarr/f1"]), (frames[4], frames[1])):
        np.testing.assert_array_equal(got, want)
    assert calls["ts"] == before + 2  # the member, then the one-pass region of load_batch
    np.testing.assert_array_equal(own.load("b.zarr/f3"), frames[3])


@pytest.mark.parametrize(
    ("fmt", "separator", "fill"),
    [(3, "/", 7), (3, ".", -3.5), (2, ".", float("nan")), (2, "/", 12), (3, ".", float("-inf"))],
)
def test_arrays_written_by_zarr_python_with_fill_values_and_missing_chunks(
    s3_server: str, bucket: str, calls: dict[str, int], fmt: int, separator: str, fill: float
) -> None:
    """Chunk keys, separators and fill values come from the metadata polystore validated."""
    ours, own = _backends(s3_server, bucket)
    store = zarr.storage.FsspecStore.from_url(f"s3://{bucket}/p/z.zarr", storage_options=s3_options(s3_server),
                                              read_only=False)
    encoding = {"name": "v2" if fmt == 2 else "default", "separator": separator}
    arr = zarr.create_array(store, shape=(4, 30, 25), chunks=(1, 8, 8), dtype="float32", fill_value=fill,
                            zarr_format=fmt, chunk_key_encoding=encoding,
                            compressors=zarr.codecs.BloscCodec(cname="lz4", clevel=1, shuffle="shuffle")
                            if fmt == 3 else None)
    data = np.random.default_rng(0).standard_normal((4, 30, 25)).astype("float32")
    arr[1:3, 5:20] = data[1:3, 5:20]  # the other chunks are never written: the fill value
    want = arr[...]
    keys = [o["Key"] for o in _client(s3_server).list_objects_v2(Bucket=bucket, Prefix="p/z.zarr/")["Contents"]]
    assert any(("c" + separator if fmt == 3 else "") + "1" + separator + "0" + separator in k for k in keys)
    got = ours.load("z.zarr")
    assert calls["ts"] == 1
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(own.load("z.zarr"), want)
    lazy = ours.load("z.zarr", lazy=True)
    np.testing.assert_array_equal(lazy[2].compute(scheduler="sync"), want[2])
    assert calls["ts"] > 1 and calls["own"] == 0


def _switch_generation(s3_server: str, bucket: str, group: str, new: np.ndarray) -> str:
    """Switch image ``group`` (one level) to a new generation holding ``new``, then delete the old one.

    The order of a cluster save (``_generations``): chunks of the new
    generation, the group's metadata naming it in one PUT, the old level's keys deleted.
    """
    s3 = _client(s3_server)
    doc = json.loads(s3.get_object(Bucket=bucket, Key=f"{group}/zarr.json")["Body"].read())
    datasets = doc["attributes"]["ome"]["multiscales"][0]["datasets"]
    old, gen = datasets[0]["path"], f"gen-{np.random.default_rng().integers(1 << 40):012x}"
    level = json.loads(s3.get_object(Bucket=bucket, Key=f"{group}/{old}/zarr.json")["Body"].read())
    blosc = zarr.codecs.BloscCodec(cname="lz4", clevel=1, shuffle="shuffle")
    store = zarr.storage.FsspecStore.from_url(f"s3://{bucket}/{group}/{gen}/0", read_only=False,
                                              storage_options=s3_options(s3_server))
    z = zarr.create_array(store, shape=new.shape, chunks=level["chunk_grid"]["configuration"]["chunk_shape"],
                          dtype=new.dtype, fill_value=0, compressors=blosc, dimension_names=level.get("dimension_names"))
    z[...] = new
    datasets[0]["path"] = f"{gen}/0"
    s3.put_object(Bucket=bucket, Key=f"{group}/zarr.json", Body=json.dumps(doc).encode())
    for obj in s3.list_objects_v2(Bucket=bucket, Prefix=f"{group}/{old}/")["Contents"]:
        s3.delete_object(Bucket=bucket, Key=obj["Key"])
    return f"{gen}/0"


def test_generation_layout_levels_are_read_and_a_switch_during_the_read_starts_over(
    s3_server: str, bucket: str, calls: dict[str, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A load that found its generation's chunks gone (tensorstore: absent) checks the group and reads the new one."""
    ours, _ = _backends(s3_server, bucket)
    rng = np.random.default_rng(5)
    first, second, third = (rng.integers(0, 60000, (2, 40, 44), dtype=np.uint16) for _ in range(3))
    ours.save(first, "g.zarr/img", axes="zyx", chunks=(1, 16, 16))
    path = _switch_generation(s3_server, bucket, "p/g.zarr/img", second)
    assert path.startswith("gen-")
    np.testing.assert_array_equal(ours.load("g.zarr/img"), second)
    assert calls == {"ts": 1, "own": 0}

    real, seen = td.read, []

    def switch_then_read(reader: Any, starts: Any, stops: Any) -> Any:
        if not seen:  # the old group and level metadata were read, the chunks not yet
            _switch_generation(s3_server, bucket, "p/g.zarr/img", third)
        seen.append(reader.path)
        return real(reader, starts, stops)

    monkeypatch.setattr(td, "read", switch_then_read)
    np.testing.assert_array_equal(ours.load("g.zarr/img"), third)  # never the fill value of deleted chunks
    assert len(seen) == 2 and seen[0] != seen[1] and seen[0].endswith(path)


@pytest.mark.parametrize("damage", ["truncated", "padded", "junk"])
def test_a_chunk_tensorstore_cannot_decode_is_named_by_the_own_reader(
    s3_server: str, bucket: str, calls: dict[str, int], damage: str
) -> None:
    ours, _ = _backends(s3_server, bucket)
    data = np.random.default_rng(3).integers(0, 60000, (3, 40, 50), dtype=np.uint16)
    ours.save(data, "d.zarr/img", chunks=(1, 20, 25))
    ours.save_batch(list(data), [f"b.zarr/f{i}" for i in range(3)], chunks=(1, 20, 25))
    s3 = _client(s3_server)
    for key in ("p/d.zarr/img/c/1/1/0", "p/b.zarr/c/1/1/0"):
        raw = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
        bad = {"truncated": raw[:-7], "padded": raw + b"\0" * 9, "junk": b"junk"}[damage]
        s3.put_object(Bucket=bucket, Key=key, Body=bad)
    for load in (lambda: ours.load("d.zarr/img"), lambda: ours.load("b.zarr/f1"),
                 lambda: ours.load("d.zarr/img", lazy=True)[1].compute(scheduler="sync")):
        before = calls["own"]
        with pytest.raises(ImageLoadError, match=r"corrupted chunk 'c/1/1/0'"):
            load()
        assert calls["own"] > before  # tensorstore failed on it; the own reader named it
    np.testing.assert_array_equal(ours.load("b.zarr/f2"), data[2])


def test_options_that_do_not_translate_and_the_switch_keep_s3fs(
    s3_server: str, bucket: str, calls: dict[str, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    data = np.arange(2 * 30 * 20, dtype=np.int32).reshape(2, 30, 20)
    untranslated = {**s3_options(s3_server), "use_ssl": False}  # no exact tensorstore counterpart
    plain = ZarrBackend(root=f"s3://{bucket}/p", storage_options=untranslated)
    plain.save(data, "a.zarr", chunks=(1, 16, 16))
    np.testing.assert_array_equal(plain.load("a.zarr"), data)
    np.testing.assert_array_equal(plain.load("a.zarr", lazy=True).compute(scheduler="sync"), data)
    _, own = _backends(s3_server, bucket)
    np.testing.assert_array_equal(own.load("a.zarr"), data)
    assert calls["ts"] == 0 and calls["own"] > 0
    sent = _count_s3fs(monkeypatch)
    np.testing.assert_array_equal(plain.load("a.zarr"), data)
    assert len([c for c in sent if c.startswith("get_object")]) == 1 + 8  # zarr.json and 8 chunks, through s3fs
    ours, _ = _backends(s3_server, bucket)
    np.testing.assert_array_equal(ours.load("a.zarr"), data)
    assert calls["ts"] == 1


def _load_in_child(args: tuple[str, str, Any]) -> tuple[bool, bool, bool]:
    root, key, options = args
    got = ZarrBackend(root=root, storage_options=options).load(key, lazy=True)
    return td.available(), td._Use.forked_after, bool(np.array_equal(pickle.loads(pickle.dumps(got)).compute(
        scheduler="sync"), np.arange(2 * 30 * 20, dtype=np.int32).reshape(2, 30, 20)))


def test_lazy_blocks_pickle_as_settings_and_a_forked_child_uses_the_own_path(
    s3_server: str, bucket: str, calls: dict[str, int]
) -> None:
    ours, _ = _backends(s3_server, bucket, lazy_block_bytes=0)  # one dask block per chunk: 8 blocks
    data = np.arange(2 * 30 * 20, dtype=np.int32).reshape(2, 30, 20)
    ours.save(data, "a.zarr", chunks=(1, 16, 16))
    lazy = ours.load("a.zarr", lazy=True)
    np.testing.assert_array_equal(pickle.loads(pickle.dumps(lazy)).compute(scheduler="sync"), data)
    assert calls["ts"] == 2 * 2 * 2 and calls["own"] == 0  # each block through tensorstore
    assert td._Use.ran
    with multiprocessing.get_context("fork").Pool(1) as pool:
        available, forked_after, equal = pool.apply(_load_in_child, ((f"s3://{bucket}/p", "a.zarr",
                                                                      s3_options(s3_server)),))
    assert equal and forked_after and not available  # tensorstore's threads are not in a forked child
    with multiprocessing.get_context("spawn").Pool(1) as pool:
        available, forked_after, equal = pool.apply(_load_in_child, ((f"s3://{bucket}/p", "a.zarr",
                                                                      s3_options(s3_server)),))
    assert equal and available and not forked_after


def _count_s3fs(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The requests s3fs sends from now on (the real requests are sent)."""
    import s3fs.core

    calls: list[str] = []
    real = s3fs.core.S3FileSystem._call_s3

    async def counted(self: object, method: str, *args: object, **kwargs: object) -> object:
        calls.append(f"{method} {kwargs.get('Key', '')}")
        return await real(self, method, *args, **kwargs)

    monkeypatch.setattr(s3fs.core.S3FileSystem, "_call_s3", counted)
    return calls


@pytest.mark.parametrize("fmt", [2, 3])
def test_metadata_and_chunks_are_fetched_by_tensorstore_where_the_options_translate(
    s3_server: str, bucket: str, monkeypatch: pytest.MonkeyPatch, fmt: int
) -> None:
    """Every key of a load (metadata, the pins' checks, chunks) goes through tensorstore's client, none through s3fs."""
    ours, own = _backends(s3_server, bucket, zarr_format=fmt)
    frames = [np.full((40, 50), i, np.uint16) for i in range(3)]
    ours.save_batch(frames, [f"b.zarr/f{i}" for i in range(3)], chunks=(1, 16, 16))
    ours.save(np.stack(frames), "a.zarr", chunks=(1, 16, 16))
    _client(s3_server).delete_object(Bucket=bucket, Key="p/a.zarr/" + ("c/1/0/0" if fmt == 3 else "1/0/0"))
    calls = _count_s3fs(monkeypatch)
    np.testing.assert_array_equal(ours.load("b.zarr/f1"), frames[1])
    want = np.stack(frames)
    want[1, :16, :16] = 0  # the absent chunk: the fill value, after the load checked its version
    np.testing.assert_array_equal(ours.load("a.zarr"), want)
    assert ours.list_files("b.zarr") == [f"b.zarr/f{i}" for i in range(3)]
    assert not [c for c in calls if c.startswith("get_object")], calls  # listings stay with s3fs
    np.testing.assert_array_equal(own.load("a.zarr"), want)
    assert [c for c in calls if c.startswith("get_object")]  # the switch keeps s3fs
