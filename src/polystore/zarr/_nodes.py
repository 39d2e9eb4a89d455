"""The store model: what is at a path (node), where it is (location), what is to be written (image)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from polystore.zarr._fs import _FS
from polystore.zarr._meta import _META


@dataclass
class _Node:
    """What is stored at a path inside a store."""

    kind: str  # "array" | "group" | "member"
    path: str  # absolute fs path of the node (for members: the batch array's path)
    meta: dict[str, Any]
    zarr_format: int = 3
    index: int = -1  # for members: position along axis 0
    member_of: _Node | None = None

    @property
    def attrs(self) -> dict[str, Any]:
        a = self.meta.get("attributes")
        return a if isinstance(a, dict) else {}

    @property
    def ome(self) -> dict[str, Any] | None:
        """OME-NGFF attributes (0.5 under ``ome``, 0.4 at the top level)."""
        attrs = self.attrs
        ome = attrs.get("ome")
        if isinstance(ome, dict) and ome.get("multiscales"):
            return ome
        if attrs.get("multiscales"):
            return attrs
        return None

    @property
    def names(self) -> list[str | None] | None:
        """Member names of a batch (None entries were deleted)."""
        info = self.attrs.get("polystore")
        if isinstance(info, dict) and isinstance(info.get("names"), list):
            names: list[str | None] = info["names"]
            return names
        return None

    @property
    def is_image(self) -> bool:
        return self.kind == "group" and self.ome is not None

    @property
    def is_file(self) -> bool:
        return self.kind == "member" or (
            (self.kind == "array" or self.is_image) and self.names is None
        )


def _is_hidden(name: str) -> bool:
    return name.startswith(".") or name == _META


@dataclass
class _Loc:
    fs: _FS
    store: str  # fs path of the store root
    key: str  # path inside the store ("" for the root)
    display: str  # the path as the user gave it

    @property
    def full(self) -> str:
        return self.fs.join(self.store, self.key) if self.key else self.store




@dataclass
class _Image:
    """One image (array + optional OME metadata) prepared for writing."""

    data: np.ndarray
    chunks: tuple[int, ...]
    axes: str | None
    pyramid_levels: int = 0
    channel_names: Sequence[str] | None = None
    channel_colors: Sequence[str] | None = None
    scale: Sequence[float] | None = None
    names: list[str] | None = None
    attrs: dict[str, Any] = field(default_factory=dict)
    zarr_format: int = 3
