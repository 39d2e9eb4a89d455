"""Backend contract, directories, copy/move/delete, symlinks and the capability gate."""

from __future__ import annotations

import numpy as np
import pytest
from contract_backends import Case, arr, backend_case  # noqa: F401  (fixture)

from polystore.exceptions import PathExistsError, StorageError, UnsupportedOperationError


def _same(case: Case, path: str, expected: np.ndarray) -> None:
    np.testing.assert_array_equal(np.asarray(case.backend.load(case.p(path))), expected)


def test_ensure_directory_is_idempotent_and_returns_str(backend_case: Case) -> None:
    backend_case.skip_unless("supports_directories")
    b, p = backend_case.backend, backend_case.p
    first = b.ensure_directory(p("made/deep"))
    assert isinstance(first, str) and b.ensure_directory(p("made/deep")) == first
    assert b.is_dir(p("made/deep")) and b.is_dir(p("made"))


def test_delete_file_directory_and_missing(backend_case: Case) -> None:
    backend_case.skip_unless("supports_directories")
    b, p = backend_case.backend, backend_case.p
    b.save(arr(1), p("d/a.npy"))
    b.save(arr(2), p("d/sub/b.npy"))
    b.delete(p("d/a.npy"))
    assert not b.exists(p("d/a.npy"))
    with pytest.raises(FileNotFoundError):
        b.delete(p("d/a.npy"))
    with pytest.raises(IsADirectoryError) as info:  # an OSError too, as the existing package raised
        b.delete(p("d"))
    assert isinstance(info.value, StorageError) and isinstance(info.value, OSError)
    _same(backend_case, "d/sub/b.npy", arr(2))  # nothing was deleted
    b.delete(p("d"), recursive=True)
    assert not b.exists(p("d"))


def test_delete_all_removes_a_tree_or_a_file(backend_case: Case) -> None:
    backend_case.skip_unless("supports_directories")
    b, p = backend_case.backend, backend_case.p
    b.save(arr(1), p("t/x/a.npy"))
    b.save(arr(2), p("t/b.npy"))
    b.delete_all(p("t/b.npy"))
    assert not b.exists(p("t/b.npy"))
    b.delete_all(p("t"))
    assert not b.exists(p("t")) and not b.exists(p("t/x/a.npy"))
    with pytest.raises(FileNotFoundError):
        b.delete_all(p("t"))


def test_copy_and_move_a_file(backend_case: Case) -> None:
    backend_case.skip_unless("supports_directories")
    b, p = backend_case.backend, backend_case.p
    b.save(arr(1), p("d/a.npy"))
    b.copy(p("d/a.npy"), p("e/copy.npy"))
    _same(backend_case, "e/copy.npy", arr(1))
    _same(backend_case, "d/a.npy", arr(1))
    b.move(p("d/a.npy"), p("e/moved.npy"))
    _same(backend_case, "e/moved.npy", arr(1))
    assert not b.exists(p("d/a.npy"))


def test_copy_and_move_a_tree(backend_case: Case) -> None:
    backend_case.skip_unless("supports_directories")
    b, p = backend_case.backend, backend_case.p
    b.save(arr(1), p("src/a.npy"))
    b.save(arr(2), p("src/sub/b.npy"))
    b.copy(p("src"), p("dst"))
    assert b.list_files(p("dst"), recursive=True) == [p("dst/a.npy"), p("dst/sub/b.npy")]
    b.move(p("dst"), p("moved"))
    assert not b.exists(p("dst"))
    _same(backend_case, "moved/sub/b.npy", arr(2))


def test_a_copy_is_independent_of_its_source(backend_case: Case) -> None:
    backend_case.skip_unless("supports_directories")
    b, p = backend_case.backend, backend_case.p
    b.save(arr(1), p("d/a.npy"))
    b.copy(p("d/a.npy"), p("d/b.npy"))
    loaded = b.load(p("d/b.npy"))
    if isinstance(loaded, np.ndarray) and loaded.flags.writeable:
        loaded[...] = 0  # mutating what load gave must not reach the source
    _same(backend_case, "d/a.npy", arr(1))


@pytest.mark.parametrize("operation", ["copy", "move"])
def test_copy_and_move_never_overwrite(backend_case: Case, operation: str) -> None:
    backend_case.skip_unless("supports_directories")
    b, p = backend_case.backend, backend_case.p
    b.save(arr(1), p("d/a.npy"))
    b.save(arr(2), p("d/b.npy"))
    with pytest.raises(FileExistsError) as info:
        getattr(b, operation)(p("d/a.npy"), p("d/b.npy"))
    assert isinstance(info.value, StorageError)
    _same(backend_case, "d/b.npy", arr(2))  # the destination is untouched
    _same(backend_case, "d/a.npy", arr(1))  # and the source is still there
    b.save(arr(3), p("t1/x.npy"))
    b.save(arr(4), p("t2/x.npy"))
    with pytest.raises(FileExistsError):
        getattr(b, operation)(p("t1"), p("t2"))
    _same(backend_case, "t2/x.npy", arr(4))


