"""Object-store writes send each encoded chunk while the next ones are encoded (issue 14), on the moto S3 server."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

pytest.importorskip("s3fs")
pytest.importorskip("boto3")

from s3_testing import s3_options  # noqa: E402

from polystore.zarr._fs import _FsspecFS  # noqa: E402

pytestmark = pytest.mark.s3


def test_chunk_is_uploaded_before_the_next_is_produced(s3_server: str, bucket: str) -> None:
    fs = _FsspecFS("s3", s3_options(s3_server))
    probe = _FsspecFS("s3", s3_options(s3_server))  # a second handle: its own view of the bucket
    seen_before_next: list[bool] = []

    def items() -> Iterator[tuple[str, bytes]]:
        for i in range(3):
            if i:
                # the previous chunk must reach the server while this one is still being "encoded"
                deadline = time.monotonic() + 30
                while probe.read(f"{bucket}/a/c/{i - 1}") is None and time.monotonic() < deadline:
                    time.sleep(0.05)
                seen_before_next.append(probe.read(f"{bucket}/a/c/{i - 1}") is not None)
            yield f"{bucket}/a/c/{i}", bytes([i]) * 1000

    fs.write_many(items())
    assert seen_before_next == [True, True]
    assert [probe.read(f"{bucket}/a/c/{i}") for i in range(3)] == [bytes([i]) * 1000 for i in range(3)]


def test_a_failed_put_fails_the_write_after_the_others_stopped(s3_server: str, bucket: str) -> None:
    fs = _FsspecFS("s3", s3_options(s3_server), request_batch_bytes=2500)
    items = [(f"{bucket}/b/{i}", b"x" * 1000) for i in range(4)] + [("polystore-no-such-bucket-x/c/0", b"y")]
    items += [(f"{bucket}/b/{i}", b"x" * 1000) for i in range(4, 6)]
    with pytest.raises(OSError):
        fs.write_many(iter(items))


def test_an_encode_error_fails_the_write_after_started_puts_finished(s3_server: str, bucket: str) -> None:
    fs = _FsspecFS("s3", s3_options(s3_server))
    probe = _FsspecFS("s3", s3_options(s3_server))

    def items() -> Iterator[tuple[str, bytes]]:
        yield f"{bucket}/d/0", b"z" * 1000
        raise ValueError("encode failed")

    with pytest.raises(ValueError, match="encode failed"):
        fs.write_many(items())
    assert probe.read(f"{bucket}/d/0") == b"z" * 1000  # the started PUT ended before the error came out
