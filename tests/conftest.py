"""Fixtures shared by the whole suite."""

from __future__ import annotations

import pytest

from s3_testing import bucket, s3_server  # noqa: F401  (fixtures shared by the S3 tests)

from polystore import BackendRegistry, FileManager


@pytest.fixture
def fm() -> FileManager:
    """A FileManager over a fresh registry (fresh memory backend each test)."""
    return FileManager(BackendRegistry())
