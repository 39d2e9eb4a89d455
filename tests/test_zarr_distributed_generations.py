"""Cluster saves of OME images on object stores: each save's levels under a generation (zarr layout 2).

A real dask.distributed LocalCluster of worker processes (``dist_testing``)
and the session's moto S3 server. See ``polystore/zarr/_generations.py``.
"""

from __future__ import annotations

import json
import pathlib
from typing import Any

import numpy as np
import pytest

pytest.importorskip("zarr")
pytest.importorskip("s3fs")
da = pytest.importorskip("dask.array")

from dist_testing import client, cluster  # noqa: E402,F401
from s3_testing import s3_options  # noqa: E402

from polystore.exceptions import ImageLoadError  # noqa: E402
from polystore.zarr import ZarrBackend  # noqa: E402
from polystore.zarr import _read  # noqa: E402
from polystore.zarr._ome import _downsample_yx  # noqa: E402

pytestmark = pytest.mark.s3

SHAPE = (2, 2, 3, 70, 66)  # tczyx, odd sizes: edge chunks and dropped odd rows on the levels
CHUNKS = (1, 1, 2, 32, 32)
PATH = "g.zarr/A/1/0"


def _image(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 60000, size=SHAPE, dtype=np.uint16)


def _lazy(a: np.ndarray) -> Any:
    return da.from_array(a, chunks=SHAPE[:3] + (32, 32))


def _backend(s3_server: str, bucket: str) -> ZarrBackend:
    return ZarrBackend(root=f"s3://{bucket}", storage_options=s3_options(s3_server))


def _keys(s3_server: str, bucket: str, prefix: str = "") -> list[str]:
    """Every object key under ``prefix`` (boto3: an s3fs listing would fill the shared cache)."""
    import boto3

    s3 = boto3.client(
        "s3", endpoint_url=s3_server, aws_access_key_id="testing", aws_secret_access_key="testing",
        region_name="us-east-1",
    )
    pages = s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return [o["Key"] for page in pages for o in page.get("Contents", [])]


def _group(backend: ZarrBackend, bucket: str, path: str = PATH) -> dict[str, Any]:
    raw = backend._locate("g.zarr").fs.read(f"{bucket}/{path}/zarr.json")
    assert raw is not None
    return dict(json.loads(raw))


def _dataset_paths(backend: ZarrBackend, bucket: str) -> list[str]:
    return [d["path"] for d in _group(backend, bucket)["attributes"]["ome"]["multiscales"][0]["datasets"]]


def test_levels_go_to_a_new_generation_and_the_old_one_is_deleted_after_the_switch(
    client: Any, s3_server: str, bucket: str
) -> None:
    backend = _backend(s3_server, bucket)
    old = _image(1)
    backend.save(old, PATH, axes="tczyx", pyramid_levels=1, chunks=CHUNKS)  # in this process: levels "0", "1"
    assert _dataset_paths(backend, bucket) == ["0", "1"]
    new = _image(2)
    backend.save(_lazy(new), PATH, axes="tczyx", pyramid_levels=1, chunks=CHUNKS)
    first = _dataset_paths(backend, bucket)
    generation = first[0].split("/")[0]
    assert generation.startswith("gen-") and first == [f"{generation}/0", f"{generation}/1"]
    # only the group metadata and the new generation are left inside the image
    assert {k.split("/")[4] for k in _keys(s3_server, bucket, f"{PATH}/")} == {"zarr.json", generation}
    fresh = _backend(s3_server, bucket)
    np.testing.assert_array_equal(fresh.load(PATH), new)
    np.testing.assert_array_equal(fresh.load(PATH, level=1), _downsample_yx(new, "tczyx"))
    assert fresh.list_files("g.zarr/A/1") == ["g.zarr/A/1/0"]
    assert fresh.info(PATH)["levels"] == 2
    # the next cluster save: another generation, the previous one deleted
    newer = _image(3)
    backend.save(_lazy(newer), PATH, axes="tczyx", pyramid_levels=1, chunks=CHUNKS)
    second = _dataset_paths(backend, bucket)[0].split("/")[0]
    assert second.startswith("gen-") and second != generation
    assert {k.split("/")[4] for k in _keys(s3_server, bucket, f"{PATH}/")} == {"zarr.json", second}
    np.testing.assert_array_equal(fresh.load(PATH), newer)


