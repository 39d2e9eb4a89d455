"""Arrays of other frameworks in and out, zero-copy where memory allows."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from polystore import FileManager, MissingDependencyError
from polystore.frameworks import framework_of, from_numpy, to_numpy


def test_torch_save_and_load(tmp_path: Path, fm: FileManager) -> None:
    torch = pytest.importorskip("torch")
    tensor = torch.arange(12, dtype=torch.float32).reshape(3, 4)
    fm.save(tensor, tmp_path / "t.npy", backend="disk")
    fm.save(tensor, tmp_path / "t.tif", backend="disk")
    np.testing.assert_array_equal(np.load(tmp_path / "t.npy"), tensor.numpy())
    loaded = fm.load(tmp_path / "t.tif", backend="disk", framework="torch")
    assert isinstance(loaded, torch.Tensor) and torch.equal(loaded, tensor)
    batch = fm.load_batch([tmp_path / "t.npy"], backend="disk", framework="torch")
    assert torch.equal(batch[0], tensor)


def test_torch_zero_copy_both_ways() -> None:
    torch = pytest.importorskip("torch")
    tensor = torch.zeros(4, 4, requires_grad=True)
    array = to_numpy(tensor)
    assert array.ctypes.data == tensor.data_ptr()
    back = from_numpy(array, "torch")
    assert back.data_ptr() == array.ctypes.data
    memory_fm = FileManager()
    memory_fm.save(tensor, "/t.npy", backend="memory")
    stored = memory_fm.load("/t.npy", backend="memory")
    assert isinstance(stored, torch.Tensor)  # memory keeps the object as given


def test_jax_save_and_load(tmp_path: Path, fm: FileManager) -> None:
    jnp = pytest.importorskip("jax.numpy")
    array = jnp.arange(6, dtype=jnp.float32).reshape(2, 3)
    assert framework_of(array) == "jax"
    fm.save(array, tmp_path / "j.npy", backend="disk")
    loaded = fm.load(tmp_path / "j.npy", backend="disk", framework="jax")
    assert type(loaded).__module__.startswith("jax")
    np.testing.assert_array_equal(np.asarray(loaded), np.asarray(array))


def test_unknown_and_missing_frameworks() -> None:
    with pytest.raises(ValueError, match="unknown framework"):
        from_numpy(np.zeros(1), "matlab")
    try:
        import cupy  # noqa: F401
    except ImportError:
        with pytest.raises(MissingDependencyError, match=r'polystore\[cupy\]'):
            from_numpy(np.zeros(1), "cupy")
    else:  # pragma: no cover - only where CuPy exists
        assert framework_of(from_numpy(np.zeros(1), "cupy")) == "cupy"


def test_non_arrays_pass_through() -> None:
    assert from_numpy({"a": 1}, "torch") == {"a": 1}
    assert to_numpy("text") == "text"


@pytest.mark.parametrize("framework", ["tensorflow", "cupy"])
def test_tensorflow_and_cupy_where_installed(tmp_path: Path, fm: FileManager, framework: str) -> None:
    module = pytest.importorskip(framework, reason=f"{framework} is not installed on this machine")
    data = np.arange(6, dtype=np.float32).reshape(2, 3)
    array = module.constant(data) if framework == "tensorflow" else module.asarray(data)
    fm.save(array, tmp_path / "x.npy", backend="disk")
    loaded = fm.load(tmp_path / "x.npy", backend="disk", framework=framework)
    assert framework_of(loaded) == framework
    np.testing.assert_array_equal(to_numpy(loaded), data)
