"""The local S3-protocol server (moto) the object-storage tests share.

``s3_server`` (session) starts ``moto_server`` on a free 127.0.0.1 port;
``bucket`` gives each test a fresh bucket; ``s3_options`` are the fsspec
storage options that reach it. conftest.py makes the fixtures available to
every test module.
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

__all__ = ["s3_server", "bucket", "s3_options"]


def _moto_server_command(port: int) -> list[str]:
    exe = shutil.which("moto_server") or str(Path(sys.executable).with_name("moto_server"))
    if not Path(exe).exists():
        pytest.skip("moto_server is not installed (pip install 'moto[server]')")
    return [exe, "-H", "127.0.0.1", "-p", str(port)]


@pytest.fixture(scope="session")
def s3_server() -> Iterator[str]:
    """Start moto's standalone S3 server on a free 127.0.0.1 port; yield its endpoint URL."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    proc = subprocess.Popen(
        _moto_server_command(port), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(url, timeout=1).close()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError(f"moto_server did not start on {url}") from None
            time.sleep(0.1)
    try:
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def s3_options(url: str) -> dict[str, Any]:
    """fsspec/s3fs storage options for the moto server at ``url``."""
    return {"key": "testing", "secret": "testing", "client_kwargs": {"endpoint_url": url, "region_name": "us-east-1"}}


@pytest.fixture
def bucket(s3_server: str) -> Iterator[str]:
    """A fresh bucket on the session's server, deleted afterwards."""
    boto3 = pytest.importorskip("boto3")
    name = f"polystore-{uuid.uuid4().hex[:12]}"
    client = boto3.client(
        "s3", endpoint_url=s3_server, aws_access_key_id="testing",
        aws_secret_access_key="testing", region_name="us-east-1",
    )
    client.create_bucket(Bucket=name)
    yield name
    # A task orphaned by a test (a dask worker whose client was killed) may still be
    # writing: empty the bucket until it stays empty.
    deadline = time.monotonic() + 120
    while True:
        for obj in client.list_objects_v2(Bucket=name).get("Contents", []):
            client.delete_object(Bucket=name, Key=obj["Key"])
        try:
            client.delete_bucket(Bucket=name)
            return
        except client.exceptions.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "BucketNotEmpty" or time.monotonic() > deadline:
                raise
        time.sleep(0.2)