def test_zarr_python_and_ome_zarr_models_read_a_generation_image(client: Any, s3_server: str, bucket: str) -> None:
    import zarr
    from ome_zarr_models.v05.image import Image

    backend = _backend(s3_server, bucket)
    new = _image(4)
    backend.save(_lazy(new), PATH, axes="tczyx", pyramid_levels=1, chunks=CHUNKS, channel_names=["a", "b"])
    store = zarr.storage.FsspecStore.from_url(f"s3://{bucket}/{PATH}", storage_options=s3_options(s3_server),
                                              read_only=True)
    group = zarr.open_group(store, mode="r")
    model = Image.from_zarr(group)
    paths = [d.path for d in model.attributes.ome.multiscales[0].datasets]
    assert paths[0].startswith("gen-") and len(paths) == 2
    np.testing.assert_array_equal(group[paths[0]][...], new)
    np.testing.assert_array_equal(group[paths[1]][...], _downsample_yx(new, "tczyx"))


def test_a_v2_image_is_written_as_a_generation_too(client: Any, s3_server: str, bucket: str) -> None:
    import zarr
    from ome_zarr_models.v04.image import Image

    backend = _backend(s3_server, bucket)
    backend.save(_image(5), PATH, axes="tczyx", chunks=CHUNKS, zarr_format=2)
    new = _image(6)
    backend.save(_lazy(new), PATH, axes="tczyx", pyramid_levels=1, chunks=CHUNKS)  # takes the store's format
    raw = backend._locate("g.zarr").fs.read(f"{bucket}/{PATH}/.zattrs")
    assert raw is not None
    paths = [d["path"] for d in json.loads(raw)["multiscales"][0]["datasets"]]
    assert paths[0].startswith("gen-")
    generation = paths[0].split("/")[0]
    assert {k.split("/")[4] for k in _keys(s3_server, bucket, f"{PATH}/")} == {".zgroup", ".zattrs", generation}
    np.testing.assert_array_equal(_backend(s3_server, bucket).load(PATH), new)
    store = zarr.storage.FsspecStore.from_url(f"s3://{bucket}/{PATH}", storage_options=s3_options(s3_server),
                                              read_only=True)
    Image.from_zarr(zarr.open_group(store, mode="r", zarr_format=2))


def test_an_unpublished_generation_is_invisible_and_cleanup_removes_it(
    client: Any, s3_server: str, bucket: str
) -> None:
    """What a client killed between the levels' metadata and the group's leaves: a generation nothing names."""
    backend = _backend(s3_server, bucket)
    new = _image(7)
    backend.save(_lazy(new), PATH, axes="tczyx", chunks=CHUNKS)
    generation = _dataset_paths(backend, bucket)[0].split("/")[0]
    fs = backend._locate("g.zarr").fs
    fs.rmtree(f"{bucket}/{PATH}/zarr.json")  # the group metadata was never written
    fresh = _backend(s3_server, bucket)
    assert not fresh.exists(PATH) and not fresh.is_file(PATH)
    assert fresh.list_files("g.zarr", recursive=True) == []
    assert fresh.list_files("g.zarr/A/1/0") == [] and fresh.list_dir("g.zarr/A/1/0") == []
    assert not fresh.exists(f"{PATH}/{generation}")
    with pytest.raises(ImageLoadError, match="no zarr metadata"):
        fresh.load(PATH)
    # inside a published image too: an older image with an unpublished generation beside its levels
    old = _image(8)
    fresh.save(old, "g.zarr/B/1/0", axes="tczyx", chunks=CHUNKS)
    fs.write(f"{bucket}/g.zarr/B/1/0/{generation}/0/c/0/0/0/0/0", b"orphan")
    assert fresh.list_files("g.zarr", recursive=True) == ["g.zarr/B/1/0"]
    removed = fresh.cleanup("g.zarr")
    assert sorted(r.rpartition(bucket + "/")[2] for r in removed) == [f"g.zarr/A/1/0/{generation}", f"g.zarr/B/1/0/{generation}"]
    assert not [k for k in _keys(s3_server, bucket) if "/gen-" in k]
    np.testing.assert_array_equal(fresh.load("g.zarr/B/1/0"), old)


