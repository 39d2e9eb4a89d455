"""Chunk PUTs on S3 through tensorstore's kvstore (issue 9's delegation of object-store writes).

The session's moto S3 server, reached directly and through a gateway (a
real HTTP server in this process) that refuses chunk PUTs with 403, so a PUT
really fails on the wire for whichever client sent it. s3fs's requests are counted (not replaced) to see
which client sent the chunks.
"""

from __future__ import annotations

import http.client
import http.server
import multiprocessing
import pickle
import threading
import uuid
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

pytest.importorskip("zarr")
pytest.importorskip("s3fs")
pytest.importorskip("tensorstore")
boto3 = pytest.importorskip("boto3")
da = pytest.importorskip("dask.array")

from dist_testing import client, cluster  # noqa: E402,F401
from s3_testing import s3_options  # noqa: E402

from polystore.config import ZarrConfig  # noqa: E402
from polystore.exceptions import ImageSaveError  # noqa: E402
from polystore.zarr import ZarrBackend  # noqa: E402
from polystore.zarr._fs import _FsspecFS  # noqa: E402

pytestmark = pytest.mark.s3


def _img(seed: int, shape: tuple[int, ...] = (3, 40, 50)) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 60000, size=shape).astype(np.uint16)


@pytest.fixture
def s3fs_puts(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The keys s3fs PUTs from now on (its requests are still sent)."""
    import s3fs.core

    keys: list[str] = []
    real = s3fs.core.S3FileSystem._call_s3

    async def counted(self: object, method: str, *args: object, **kwargs: Any) -> object:
        if method == "put_object":
            keys.append(str(kwargs.get("Key")))
        return await real(self, method, *args, **kwargs)

    monkeypatch.setattr(s3fs.core.S3FileSystem, "_call_s3", counted)
    return keys


def _chunk_keys(keys: list[str]) -> list[str]:
    return [k for k in keys if "/c/" in k or k.rpartition("/")[2][:1].isdigit()]


def test_chunks_go_through_tensorstore_and_read_back(s3_server: str, bucket: str, s3fs_puts: list[str]) -> None:
    backend = ZarrBackend(root=f"s3://{bucket}/p", storage_options=s3_options(s3_server))
    assert backend.config.use_tensorstore
    img = _img(0)
    backend.save(img, "a.zarr", chunks=(1, 16, 16))
    np.testing.assert_array_equal(backend.load("a.zarr"), img)
    ome = _img(1, (2, 64, 64))
    backend.save(ome, "o.zarr", axes="zyx", pyramid_levels=1, chunks=(1, 32, 32))
    np.testing.assert_array_equal(backend.load("o.zarr"), ome)
    frames = [_img(i, (40, 50)) for i in range(4)]
    backend.save_batch(frames[:3], [f"b.zarr/f{i}" for i in range(3)], chunks=(1, 16, 16))
    backend.save(frames[3], "b.zarr/f3")  # append
    backend.save(frames[0][::-1].copy(), "b.zarr/f1")  # replace a member
    np.testing.assert_array_equal(backend.load("b.zarr/f3"), frames[3])
    np.testing.assert_array_equal(backend.load("b.zarr/f1"), frames[0][::-1])
    np.testing.assert_array_equal(backend.load("b.zarr/f2"), frames[2])
    assert s3fs_puts and not _chunk_keys(s3fs_puts), s3fs_puts  # s3fs PUT the metadata only


@pytest.mark.parametrize("how", ["switched off", "options without a counterpart"])
def test_s3fs_sends_the_chunks_when_switched_off_or_options_do_not_translate(
    s3_server: str, bucket: str, s3fs_puts: list[str], how: str
) -> None:
    options = s3_options(s3_server)
    config = ZarrConfig()
    if how == "switched off":
        config = ZarrConfig(use_tensorstore=False)
    else:
        options["use_ssl"] = False  # an s3fs option tensorstore has no exact counterpart for
    backend = ZarrBackend(root=f"s3://{bucket}/p", storage_options=options, config=config)
    img = _img(2)
    backend.save(img, "a.zarr", chunks=(1, 16, 16))
    np.testing.assert_array_equal(backend.load("a.zarr"), img)
    assert len(_chunk_keys(s3fs_puts)) == 3 * 3 * 4


def _write_in_child(options: dict[str, Any], bucket: str) -> None:
    fs = _FsspecFS("s3", options)  # a handle of the child's own (fsspec's are not fork-safe either)
    fs.write_many([(f"{bucket}/k/2", b"child")])
    assert fs.kv_puts is not None and fs.kv_puts._stores == {bucket: None}  # sent through s3fs


def test_a_pickled_handle_opens_its_own_kvstore_and_a_forked_child_sends_through_s3fs(
    s3_server: str, bucket: str
) -> None:
    """tensorstore aborts a forked child that uses it after its parent did (its threads are gone there)."""
    fs = _FsspecFS("s3", s3_options(s3_server))
    fs.write_many([(f"{bucket}/k/0", b"parent")])  # the parent's kvstore exists now
    assert fs.kv_puts is not None and fs.kv_puts._stores
    copy = pickle.loads(pickle.dumps(fs))  # what a dask worker gets: settings, no live store
    assert copy.kv_puts is not None and not copy.kv_puts._stores
    copy.write_many([(f"{bucket}/k/1", b"copy")])
    ctx = multiprocessing.get_context("fork")
    child = ctx.Process(target=_write_in_child, args=(s3_options(s3_server), bucket))
    child.start()
    child.join(60)
    assert child.exitcode == 0
    assert fs.read_many([f"{bucket}/k/{i}" for i in range(3)]) == [b"parent", b"copy", b"child"]


# --- a gateway in front of the moto server that refuses PUTs of chunk objects (403), as a bucket
# policy would: moto's own IAM checks reject s3fs's signed listings, so they cannot be used here ----------


class _Gateway(http.server.BaseHTTPRequestHandler):
    """Forwards every request to the moto server; a PUT of a key with ``/c/`` in it gets 403 AccessDenied."""

    protocol_version = "HTTP/1.1"
    upstream = ""

    def log_message(self, *args: Any) -> None:
        pass

    def _forward(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        if self.command == "PUT" and "/c/" in self.path:
            self._reply(403, {"Content-Type": "application/xml"},
                        b"<?xml version='1.0' encoding='UTF-8'?><Error><Code>AccessDenied</Code>"
                        b"<Message>Access Denied</Message></Error>")
            return
        host, port = self.upstream.split("//")[1].split(":")
        conn = http.client.HTTPConnection(host, int(port), timeout=60)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "expect")}
        conn.request(self.command, self.path, body=body, headers=headers)
        got = conn.getresponse()
        data = got.read()
        conn.close()
        out = {k: v for k, v in got.getheaders() if k.lower() not in ("transfer-encoding", "connection", "content-length")}
        self._reply(got.status, out, data)

    def _reply(self, status: int, headers: dict[str, str], data: bytes) -> None:
        self.send_response(status)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _forward


@pytest.fixture(scope="module")
def denied(s3_server: str) -> Iterator[dict[str, Any]]:
    """Storage options of an admin (the moto server) and of a writer whose chunk PUTs are refused."""
    handler = type("Gateway", (_Gateway,), {"upstream": s3_server})
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    name = f"polystore-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=s3_server, aws_access_key_id="testing", aws_secret_access_key="testing",
                 region_name="us-east-1").create_bucket(Bucket=name)
    writer = s3_options(f"http://127.0.0.1:{server.server_address[1]}")
    try:
        yield {"bucket": name, "admin": s3_options(s3_server), "writer": writer}
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize("use_tensorstore", [True, False])
def test_a_denied_chunk_put_raises_and_leaves_the_old_batch_or_nothing(
    denied: dict[str, Any], use_tensorstore: bool
) -> None:
    root = f"s3://{denied['bucket']}/{uuid.uuid4().hex[:8]}"
    config = ZarrConfig(use_tensorstore=use_tensorstore)
    admin = ZarrBackend(root=root, storage_options=denied["admin"], config=config)
    writer = ZarrBackend(root=root, storage_options=denied["writer"], config=config)
    frames = [_img(i, (40, 50)) for i in range(3)]
    admin.save_batch(frames[:2], ["b.zarr/f0", "b.zarr/f1"], chunks=(1, 16, 16))
    with pytest.raises(ImageSaveError, match=r"s3://.*b\.zarr"):
        writer.save(frames[2], "b.zarr/f2")  # an append: its chunks are denied, the metadata never written
    np.testing.assert_array_equal(admin.load("b.zarr/f1"), frames[1])
    assert writer.list_files("b.zarr") == ["b.zarr/f0", "b.zarr/f1"]
    with pytest.raises(ImageSaveError, match=r"s3://.*new\.zarr"):
        writer.save(frames[0], "new.zarr", chunks=(16, 16))
    assert not admin.exists("new.zarr")


def test_a_cluster_save_whose_chunk_put_is_denied_leaves_the_old_image(denied: dict[str, Any], client: Any) -> None:
    root = f"s3://{denied['bucket']}/{uuid.uuid4().hex[:8]}"
    admin = ZarrBackend(root=root, storage_options=denied["admin"])
    writer = ZarrBackend(root=root, storage_options=denied["writer"])
    old, new = _img(5, (2, 64, 64)), _img(6, (2, 64, 64))
    admin.save(old, "g.zarr/img", axes="zyx", chunks=(1, 32, 32))
    with pytest.raises(ImageSaveError):
        writer.save(da.from_array(new, chunks=(1, 32, 32)), "g.zarr/img", axes="zyx", chunks=(1, 32, 32),
                    client=client)
    np.testing.assert_array_equal(admin.load("g.zarr/img"), old)
