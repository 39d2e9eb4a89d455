"""The zarr backend on object storage: a real S3-protocol server (moto) started by the session."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest

pytest.importorskip("zarr")
pytest.importorskip("s3fs")
boto3 = pytest.importorskip("boto3")

from s3_testing import s3_options as _options  # noqa: E402

from polystore.exceptions import ImageLoadError, PathNotFoundError  # noqa: E402
from polystore.zarr import ZarrBackend  # noqa: E402

pytestmark = pytest.mark.s3


@pytest.fixture
def s3_backend(s3_server: str, bucket: str) -> ZarrBackend:
    return ZarrBackend(root=f"s3://{bucket}/prefix", storage_options=_options(s3_server))


def _img(seed: int, shape: tuple[int, ...] = (3, 40, 50)) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 60000, size=shape).astype(np.uint16)


def test_save_load_list_like_a_local_store(s3_backend: ZarrBackend, s3_server: str, bucket: str) -> None:
    a, b = _img(1), _img(2)
    s3_backend.save(a, "plate.zarr/A01/site1", chunks=(1, 16, 16))
    s3_backend.save(b, "plate.zarr/A01/site2")
    s3_backend.save(a[0], "plate.zarr/B02/site1", metadata={"well": "B02"})
    np.testing.assert_array_equal(s3_backend.load("plate.zarr/A01/site1"), a)
    np.testing.assert_array_equal(s3_backend.load("plate.zarr/A01/site2"), b)
    assert s3_backend.list_dir("plate.zarr") == ["A01", "B02"]
    assert s3_backend.list_files("plate.zarr", recursive=True) == [
        "plate.zarr/A01/site1", "plate.zarr/A01/site2", "plate.zarr/B02/site1",
    ]
    assert s3_backend.is_dir("plate.zarr/A01") and s3_backend.is_file("plate.zarr/A01/site1")
    assert s3_backend.exists("plate.zarr/B02/site1") and not s3_backend.exists("plate.zarr/C03")
    assert s3_backend.load_metadata("plate.zarr/B02/site1") == {"well": "B02"}
    s3_backend.delete("plate.zarr/A01", recursive=True)
    assert s3_backend.list_dir("plate.zarr") == ["B02"]
    with pytest.raises(PathNotFoundError):
        s3_backend.load("plate.zarr/A01/site1")
    # the objects really are on the server, where zarr-python reads them
    import zarr

    store = zarr.storage.FsspecStore.from_url(f"s3://{bucket}/prefix/plate.zarr", storage_options=_options(s3_server), read_only=True)
    np.testing.assert_array_equal(zarr.open_array(store=store, path="B02/site1", mode="r")[:], a[0])
    # and a full URL path works without root=
    plain = ZarrBackend(storage_options=_options(s3_server))
    np.testing.assert_array_equal(plain.load(f"s3://{bucket}/prefix/plate.zarr/B02/site1"), a[0])


def test_batches_lazy_loads_and_ome_on_s3(
    s3_backend: ZarrBackend, s3_server: str, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    frames = [_img(i, (32, 48)) for i in range(5)]
    s3_backend.save_batch(frames, [f"stack.zarr/f{i}" for i in range(5)], axes="zyx")
    assert s3_backend.list_files("stack.zarr") == [f"stack.zarr/f{i}" for i in range(5)]
    got = s3_backend.load_batch(["stack.zarr/f3", "stack.zarr/f0"])
    np.testing.assert_array_equal(got[0], frames[3])
    np.testing.assert_array_equal(got[1], frames[0])
    lazy = s3_backend.load("stack.zarr", lazy=True)
    assert lazy.shape == (5, 32, 48)
    np.testing.assert_array_equal(lazy[2, 5:20].compute(), frames[2][5:20])
    # ome-zarr-py reads it from the server (it takes the endpoint from the environment)
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Reader

    location = parse_url(f"s3://{bucket}/prefix/stack.zarr")
    assert location is not None
    node = list(Reader(location)())[0]
    assert [a["name"] for a in node.metadata["axes"]] == ["z", "y", "x"]
    np.testing.assert_array_equal(np.asarray(node.data[0][4]), frames[4])
    # more images into the same batch are appended, not replacing it
    s3_backend.save_batch([frames[0], frames[1]], ["stack.zarr/f5", "stack.zarr/f6"], axes="zyx")
    assert s3_backend.list_files("stack.zarr") == [f"stack.zarr/f{i}" for i in range(7)]
    np.testing.assert_array_equal(s3_backend.load("stack.zarr/f6"), frames[1])
    np.testing.assert_array_equal(s3_backend.load("stack.zarr/f2"), frames[2])


def test_damaged_chunk_on_s3_is_named(s3_backend: ZarrBackend, s3_server: str, bucket: str) -> None:
    s3_backend.save(_img(3), "d.zarr/img", chunks=(1, 20, 25))
    client = boto3.client("s3", endpoint_url=s3_server, aws_access_key_id="testing",
                          aws_secret_access_key="testing", region_name="us-east-1")
    client.delete_object(Bucket=bucket, Key="prefix/d.zarr/img/c/1/1/0")
    expected = _img(3)
    expected[1, 20:40, 0:25] = 0  # a missing chunk is the fill value (zarr spec)
    np.testing.assert_array_equal(s3_backend.load("d.zarr/img"), expected)
    client.put_object(Bucket=bucket, Key="prefix/d.zarr/img/c/1/1/0", Body=b"junk")
    with pytest.raises(ImageLoadError, match=r"corrupted chunk 'c/1/1/0'"):
        s3_backend.load("d.zarr/img")


_KILL_OWN = """
real = pz._FsspecFS.write_many
def dying(self, items):
    for n, item in enumerate(items):
        if n == 3:
            os._exit(9)
        real(self, [item])