@pytest.mark.parametrize("operation", ["copy", "move"])
def test_copy_and_move_of_a_batch_member_never_overwrite(backend_case: Case, operation: str) -> None:
    backend_case.skip_unless("supports_directories")
    b, p = backend_case.backend, backend_case.p
    b.save_batch([arr(i) for i in range(3)], [p(f"batch/f{i}.npy") for i in range(3)])
    b.save(arr(9), p("d/x.npy"))
    with pytest.raises(PathExistsError, match="x.npy"):
        getattr(b, operation)(p("batch/f1.npy"), p("d/x.npy"))
    with pytest.raises(PathExistsError, match="f2.npy"):
        getattr(b, operation)(p("d/x.npy"), p("batch/f2.npy"))
    _same(backend_case, "d/x.npy", arr(9))  # nothing overwritten, nothing moved away
    _same(backend_case, "batch/f1.npy", arr(1))
    _same(backend_case, "batch/f2.npy", arr(2))


def test_symlinks_resolve_and_never_overwrite(backend_case: Case) -> None:
    backend_case.skip_unless("supports_symlinks")
    b, p = backend_case.backend, backend_case.p
    b.save(arr(1), p("d/a.npy"))
    b.save(arr(2), p("d/b.npy"))
    b.create_symlink(p("d/a.npy"), p("links/a.npy"))
    assert b.is_symlink(p("links/a.npy")) and not b.is_symlink(p("d/a.npy"))
    assert b.exists(p("links/a.npy")) and b.is_file(p("links/a.npy"))
    _same(backend_case, "links/a.npy", arr(1))
    assert b.list_files(p("links")) == [p("links/a.npy")]
    stat = b.stat(p("links/a.npy"))
    assert stat["type"] == "symlink" and stat["exists"] is True and stat["path"] == p("links/a.npy")
    assert str(stat["target"]).endswith("a.npy")
    with pytest.raises(FileExistsError):
        b.create_symlink(p("d/b.npy"), p("links/a.npy"))
    _same(backend_case, "links/a.npy", arr(1))
    b.create_symlink(p("d/b.npy"), p("links/a.npy"), overwrite=True)
    _same(backend_case, "links/a.npy", arr(2))
    with pytest.raises(FileNotFoundError):
        b.create_symlink(p("d/none.npy"), p("links/none.npy"))


def test_symlinked_directory_lists_and_loads(backend_case: Case) -> None:
    backend_case.skip_unless("supports_symlinks")
    b, p = backend_case.backend, backend_case.p
    b.save(arr(1), p("real/a.npy"))
    b.create_symlink(p("real"), p("alias"))
    assert b.is_dir(p("alias")) and b.is_symlink(p("alias"))
    assert b.list_files(p("alias")) == [p("alias/a.npy")]
    _same(backend_case, "alias/a.npy", arr(1))
    b.delete(p("alias"))  # removes the link, not the target
    assert b.exists(p("real/a.npy")) and not b.exists(p("alias"))


def test_symlink_to_a_deleted_target_is_broken_not_an_error(backend_case: Case) -> None:
    backend_case.skip_unless("supports_symlinks")
    b, p = backend_case.backend, backend_case.p
    b.save(arr(1), p("d/a.npy"))
    b.create_symlink(p("d/a.npy"), p("d/link.npy"))
    b.delete(p("d/a.npy"))
    assert b.is_symlink(p("d/link.npy")) and not b.exists(p("d/link.npy"))
    assert b.stat(p("d/link.npy"))["exists"] is False
    with pytest.raises(FileNotFoundError):
        b.load(p("d/link.npy"))


@pytest.mark.parametrize(
    ("flag", "call"),
    [
        ("supports_directories", lambda fm, n, p: fm.delete(p("d"), n)),
        ("supports_directories", lambda fm, n, p: fm.copy(p("a"), p("b"), n)),
        ("supports_directories", lambda fm, n, p: fm.ensure_directory(p("d"), n)),
        ("supports_symlinks", lambda fm, n, p: fm.create_symlink(p("a"), p("b"), n)),
    ],
)
def test_one_capability_gate(backend_case: Case, flag: str, call: object) -> None:
    """FileManager and the backend refuse an operation behind a False flag with the same error."""
    if getattr(backend_case.backend, flag):
        pytest.skip(f"{backend_case.name} supports it")
    with pytest.raises(UnsupportedOperationError, match=flag) as info:
        call(backend_case.fm, backend_case.name, backend_case.p)  # type: ignore[operator]
    assert isinstance(info.value, NotImplementedError)
    method = {"supports_directories": "ensure_directory", "supports_symlinks": "create_symlink"}[flag]
    with pytest.raises(UnsupportedOperationError, match=flag):
        getattr(backend_case.backend, method)(backend_case.p("x"), *([backend_case.p("y")] if method == "create_symlink" else []))


def test_path_exists_error_names_path_and_backend(backend_case: Case) -> None:
    backend_case.skip_unless("supports_directories")
    b, p = backend_case.backend, backend_case.p
    b.save(arr(1), p("d/a.npy"))
    b.save(arr(2), p("d/b.npy"))
    with pytest.raises(PathExistsError) as info:
        b.copy(p("d/a.npy"), p("d/b.npy"))
    assert "b.npy" in str(info.value)
