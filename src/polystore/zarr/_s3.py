"""S3 (s3fs, botocore) settings polystore chooses where the user chose none."""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

#: botocore's flexible checksums (since 1.36: a CRC32 computed for every upload and checked on
#: every download, in Python, by default) only where the request requires one, unless the user chose
_CHECKSUM_SETTINGS = ("request_checksum_calculation", "response_checksum_validation")


def s3_defaults(protocol: str, options: Mapping[str, Any]) -> dict[str, Any]:
    """``options`` for s3fs with botocore's per-request checksums off where the user set nothing.

    A setting in ``config_kwargs``, in the environment (``AWS_REQUEST_CHECKSUM_CALCULATION``,
    ``AWS_RESPONSE_CHECKSUM_VALIDATION``) or in the AWS config file's profile is kept as given.
    Other protocols get ``options`` unchanged.
    """
    out = dict(options)
    if protocol not in ("s3", "s3a"):
        return out
    given = dict(out.get("config_kwargs") or {})
    chosen = set(given) | {k for k in _CHECKSUM_SETTINGS if os.environ.get(f"AWS_{k.upper()}")}
    if not set(_CHECKSUM_SETTINGS) <= chosen:
        chosen |= _profile_settings(out.get("profile"))
    given.update({k: "when_required" for k in _CHECKSUM_SETTINGS if k not in chosen})
    out["config_kwargs"] = given
    return out


def _profile_settings(profile: Any) -> set[str]:
    """The checksum settings the AWS config file sets for ``profile`` (none when it cannot be read)."""
    try:
        import botocore.session

        scoped = botocore.session.Session(profile=profile).get_scoped_config()
    except Exception:  # noqa: BLE001 - no config file, an unknown profile: nothing chosen there
        return set()
    return {k for k in _CHECKSUM_SETTINGS if k in scoped}
