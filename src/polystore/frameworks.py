"""The one place that converts arrays between NumPy and other frameworks.

Frameworks are recognised by the module of the array's type, so nothing is
imported until an array of that framework is actually seen (or asked for).
Conversions go through DLPack or the buffer protocol, zero-copy when the memory
allows (CPU tensors); device arrays (CuPy, GPU torch/JAX) are copied to the host.
"""

from __future__ import annotations

import importlib
from typing import Any

import numpy as np

from polystore.exceptions import MissingDependencyError

__all__ = ["FRAMEWORKS", "framework_of", "to_numpy", "from_numpy", "is_array"]

#: framework name -> (import name, pip extra)
FRAMEWORKS: dict[str, tuple[str, str]] = {
    "numpy": ("numpy", ""),
    "torch": ("torch", "torch"),
    "jax": ("jax", "jax"),
    "tensorflow": ("tensorflow", "tensorflow"),
    "cupy": ("cupy", "cupy"),
}

_ALIASES = {"np": "numpy", "pytorch": "torch", "tf": "tensorflow", "jaxlib": "jax"}


def framework_of(data: Any) -> str | None:
    """Name of the array framework ``data`` belongs to, or None if it is not an array."""
    if isinstance(data, np.ndarray):
        return "numpy"
    root = type(data).__module__.partition(".")[0]
    root = _ALIASES.get(root, root)
    if root in FRAMEWORKS:
        return root
    return None


def is_array(data: Any) -> bool:
    """True for a NumPy array or an array/tensor of a supported framework."""
    return framework_of(data) is not None


def to_numpy(data: Any) -> Any:
    """Return ``data`` as a NumPy array if it is a framework array; otherwise unchanged.

    CPU torch/JAX/TensorFlow tensors share memory with the result where their
    DLPack export allows; CuPy and GPU tensors are copied to host memory.
    """
    kind = framework_of(data)
    if kind is None or kind == "numpy":
        return data
    if kind == "torch":
        tensor = data.detach()
        if tensor.device.type != "cpu":
            tensor = tensor.cpu()
        if tensor.is_conj() or tensor.is_neg():
            tensor = tensor.resolve_conj().resolve_neg()
        return tensor.numpy()
    if kind == "cupy":
        return data.get()
    try:
        return np.from_dlpack(data)
    except (TypeError, RuntimeError, BufferError, AttributeError):
        return np.asarray(data)


def _import_framework(name: str) -> Any:
    key = _ALIASES.get(name.lower(), name.lower())
    if key not in FRAMEWORKS:
        raise ValueError(
            f"unknown framework {name!r}; choose one of {', '.join(sorted(FRAMEWORKS))}"
        )
    module, extra = FRAMEWORKS[key]
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(module, extra, f"framework={name!r}") from exc


def from_numpy(array: Any, framework: str | None) -> Any:
    """Convert a NumPy array (or any loaded object) to ``framework``'s array type.

    ``framework=None`` or ``"numpy"`` returns the input unchanged. Non-array
    data (dicts, strings, DataFrames) is returned unchanged whatever is asked.
    """
    if framework is None or not isinstance(array, np.ndarray):
        return array
    key = _ALIASES.get(framework.lower(), framework.lower())
    if key == "numpy":
        return array
    module = _import_framework(key)
    if key == "torch":
        if not array.flags.writeable:
            array = array.copy()  # torch cannot wrap read-only memory
        return module.from_numpy(array)
    if key == "jax":
        try:
            return module.dlpack.from_dlpack(array)
        except Exception:  # unaligned or unsupported dtype: JAX copies instead
            return module.numpy.asarray(array)
    if key == "tensorflow":
        return module.convert_to_tensor(array)
    if key == "cupy":
        return module.asarray(array)
    raise AssertionError(key)  # pragma: no cover - FRAMEWORKS is exhaustive
