"""The existing package's lazy framework getters: ``get_torch()`` and friends.

Each imports its framework on first call and returns the module, or None when
it is not installed (or ``POLYSTORE_NO_GPU=1`` is set, as there). polystore
itself converts arrays through :mod:`polystore.frameworks`.
"""

from __future__ import annotations

import importlib
import os
from typing import Any

__all__ = ["get_torch", "get_jax", "get_jnp", "get_cupy", "get_tf"]


def _optional(module: str) -> Any:
    if os.environ.get("POLYSTORE_NO_GPU") == "1":
        return None
    try:
        return importlib.import_module(module)
    except ImportError:
        return None


def get_torch() -> Any:
    """The ``torch`` module, or None."""
    return _optional("torch")


def get_jax() -> Any:
    """The ``jax`` module, or None."""
    return _optional("jax")


def get_jnp() -> Any:
    """The ``jax.numpy`` module, or None."""
    return _optional("jax.numpy")


def get_cupy() -> Any:
    """The ``cupy`` module, or None."""
    return _optional("cupy")


def get_tf() -> Any:
    """The ``tensorflow`` module, or None."""
    return _optional("tensorflow")
