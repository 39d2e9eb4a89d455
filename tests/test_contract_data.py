"""Backend contract, data and listing: every backend keeps these promises (docs/backend-contract.md)."""

from __future__ import annotations

import numpy as np
import pytest
from contract_backends import Case, arr, backend_case  # noqa: F401  (fixture)

from polystore.exceptions import PathNotFoundError, StorageError


def test_save_then_load_gives_the_data_back(backend_case: Case) -> None:
    b, p = backend_case.backend, backend_case.p
    b.save(arr(1), p("d/a.npy"))
    np.testing.assert_array_equal(np.asarray(b.load(p("d/a.npy"))), arr(1))


def test_save_replaces_an_existing_file(backend_case: Case) -> None:
    b, p = backend_case.backend, backend_case.p
    b.save(arr(1), p("d/a.npy"))
    b.save(arr(2), p("d/a.npy"))
    np.testing.assert_array_equal(np.asarray(b.load(p("d/a.npy"))), arr(2))


def test_load_of_a_missing_path_is_file_not_found(backend_case: Case) -> None:
    b, p = backend_case.backend, backend_case.p
    b.save(arr(1), p("d/a.npy"))
    with pytest.raises(FileNotFoundError) as info:
        b.load(p("d/missing.npy"))
    assert isinstance(info.value, PathNotFoundError) and isinstance(info.value, StorageError)
    assert "missing.npy" in str(info.value)


def test_load_of_a_directory_is_a_directory_error(backend_case: Case) -> None:
    b, p = backend_case.backend, backend_case.p
    b.save(arr(1), p("d/sub/a.npy"))
    with pytest.raises(IsADirectoryError) as info:
        b.load(p("d/sub"))
    assert isinstance(info.value, StorageError)


def test_exists_is_file_is_dir(backend_case: Case) -> None:
    b, p = backend_case.backend, backend_case.p
    b.save(arr(1), p("d/sub/a.npy"))
    assert b.exists(p("d/sub/a.npy")) and b.is_file(p("d/sub/a.npy")) and not b.is_dir(p("d/sub/a.npy"))
    assert b.exists(p("d/sub")) and b.is_dir(p("d/sub")) and not b.is_file(p("d/sub"))
    assert not b.exists(p("d/nothing")) and not b.is_file(p("d/nothing")) and not b.is_dir(p("d/nothing"))


def test_list_files_sorted_filtered_recursive(backend_case: Case) -> None:
    b, p = backend_case.backend, backend_case.p
    for i, rel in enumerate(["d/b.npy", "d/a.npy", "d/c.tif", "d/sub/e.npy", "d/sub/deeper/f.npy"]):
        b.save(arr(i), p(rel))
    assert b.list_files(p("d")) == [p("d/a.npy"), p("d/b.npy"), p("d/c.tif")]
    assert b.list_files(p("d"), recursive=True) == [
        p("d/a.npy"), p("d/b.npy"), p("d/c.tif"), p("d/sub/deeper/f.npy"), p("d/sub/e.npy"),
    ]
    assert b.list_files(p("d"), pattern="a*") == [p("d/a.npy")]
    assert b.list_files(p("d"), extensions={".TIF"}) == [p("d/c.tif")]
    assert b.list_files(p("d"), extensions={"npy"}, recursive=True, pattern="[ef]*") == [
        p("d/sub/deeper/f.npy"), p("d/sub/e.npy"),
    ]
    assert all(type(path) is str for path in b.list_files(p("d"), recursive=True))


def test_list_dir_gives_sorted_names(backend_case: Case) -> None:
    b, p = backend_case.backend, backend_case.p
    b.save(arr(1), p("d/b.npy"))
    b.save(arr(2), p("d/a.npy"))
    b.save(arr(3), p("d/sub/c.npy"))
    assert b.list_dir(p("d")) == ["a.npy", "b.npy", "sub"]


def test_listing_a_missing_directory_is_file_not_found(backend_case: Case) -> None:
    b, p = backend_case.backend, backend_case.p
    b.save(arr(1), p("d/a.npy"))
    with pytest.raises(FileNotFoundError):
        b.list_files(p("nowhere"))
    with pytest.raises(FileNotFoundError):
        b.list_dir(p("nowhere"))


def test_listing_a_file_is_not_a_directory_error(backend_case: Case) -> None:
    b, p = backend_case.backend, backend_case.p
    b.save(arr(1), p("d/a.npy"))
    with pytest.raises(NotADirectoryError) as info:
        b.list_files(p("d/a.npy"))
    assert isinstance(info.value, StorageError)
    with pytest.raises(NotADirectoryError):
        b.list_dir(p("d/a.npy"))


def test_batches_keep_order_and_refuse_mismatched_lengths(backend_case: Case) -> None:
    b, p = backend_case.backend, backend_case.p
    paths = [p(f"batch/f{i}.npy") for i in range(4)]
    b.save_batch([arr(i) for i in range(4)], paths)
    got = b.load_batch([paths[2], paths[0]])
    np.testing.assert_array_equal(np.asarray(got[0]), arr(2))
    np.testing.assert_array_equal(np.asarray(got[1]), arr(0))
    with pytest.raises(ValueError):
        b.save_batch([arr(9)], [p("other/x.npy"), p("other/y.npy")])
    assert not b.exists(p("other/x.npy"))


def test_filemanager_batch_lengths_are_checked_before_writing(backend_case: Case) -> None:
    fm, p = backend_case.fm, backend_case.p
    with pytest.raises(ValueError):
        fm.save_batch([arr(1), arr(2)], [p("only/one.npy")], backend_case.name)
    assert not fm.exists(p("only/one.npy"), backend_case.name)


def test_stat_describes_files_directories_and_missing_paths(backend_case: Case) -> None:
    b, p = backend_case.backend, backend_case.p
    b.save(arr(1), p("d/a.npy"))
    assert b.stat(p("d/a.npy")) == {"type": "file", "path": p("d/a.npy"), "exists": True}
    assert b.stat(p("d")) == {"type": "directory", "path": p("d"), "exists": True}
    assert b.stat(p("d/none")) == {"type": "missing", "path": p("d/none"), "exists": False}
    assert b.is_symlink(p("d/a.npy")) is False
