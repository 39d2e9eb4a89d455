"""``.pt``/``.pth``: PyTorch tensors and state dicts (torch imported on first use)."""

from __future__ import annotations

from typing import Any

from polystore.exceptions import MissingDependencyError
from polystore.formats._codec import Codec


def _torch() -> Any:
    try:
        import torch
    except ImportError as exc:
        raise MissingDependencyError("torch", "torch", ".pt/.pth files") from exc
    return torch


class TorchCodec(Codec):
    """Anything ``torch.save`` writes; loaded with ``weights_only=True`` (no arbitrary pickle)."""

    name = "PyTorch"
    extensions = (".pt", ".pth")

    def write(self, data: Any, path: str, metadata: dict[str, Any] | None, **kwargs: Any) -> None:
        """Save with ``torch.save``; NumPy arrays are stored as tensors."""
        import numpy as np

        torch = _torch()
        if isinstance(data, np.ndarray):
            data = torch.from_numpy(np.ascontiguousarray(data))
        with open(path, "wb") as handle:
            torch.save(data, handle)

    def read(self, path: str, **kwargs: Any) -> Any:
        """Load tensors onto the CPU (``map_location=`` overrides)."""
        torch = _torch()
        return torch.load(path, map_location=kwargs.get("map_location", "cpu"), weights_only=True)