pz._FsspecFS.write_many = dying
# one request per chunk, so the kill lands between chunks
config = ZarrConfig(request_batch_bytes=1, use_tensorstore=False)
"""
# tensorstore writes a new array's chunks (``_ts_write``): killed after they are all written, before the metadata
_KILL_TENSORSTORE = """
from polystore.zarr import _ts_write
real = _ts_write.write_new_chunks
def dying(*args, **kwargs):
    assert real(*args, **kwargs)
    os._exit(9)
_ts_write.write_new_chunks = dying
config = ZarrConfig()
"""


@pytest.mark.parametrize("killer_part", [_KILL_OWN, _KILL_TENSORSTORE], ids=["own", "tensorstore"])
def test_writer_killed_mid_save_on_s3(s3_backend: ZarrBackend, s3_server: str, bucket: str, killer_part: str) -> None:
    if "_ts_write" in killer_part:
        pytest.importorskip("tensorstore")
    killer = textwrap.dedent(
        """
        import os, sys, json
        import numpy as np
        import polystore.zarr as pz
        from polystore.config import ZarrConfig
        """
    ) + killer_part + textwrap.dedent(
        """
        backend = pz.ZarrBackend(root=sys.argv[1], storage_options=json.loads(sys.argv[2]), config=config)
        backend.save(np.ones((8, 32, 32), np.uint16), "k.zarr/new", chunks=(1, 32, 32))
        """
    )
    import json

    s3_backend.save(np.zeros((4, 4), np.uint8), "k.zarr/old")
    result = subprocess.run(
        [sys.executable, "-c", killer, f"s3://{bucket}/prefix", json.dumps(_options(s3_server))],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 9, result.stderr
    client = boto3.client("s3", endpoint_url=s3_server, aws_access_key_id="testing",
                          aws_secret_access_key="testing", region_name="us-east-1")
    keys = [o["Key"] for o in client.list_objects_v2(Bucket=bucket, Prefix="prefix/k.zarr/new/")["Contents"]]
    assert keys and "prefix/k.zarr/new/zarr.json" not in keys  # chunks, but no metadata
    assert not s3_backend.exists("k.zarr/new")
    assert s3_backend.list_files("k.zarr") == ["k.zarr/old"]
    with pytest.raises(ImageLoadError, match="interrupted"):
        s3_backend.load("k.zarr/new")
    s3_backend.save(np.full((8, 32, 32), 3, np.uint16), "k.zarr/new")  # recovery: save again
    assert int(s3_backend.load("k.zarr/new").max()) == 3


@pytest.mark.parametrize("fmt", [2, 3])
def test_zero_d_arrays_on_s3(s3_backend: ZarrBackend, s3_server: str, bucket: str, fmt: int) -> None:
    """0-d arrays (polystore's and zarr-python's) round-trip on an object store, eager and lazy."""
    import zarr

    s3_backend.save(np.array(42.0), f"z{fmt}.zarr", zarr_format=fmt)
    store = zarr.storage.FsspecStore.from_url(
        f"s3://{bucket}/prefix/theirs{fmt}.zarr", storage_options=_options(s3_server), read_only=False
    )
    theirs = zarr.create_array(store, shape=(), dtype="int16", zarr_format=fmt, compressors=None)
    theirs[()] = -3
    for lazy in (False, True):
        got = s3_backend.load(f"z{fmt}.zarr", lazy=lazy)
        assert np.asarray(got.compute() if lazy else got) == 42.0
        got = s3_backend.load(f"theirs{fmt}.zarr", lazy=lazy)
        assert np.asarray(got.compute() if lazy else got) == -3


def test_delete_and_overwrite_drop_metadata_before_chunks_on_s3(
    s3_backend: ZarrBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch delete is not atomic: metadata goes first, so no node is left pointing at deleted chunks."""
    import s3fs

    docs = {"zarr.json", ".zarray", ".zgroup", ".zattrs"}
    calls: list[list[str]] = []
    real = s3fs.S3FileSystem._bulk_delete
    failing = False

    async def observed(self: object, pathlist: list[str], **kwargs: object) -> object:
        names = [p.rpartition("/")[2] for p in pathlist]
        calls.append(names)
        if failing and not set(names) <= docs:
            raise OSError("injected: the connection dropped while deleting chunks")
        return await real(self, pathlist, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(s3fs.S3FileSystem, "_bulk_delete", observed)
    s3_backend.save(np.ones((2, 16, 16), np.uint16), "d.zarr/img", chunks=(1, 8, 16), axes="zyx")
    calls.clear()
    s3_backend.save(np.full((2, 16, 16), 2, np.uint16), "d.zarr/img", chunks=(1, 8, 16), axes="zyx")
    s3_backend.delete("d.zarr/img", recursive=True)
    kinds = ["docs" if set(c) <= docs else "chunks" if not set(c) & docs else "mixed" for c in calls]
    # overwrite, then delete of an OME image (a group and its level array): each drops every
    # metadata document before any chunk (the old code deleted them together: "mixed")
    assert kinds == ["docs", "chunks", "docs", "chunks"], calls
    # a delete that fails after the metadata went leaves no node, only unreachable chunks
    s3_backend.save(np.ones((2, 16, 16), np.uint16), "f.zarr/img", chunks=(1, 8, 16))
    failing = True
    with pytest.raises(OSError, match="injected"):
        s3_backend.delete("f.zarr/img")
    failing = False
    assert not s3_backend.exists("f.zarr/img") and s3_backend.list_files("f.zarr") == []
    with pytest.raises(ImageLoadError, match="interrupted"):
        s3_backend.load("f.zarr/img")


def test_a_listing_cached_by_the_users_s3fs_does_not_hide_another_process_s_writes(
    s3_backend: ZarrBackend, s3_server: str, bucket: str
) -> None:
    """fsspec shares one s3fs instance per set of options: a user's ``find`` fills the listing
    cache our backend would read through. Chunks written by another process after that
    listing must load as their pixels, never as fill values, and new nodes must be seen."""
    import json

    import fsspec

    s3_backend.save(_img(1), "c.zarr/img", chunks=(1, 16, 16))
    s3_backend.save_batch([_img(5, (8, 8)), _img(6, (8, 8))], ["c.zarr/batch/a.tif", "c.zarr/batch/b.tif"])
    users_fs = fsspec.filesystem("s3", **_options(s3_server))
    assert users_fs is fsspec.filesystem("s3", **_options(s3_server))  # the instance is shared
    before = users_fs.find(f"{bucket}/prefix")  # fills users_fs.dircache for every folder
    assert any(key.endswith("c.zarr/img/zarr.json") for key in before)
    writer = textwrap.dedent(
        """
        import json, sys
        import numpy as np
        import polystore.zarr as pz
        backend = pz.ZarrBackend(root=sys.argv[1], storage_options=json.loads(sys.argv[2]))
        rng = np.random.default_rng(2)
        backend.save(rng.integers(0, 60000, (6, 40, 50)).astype(np.uint16), "c.zarr/img", chunks=(1, 16, 16))
        backend.save(np.full((4, 4), 9, np.uint8), "c.zarr/other")
        backend.save_batch([np.full((8, 8), 7, np.uint16)], ["c.zarr/batch/c.tif"])
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", writer, f"s3://{bucket}/prefix", json.dumps(_options(s3_server))],
        capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stderr
    expected = np.random.default_rng(2).integers(0, 60000, (6, 40, 50)).astype(np.uint16)
    np.testing.assert_array_equal(s3_backend.load("c.zarr/img"), expected)
    np.testing.assert_array_equal(np.asarray(s3_backend.load("c.zarr/img", lazy=True)), expected)
    assert s3_backend.exists("c.zarr/other") and int(s3_backend.load("c.zarr/other").max()) == 9
    assert "c.zarr/batch/c.tif" in s3_backend.list_files("c.zarr/batch")
    assert "c.zarr/other" in s3_backend.list_files("c.zarr", recursive=True)
    assert int(s3_backend.load("c.zarr/batch/c.tif").max()) == 7


def test_a_load_sends_one_get_per_key_and_nothing_else(
    s3_backend: ZarrBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """fsspec's ``cat`` sent a HEAD before each GET and listed missing names as folders (twice the requests).

    The s3fs transport (``use_tensorstore=False``; with tensorstore the keys are fetched by its client).
    """
    import s3fs.core

    from polystore.config import ZarrConfig

    s3_backend = ZarrBackend(root=s3_backend.root, storage_options=s3_backend.storage_options,
                             config=ZarrConfig(use_tensorstore=False))
    frames = [_img(i, (40, 50)) for i in range(3)]
    s3_backend.save_batch(frames, [f"b.zarr/f{i}" for i in range(3)], chunks=(1, 16, 16))
    calls: list[str] = []
    real = s3fs.core.S3FileSystem._call_s3

    async def counted(self: object, method: str, *args: object, **kwargs: object) -> object:
        calls.append(method)  # the real request is sent
        return await real(self, method, *args, **kwargs)

    monkeypatch.setattr(s3fs.core.S3FileSystem, "_call_s3", counted)
    np.testing.assert_array_equal(s3_backend.load("b.zarr/f1"), frames[1])
    assert set(calls) == {"get_object"}, calls
    # the zarr.json of the member's name and of its batch (a v3 array: nothing in its folder can be a
    # node, so no v2 names are asked for), then the member's 4 x 3 chunks; it was 6 + 12
    assert len(calls) == 2 + 12, calls


def test_a_v2_node_costs_its_v2_names_and_a_v3_node_one_request(
    s3_backend: ZarrBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``zarr.json`` decides when present, so the v2 names are asked for only where it is absent."""
    import s3fs.core

    from polystore.config import ZarrConfig

    s3_backend = ZarrBackend(root=s3_backend.root, storage_options=s3_backend.storage_options,
                             config=ZarrConfig(use_tensorstore=False))  # the s3fs transport
    v2 = ZarrBackend(root=s3_backend.root, storage_options=s3_backend.storage_options,
                     config=ZarrConfig(zarr_format=2, use_tensorstore=False))
    v2.save(_img(1, (8, 8)), "v2.zarr/img")
    s3_backend.save(_img(2, (8, 8)), "v3.zarr/img")
    calls: list[str] = []
    real = s3fs.core.S3FileSystem._call_s3

    async def counted(self: object, method: str, *args: object, **kwargs: object) -> object:
        calls.append(str(kwargs.get("Key", "")).rpartition("/")[2])
        return await real(self, method, *args, **kwargs)

    monkeypatch.setattr(s3fs.core.S3FileSystem, "_call_s3", counted)
    np.testing.assert_array_equal(s3_backend.load("v3.zarr/img"), _img(2, (8, 8)))
    assert sorted(calls) == ["0", "zarr.json", "zarr.json"], calls  # the array's and its store's, one chunk
    calls.clear()
    np.testing.assert_array_equal(s3_backend.load("v2.zarr/img"), _img(1, (8, 8)))
    assert ".zarray" in calls and ".zattrs" in calls, calls


def test_botocore_checksums_only_where_required_unless_the_user_chose(
    s3_server: str, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """botocore >= 1.36 computes a CRC32 for every upload and checks one on every download by
    default (CPU per request, in Python); polystore asks for them only where S3 requires them,
    and keeps what the user set in ``config_kwargs``, the environment or the AWS config file."""
    img = _img(3, (8, 8))
    plain = ZarrBackend(root=f"s3://{bucket}/a", storage_options=_options(s3_server))
    plain.save(img, "x.zarr")
    np.testing.assert_array_equal(plain.load("x.zarr"), img)
    config = plain._remote["s3"].fs.s3.meta.config
    assert (config.request_checksum_calculation, config.response_checksum_validation) == ("when_required",) * 2
    chosen = dict(_options(s3_server), config_kwargs={"response_checksum_validation": "when_supported"})
    user = ZarrBackend(root=f"s3://{bucket}/a", storage_options=chosen)
    np.testing.assert_array_equal(user.load("x.zarr"), img)
    config = user._remote["s3"].fs.s3.meta.config
    assert (config.request_checksum_calculation, config.response_checksum_validation) == (
        "when_required", "when_supported")
    assert user.storage_options == chosen  # what workers are given is what the user gave
    from polystore.zarr._s3 import s3_defaults

    monkeypatch.setenv("AWS_REQUEST_CHECKSUM_CALCULATION", "WHEN_SUPPORTED")
    assert s3_defaults("s3", {})["config_kwargs"] == {"response_checksum_validation": "when_required"}
    assert s3_defaults("gcs", {"token": "x"}) == {"token": "x"}


def test_an_overwrite_lists_the_old_tree_twice_and_deletes_it_by_name(
    s3_backend: ZarrBackend, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Deleting the old tree cost five listings and a HEAD (publish's ``isdir``, s3fs's recursive ``rm``)."""
    import s3fs.core

    s3_backend.save(_img(0), "o.zarr", chunks=(1, 16, 16))
    calls: list[str] = []
    real = s3fs.core.S3FileSystem._call_s3

    async def counted(self: object, method: str, *args: object, **kwargs: object) -> object:
        calls.append(method)  # the real request is sent
        return await real(self, method, *args, **kwargs)

    monkeypatch.setattr(s3fs.core.S3FileSystem, "_call_s3", counted)
    s3_backend.save(_img(1), "o.zarr", chunks=(1, 16, 16))
    # one listing, the metadata deleted, a listing that checks it is gone, then the chunks by name
    assert calls.count("list_objects_v2") == 2 and calls.count("delete_objects") == 2, calls
    assert "head_object" not in calls, calls
    np.testing.assert_array_equal(s3_backend.load("o.zarr"), _img(1))
    s3_backend.delete("o.zarr", recursive=True)
    assert not s3_backend.exists("o.zarr")
