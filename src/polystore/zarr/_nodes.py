"""The store model: what is at a path (node), where it is (location), what is to be written (image)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from polystore.zarr._fs import _FS
from polystore.zarr._meta import _META
from polystore.zarr._model import ArrayMeta, GroupMeta, Multiscale, parse_doc


@dataclass
class _Node:
    """What is stored at a path inside a store.

    ``meta`` is the metadata document as read; ``parsed`` its validated,
    typed form (:mod:`polystore.zarr._model`), made once when the node is.
    """

    kind: str  # "array" | "group" | "member"
    path: str  # absolute fs path of the node (for members: the batch array's path)
    meta: dict[str, Any]
    zarr_format: int = 3
    index: int = -1  # for members: position along axis 0
    member_of: _Node | None = None
    parsed: ArrayMeta | GroupMeta | None = None

    def __post_init__(self) -> None:
        if self.parsed is None:
            self.parsed = parse_doc(self.meta, self.zarr_format, self.path)

    @classmethod
    def of(cls, path: str, parsed: ArrayMeta | GroupMeta) -> _Node:
        """The node of the validated metadata ``parsed`` found at ``path``."""
        return cls(parsed.node_type, path, parsed.raw, parsed.zarr_format, parsed=parsed)

    @property
    def array(self) -> ArrayMeta | None:
        """The typed array metadata (None for groups)."""
        return self.parsed if isinstance(self.parsed, ArrayMeta) else None

    @property
    def multiscale(self) -> Multiscale | None:
        """The validated OME multiscales of an image group (None otherwise)."""
        return self.parsed.multiscale if isinstance(self.parsed, GroupMeta) else None

    @property
    def attrs(self) -> dict[str, Any]:
        assert self.parsed is not None
        return self.parsed.attributes

    @property
    def ome(self) -> dict[str, Any] | None:
        """OME-NGFF attributes (0.5 under ``ome``, 0.4 at the top level)."""
        ms = self.multiscale
        return ms.ome if ms is not None else None

    @property
    def names(self) -> list[str | None] | None:
        """Member names of a batch (None entries were deleted)."""
        assert self.parsed is not None
        return self.parsed.names

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
