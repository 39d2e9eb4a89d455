"""s3fs storage options translated into tensorstore's S3 kvstore (issue 9's delegation of object-store I/O)."""

from __future__ import annotations

import os
import stat

import pytest

from polystore.zarr._ts_kvstore import kvstore_spec, shared_context
from tests.s3_testing import s3_options

ts = pytest.importorskip("tensorstore")


def test_explicit_keys_reach_the_server_through_a_private_file(s3_server: str, bucket: str) -> None:
    spec = kvstore_spec("s3", s3_options(s3_server), bucket, "p/")
    assert spec is not None and spec["endpoint"] == s3_server and spec["aws_region"] == "us-east-1"
    files = spec["aws_credentials"]
    for name in (files["credentials_file"], files["config_file"]):
        assert stat.S_IMODE(os.stat(name).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(os.path.dirname(files["credentials_file"])).st_mode) == 0o700
    assert "testing" not in repr({k: v for k, v in spec.items() if k != "aws_credentials"})
    plain, context = shared_context(spec)
    kv = ts.KvStore.open(plain, context=context).result()
    kv.write("k", b"pixels").result()
    import s3fs

    assert s3fs.S3FileSystem(**s3_options(s3_server)).cat(f"{bucket}/p/k") == b"pixels"
    assert shared_context(spec)[1] is context


@pytest.mark.parametrize(
    "options",
    [
        {"key": "a", "secret": "b", "session": object()},  # a live session: no counterpart
        {"key": "a"},  # half a credential
        {"client_kwargs": {"verify": False}},
        {"config_kwargs": {"signature_version": "s3"}},
        {"use_ssl": False},
    ],
)
def test_options_without_an_exact_counterpart_are_not_translated(options: dict) -> None:
    assert kvstore_spec("s3", options, "b", "p/") is None


def test_other_protocols_are_not_translated() -> None:
    assert kvstore_spec("gcs", {}, "b", "p/") is None


def test_anonymous_profile_default_and_requester_pays() -> None:
    assert kvstore_spec("s3", {"anon": True}, "b", "")["aws_credentials"] == {"type": "anonymous"}
    assert kvstore_spec("s3", {"profile": "lab"}, "b", "")["aws_credentials"] == {"type": "profile", "profile": "lab"}
    spec = kvstore_spec("s3", {"requester_pays": True}, "b", "")
    assert spec["aws_credentials"] == {"type": "default"} and spec["requester_pays"] is True