def test_cleanup_keeps_the_published_generation_and_what_is_not_ours(client: Any, s3_server: str, bucket: str) -> None:
    backend = _backend(s3_server, bucket)
    new = _image(9)
    backend.save(_lazy(new), PATH, axes="tczyx", chunks=CHUNKS)
    # a user's array named like a generation, in a plain group: not a generation of an image
    backend.save(np.ones((4, 4), np.uint8), "g.zarr/other/gen-0123456789ab", chunks=(4, 4))
    assert backend.cleanup("g.zarr") == []
    np.testing.assert_array_equal(backend.load(PATH), new)
    np.testing.assert_array_equal(backend.load("g.zarr/other/gen-0123456789ab"), np.ones((4, 4), np.uint8))


def test_a_reader_that_read_the_old_group_starts_over_when_its_generation_is_gone(
    client: Any, s3_server: str, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The save switches in a new generation and deletes the old one between the reader's metadata and its chunks."""
    backend = _backend(s3_server, bucket)
    old, new = _image(10), _image(11)
    backend.save(_lazy(old), PATH, axes="tczyx", chunks=CHUNKS)
    reader = _backend(s3_server, bucket)
    original = _read._ArrayReader.read
    calls: list[str] = []

    def read_after_a_save(self: Any, *args: Any, **kwargs: Any) -> Any:
        if not calls:  # the first read: the old group and level metadata are read, its chunks are not
            backend.save(_lazy(new), PATH, axes="tczyx", chunks=CHUNKS)
        calls.append(self.path)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(_read._ArrayReader, "read", read_after_a_save)
    got = reader.load(PATH)
    np.testing.assert_array_equal(got, new)  # never the fill value of the deleted chunks
    assert len(calls) == 2 and calls[0] != calls[1]  # read the old generation, found it gone, read the new one


def test_a_lazy_array_whose_generation_was_deleted_raises_instead_of_reading_fill_values(
    client: Any, s3_server: str, bucket: str
) -> None:
    backend = _backend(s3_server, bucket)
    old, new = _image(12), _image(13)
    backend.save(_lazy(old), PATH, axes="tczyx", chunks=CHUNKS)
    lazy = _backend(s3_server, bucket).load(PATH, lazy=True)
    np.testing.assert_array_equal(lazy[0].compute(scheduler="sync"), old[0])
    backend.save(_lazy(new), PATH, axes="tczyx", chunks=CHUNKS)
    with pytest.raises(ImageLoadError, match="replaced after it was opened"):
        lazy.compute(scheduler="sync")


def test_dataset_paths_must_stay_inside_the_image(client: Any, s3_server: str, bucket: str) -> None:
    backend = _backend(s3_server, bucket)
    backend.save(_lazy(_image(14)), PATH, axes="tczyx", chunks=CHUNKS)
    backend.save(np.ones((4, 4), np.uint8), "g.zarr/secret", chunks=(4, 4))
    group = _group(backend, bucket)
    fs = backend._locate("g.zarr").fs
    for bad in ("../../../secret", "gen-0123456789ab/../../../../secret", "/g.zarr/secret"):
        group["attributes"]["ome"]["multiscales"][0]["datasets"][0]["path"] = bad
        fs.write(f"{bucket}/{PATH}/zarr.json", json.dumps(group).encode())
        with pytest.raises(ImageLoadError, match="inside the image group"):
            _backend(s3_server, bucket).load(PATH)
        assert _backend(s3_server, bucket).cleanup("g.zarr") == []  # an invalid image is left alone


def test_frames_go_into_the_generation_of_a_one_level_image(client: Any, s3_server: str, bucket: str) -> None:
    backend = _backend(s3_server, bucket)
    new = _image(15)
    backend.save(_lazy(new), PATH, axes="tczyx", chunks=(1, 1, 1, 70, 66))
    frame = np.full(SHAPE[-2:], 7, np.uint16)
    backend.save(frame, PATH, index={"t": 1, "c": 0, "z": 2})
    backend.flush()
    expected = new.copy()
    expected[1, 0, 2] = frame
    np.testing.assert_array_equal(_backend(s3_server, bucket).load(PATH), expected)
    assert not [k for k in _keys(s3_server, bucket, f"{PATH}/0/")]  # nothing beside the generation


def test_local_copy_loads_and_shows_in_info_ls_and_the_napari_reader(
    client: Any, s3_server: str, bucket: str, tmp_path: pathlib.Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An image copied from the object store to a disk (aws s3 sync): readers follow the datasets paths."""
    from cli_testing import run_cli

    backend = _backend(s3_server, bucket)
    new = _image(16)
    backend.save(_lazy(new), PATH, axes="tczyx", pyramid_levels=1, chunks=CHUNKS)
    backend._locate("g.zarr").fs.fs.get(f"{bucket}/g.zarr", str(tmp_path / "g.zarr"), recursive=True)
    local = ZarrBackend(root=tmp_path)
    np.testing.assert_array_equal(local.load(PATH), new)
    np.testing.assert_array_equal(local.load(PATH, level=1, lazy=True).compute(), _downsample_yx(new, "tczyx"))
    assert local.list_files("g.zarr", recursive=True) == ["g.zarr/A/1/0"]
    code, out, _ = run_cli(capsys, "ls", str(tmp_path / "g.zarr"), "-r", "--json")
    rows = {row["path"]: row for row in map(json.loads, out.splitlines())}
    assert code == 0 and rows["A/1/0"]["kind"] in ("image", "field") and rows["A/1/0"]["shape"] == list(SHAPE)
    code, out, _ = run_cli(capsys, "info", str(tmp_path / PATH), "--json")
    report = json.loads(out)
    assert code == 0 and [lv["shape"] for lv in report["levels_detail"]] == [list(SHAPE), [2, 2, 3, 35, 33]]
    assert report["levels_detail"][0]["path"].startswith("gen-")
    from polystore_napari._store import open_zarr_layers

    ((data, kwargs, _),) = open_zarr_layers(str(tmp_path / PATH))
    assert kwargs.get("multiscale") is True and len(data) == 2
    np.testing.assert_array_equal(np.asarray(data[0]), new)


@pytest.mark.parametrize("fmt", [3, 2])
def test_a_plain_array_at_the_path_is_replaced_by_a_generation_image(
    client: Any, s3_server: str, bucket: str, fmt: int
) -> None:
    backend = _backend(s3_server, bucket)
    backend.save(np.ones((4, 4), np.uint8), "g.zarr/other", zarr_format=fmt)  # the store's format
    backend.save(_image(17), PATH, chunks=CHUNKS)  # a plain array where the image goes
    new = _image(18)
    backend.save(_lazy(new), PATH, axes="tczyx", chunks=CHUNKS)
    fresh = _backend(s3_server, bucket)
    assert fresh.info(PATH)["kind"] == "image"
    np.testing.assert_array_equal(fresh.load(PATH), new)
    docs = {"zarr.json"} if fmt == 3 else {".zgroup", ".zattrs"}
    names = {k.split("/")[4] for k in _keys(s3_server, bucket, f"{PATH}/")}
    assert names - docs and all(n.startswith("gen-") for n in names - docs) and len(names - docs) == 1


def test_an_image_at_the_root_of_its_store_is_staged(client: Any, s3_server: str, bucket: str) -> None:
    """A store root without metadata holding only a generation would list as a folder: it is staged instead."""
    backend = _backend(s3_server, bucket)
    new = _image(19)
    backend.save(_lazy(new), "root.zarr", axes="tczyx", pyramid_levels=1, chunks=CHUNKS)
    raw = backend._locate("root.zarr").fs.read(f"{bucket}/root.zarr/zarr.json")
    assert raw is not None
    assert [d["path"] for d in json.loads(raw)["attributes"]["ome"]["multiscales"][0]["datasets"]] == ["0", "1"]
    np.testing.assert_array_equal(_backend(s3_server, bucket).load("root.zarr"), new)
    assert not [k for k in _keys(s3_server, bucket) if ".polystore-tmp-" in k or "/gen-" in k]


def test_build_pyramid_puts_the_levels_beside_level_0_in_its_generation(
    client: Any, s3_server: str, bucket: str
) -> None:
    backend = _backend(s3_server, bucket)
    image = _image(16)
    backend.save(_lazy(image), PATH, axes="tczyx", chunks=(1, 1, 1, 70, 66))
    backend.build_pyramid(PATH, 2)
    paths = _dataset_paths(backend, bucket)
    generation = paths[0].split("/")[0]
    assert generation.startswith("gen-") and paths == [f"{generation}/{k}" for k in range(3)]
    keys = _keys(s3_server, bucket, f"{PATH}/")
    assert all(k == f"{PATH}/zarr.json" or k.startswith(f"{PATH}/{generation}/") for k in keys), keys
    expected = image
    for level in range(3):
        np.testing.assert_array_equal(backend.load(f"{PATH}/{paths[level]}"), expected)
        expected = _downsample_yx(expected, "tczyx")
