"""The backends the contract suite runs against, and a user-defined one.

``backend_case`` is parametrized over: disk, memory, memory spilling to zarr,
zarr (local), zarr on S3 (the local moto server) and ``DictBackend``, a
backend written the way a user writes one (subclass, ``_backend_type``,
registry lookup by name). docs/backend-contract.md is what they promise.
"""

from __future__ import annotations

import posixpath
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from polystore import BackendRegistry, FileManager, StorageBackend
from polystore.base import PathLike
from polystore.config import VFSConfig
from polystore.exceptions import PathIsADirectoryError, PathNotADirectoryError, PathNotFoundError
from polystore._listing import matches, normalize_extensions

BACKENDS = ["disk", "memory", "memory_spill", "zarr", "zarr_s3", "user"]

class DictBackend(StorageBackend):
    """A user's backend: files in a flat dict, folders implied by paths, no directory operations."""

    _backend_type = "contract_dict"
    supports_directories = False

    def __init__(self) -> None:
        self.files: dict[str, Any] = {}

    @staticmethod
    def _key(path: PathLike) -> str:
        return posixpath.normpath(str(path))

    def save(self, data: Any, file_path: PathLike, **kwargs: Any) -> None:
        key = self._key(file_path)
        if self.is_dir(key):
            raise PathIsADirectoryError(f"contract_dict: {key!r} is a directory", key, "contract_dict")
        self.files[key] = np.array(data)

    def load(self, file_path: PathLike, **kwargs: Any) -> Any:
        key = self._key(file_path)
        if key in self.files:
            return self.files[key]
        if self.is_dir(key):
            raise PathIsADirectoryError(f"contract_dict: {key!r} is a directory", key, "contract_dict")
        raise PathNotFoundError(key, "contract_dict")

    def _below(self, directory: PathLike) -> list[str]:
        key = self._key(directory)
        if key in self.files:
            raise PathNotADirectoryError(f"contract_dict: {key!r} is a file", key, "contract_dict")
        if not self.is_dir(key):
            raise PathNotFoundError(key, "contract_dict")
        return [k[len(key) + 1:] for k in self.files if k.startswith(key + "/")]

    def list_files(
        self,
        directory: PathLike,
        pattern: str | None = None,
        extensions: Iterable[str] | None = None,
        recursive: bool = False,
    ) -> list[str]:
        exts = normalize_extensions(extensions)
        key = self._key(directory)
        return sorted(
            key + "/" + rel
            for rel in self._below(directory)
            if (recursive or "/" not in rel) and matches(posixpath.basename(rel), pattern, exts)
        )

    def list_dir(self, path: PathLike) -> list[str]:
        return sorted({rel.split("/")[0] for rel in self._below(path)})

    def is_file(self, path: PathLike) -> bool:
        return self._key(path) in self.files

    def is_dir(self, path: PathLike) -> bool:
        prefix = self._key(path) + "/"
        return any(k.startswith(prefix) for k in self.files)


@dataclass
class Case:
    """One backend under test: the instance, its name, and where its test paths live."""

    name: str
    backend: StorageBackend
    p: Callable[[str], str]

    @property
    def fm(self) -> FileManager:
        """A FileManager with this backend registered under ``name``."""
        return FileManager(BackendRegistry({self.name: self.backend}))

    def skip_unless(self, flag: str) -> None:
        """Skip the test when the backend's capability ``flag`` is False."""
        if not getattr(self.backend, flag):
            pytest.skip(f"{self.name}: {flag} is False")


def _under(root: str) -> Callable[[str], str]:
    return lambda rel: root if rel == "" else root.rstrip("/") + "/" + rel


@pytest.fixture(params=BACKENDS)
def backend_case(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Case]:
    """Each backend of the contract suite, fresh for the test."""
    kind = request.param
    if kind == "disk":
        from polystore import DiskBackend

        yield Case(kind, DiskBackend(), _under(str(tmp_path / "c")))
    elif kind == "memory":
        from polystore import MemoryBackend

        yield Case(kind, MemoryBackend(), _under("/contract"))
    elif kind == "memory_spill":
        pytest.importorskip("zarr")
        from polystore import MemoryBackend

        # a 64-byte limit: every array spills to zarr right after it is saved
        config = VFSConfig(memory_limit_gb=64 / 1024**3, spill_path=str(tmp_path / "spill.zarr"))
        yield Case(kind, MemoryBackend(vfs_config=config), _under("/contract"))
    elif kind == "zarr":
        pytest.importorskip("zarr")
        from polystore.zarr import ZarrBackend

        yield Case(kind, ZarrBackend(), _under(str(tmp_path / "c.zarr")))
    elif kind == "zarr_s3":
        pytest.importorskip("zarr")
        pytest.importorskip("s3fs")
        from s3_testing import s3_options

        from polystore.zarr import ZarrBackend

        server = request.getfixturevalue("s3_server")
        name = request.getfixturevalue("bucket")
        backend = ZarrBackend(root=f"s3://{name}/c.zarr", storage_options=s3_options(server))
        yield Case(kind, backend, _under("top"))
    else:
        backend = BackendRegistry().get_backend("contract_dict")  # found by its _backend_type
        yield Case(kind, backend, _under("/contract"))


def arr(seed: int, shape: tuple[int, ...] = (3, 4)) -> np.ndarray:
    """A small uint16 array that differs per ``seed``."""
    return (np.arange(int(np.prod(shape)), dtype=np.uint16).reshape(shape) + seed * 100).astype(np.uint16)
