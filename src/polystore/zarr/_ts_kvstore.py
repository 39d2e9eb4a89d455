"""fsspec/s3fs storage options as a tensorstore ``s3`` kvstore spec, where they translate exactly.

Issue 9's delegation rule sends object-store I/O to tensorstore where polystore's own
path (its codec over s3fs) is not 1.3x faster (docs/performance.md). Only options
whose meaning is the same in both are translated; for anything else
(:func:`kvstore_spec` returns ``None``) polystore keeps s3fs, so a user's settings are
never silently dropped.

Credentials: tensorstore 0.1.86's ``aws_credentials`` has no explicit key/secret
type, so an explicit ``key``/``secret``/``token`` is written to a credentials file
(and the config file tensorstore also needs; mode 0600, in a private 0700 directory, removed at exit) and named through the
``profile`` type. The process environment is never changed.
"""

from __future__ import annotations

import atexit
import hashlib
import json
import os
import shutil
import tempfile
import threading
from collections.abc import Mapping
from typing import Any

#: s3fs options tensorstore has an exact counterpart for (others: no translation, s3fs stays)
_TOP_LEVEL = {"key", "secret", "token", "anon", "profile", "endpoint_url", "requester_pays", "client_kwargs",
              "config_kwargs", "use_listings_cache", "listings_expiry_time", "skip_instance_cache"}
_CLIENT_KWARGS = {"endpoint_url", "region_name", "aws_access_key_id", "aws_secret_access_key", "aws_session_token"}
#: botocore config settings that change nothing tensorstore would do differently
_CONFIG_KWARGS = {"request_checksum_calculation", "response_checksum_validation", "max_pool_connections"}

_lock = threading.Lock()
_files: dict[str, str] = {}
_private_dir: list[str] = []


def _credentials_files(key: str, secret: str, token: str | None) -> dict[str, str]:
    """0600 AWS credentials and config files holding one profile ``polystore``; one pair per distinct key.

    tensorstore's profile provider needs both files to exist.
    """
    body = f"[polystore]\naws_access_key_id = {key}\naws_secret_access_key = {secret}\n"
    if token:
        body += f"aws_session_token = {token}\n"
    name = hashlib.sha256(body.encode()).hexdigest()[:16]
    with _lock:
        if name not in _files or not os.path.exists(_files[name]):
            if not _private_dir or not os.path.isdir(_private_dir[0]):
                _private_dir[:] = [tempfile.mkdtemp(prefix="polystore-aws-")]  # mode 0700
                atexit.register(shutil.rmtree, _private_dir[0], True)
            path = os.path.join(_private_dir[0], name)
            for suffix, text in ((".config", "[profile polystore]\n"), ("", body)):
                fd = os.open(path + suffix + ".tmp", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
                with os.fdopen(fd, "w") as out:
                    out.write(text)
                os.replace(path + suffix + ".tmp", path + suffix)
            _files[name] = path
        return {"credentials_file": _files[name], "config_file": _files[name] + ".config"}


def kvstore_spec(protocol: str, options: Mapping[str, Any], bucket: str, path: str) -> dict[str, Any] | None:
    """The tensorstore kvstore spec for ``s3://bucket/path`` opened with s3fs ``options``, or ``None``.

    ``None`` when the protocol is not S3 or an option has no exact tensorstore
    counterpart (then polystore reads and writes through s3fs as before).
    """
    if protocol not in ("s3", "s3a") or set(options) - _TOP_LEVEL:
        return None
    client = dict(options.get("client_kwargs") or {})
    config = dict(options.get("config_kwargs") or {})
    if set(client) - _CLIENT_KWARGS or set(config) - _CONFIG_KWARGS:
        return None
    key = options.get("key") or client.get("aws_access_key_id")
    secret = options.get("secret") or client.get("aws_secret_access_key")
    token = options.get("token") or client.get("aws_session_token")
    credentials: dict[str, Any]
    if options.get("anon"):
        credentials = {"type": "anonymous"}
    elif key and secret:
        credentials = {"type": "profile", "profile": "polystore",
                       **_credentials_files(str(key), str(secret), token and str(token))}
    elif key or secret or token:
        return None  # half a credential: let s3fs say what is wrong
    elif options.get("profile"):
        credentials = {"type": "profile", "profile": str(options["profile"])}
    else:
        credentials = {"type": "default"}
    spec: dict[str, Any] = {"driver": "s3", "bucket": bucket, "path": path, "aws_credentials": credentials}
    endpoint = options.get("endpoint_url") or client.get("endpoint_url")
    region = client.get("region_name") or os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION")
    if endpoint:
        spec["endpoint"] = str(endpoint).rstrip("/")
        spec["aws_region"] = str(region or "us-east-1")  # a custom endpoint has no region to discover
    elif region:
        spec["aws_region"] = str(region)
    if options.get("requester_pays"):
        spec["requester_pays"] = True
    return spec


def context_key(spec: Mapping[str, Any]) -> str:
    """A key naming the connection settings of a kvstore spec (one tensorstore Context per key)."""
    return json.dumps({k: v for k, v in spec.items() if k != "path"}, sort_keys=True)


_contexts: dict[str, Any] = {}


def _forget_contexts_in_child() -> None:
    # tensorstore's threads do not exist in a forked child: it builds its own contexts
    _contexts.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_contexts_in_child)


def shared_context(spec: Mapping[str, Any]) -> tuple[dict[str, Any], Any]:
    """``spec`` without its credentials, and the process's tensorstore Context holding them.

    One Context per connection settings, so loads reuse its credential provider and
    HTTP connections instead of building them per open.
    """
    import tensorstore as ts

    key = context_key(spec)
    with _lock:
        context = _contexts.get(key)
        if context is None:
            context = _contexts[key] = ts.Context({"aws_credentials": spec["aws_credentials"]})
    return {k: v for k, v in spec.items() if k != "aws_credentials"}, context
