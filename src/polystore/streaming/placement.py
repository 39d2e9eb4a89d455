"""Where a received frame goes: layer names from paths and N-D stack assembly.

Qt-free and napari-free: a viewer adapter (the napari plugin, a test, a
benchmark) feeds frames to :class:`Placer` and applies the
:class:`LayerUpdate` objects it returns.

Layer naming rule (documented in ``docs/streaming-protocol.md``): a frame goes
to the layer named in its header's ``layer`` field; without one, the layer is
named after ``path``: separators become ``/``, a leading ``/`` or ``./`` is
dropped, and the file extension is removed from the last component (known
image suffixes such as ``.ome.tif`` and ``.ome.zarr`` as a whole), so
``"A01/site1_c2.tif"`` goes to layer ``"A01/site1_c2"``.

Placement: a frame without ``index`` replaces what its layer shows (live view).
A frame with ``index`` (``{"t": 3, "c": 1}``) is written into an N-D stack
whose leading axes are the index axes (the header's ``axes`` letters minus the
frame's own trailing ones, else the index keys in order) and whose trailing
axes are the frame; the stack grows as larger indices arrive and every frame
is kept.
"""

from __future__ import annotations

import math
import posixpath
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from polystore.streaming.receiver import Frame

__all__ = [
    "layer_name_from_path",
    "default_frame_axes",
    "is_rgb_frame",
    "PlacementError",
    "StackBuffer",
    "LayerUpdate",
    "Placer",
    "DEFAULT_MAX_STACK_BYTES",
]

#: Largest N-D stack a :class:`Placer` builds by default (4 GiB).
DEFAULT_MAX_STACK_BYTES = 4 * 1024**3

_MULTI_SUFFIXES = (".ome.tiff", ".ome.tif", ".ome.zarr", ".nii.gz", ".tar.gz", ".roi.zip")


def layer_name_from_path(path: str) -> str:
    """The layer a frame saved at ``path`` goes to when no ``layer`` is given.

    >>> layer_name_from_path("A01/site1_c2.tif")
    'A01/site1_c2'
    >>> layer_name_from_path("/data/plate.ome.zarr")
    'data/plate'
    """
    text = str(path).replace("\\", "/")
    while text.startswith("./"):
        text = text[2:]
    text = text.lstrip("/")
    head, tail = posixpath.split(text)
    lowered = tail.lower()
    for suffix in _MULTI_SUFFIXES:
        if lowered.endswith(suffix) and len(tail) > len(suffix):
            tail = tail[: -len(suffix)]
            break
    else:
        stem, ext = posixpath.splitext(tail)
        if ext and stem:
            tail = stem
    name = posixpath.join(head, tail) if head else tail
    return name or "stream"


def default_frame_axes(ndim: int) -> str:
    """Axis letters for a frame's own dimensions when the sender gave none."""
    return "tczyx"[-ndim:] if ndim <= 5 else "".join(chr(ord("a") + i) for i in range(ndim - 5)) + "tczyx"


def is_rgb_frame(shape: tuple[int, ...], dtype: np.dtype[Any], axes: str | None) -> bool:
    """True when a frame is an RGB(A) image: shown as colour, not as a stack of channels.

    Either ``axes`` ends in ``c`` and the last dimension is 3 or 4 (any dtype),
    or no ``axes`` were given and the frame is ``uint8`` of shape (H, W, 3|4).
    """
    if len(shape) < 3 or shape[-1] not in (3, 4):
        return False
    if axes:
        return axes[-1] == "c"
    return len(shape) == 3 and dtype == np.uint8


class PlacementError(ValueError):
    """A frame cannot be placed (stack shape/dtype mismatch, stack too large)."""


class StackBuffer:
    """An N-D array that grows along its index axes as frames arrive.

    Capacity doubles along an axis that must grow, so filling ``t`` = 0..N-1
    copies O(N) frames in total; :meth:`view` is the filled region.
    """

    def __init__(
        self,
        index_axes: str,
        frame_axes: str,
        frame_shape: tuple[int, ...],
        dtype: np.dtype[Any],
        max_bytes: int = DEFAULT_MAX_STACK_BYTES,
    ) -> None:
        self.index_axes = index_axes
        self.frame_axes = frame_axes
        self.frame_shape = tuple(frame_shape)
        self.dtype = np.dtype(dtype)
        self.max_bytes = int(max_bytes)
        self.extent = [0] * len(index_axes)
        self._buffer = np.zeros((1,) * len(index_axes) + self.frame_shape, dtype=self.dtype)

    @property
    def axes(self) -> str:
        """All axis letters, index axes first."""
        return self.index_axes + self.frame_axes

    def view(self) -> np.ndarray[Any, Any]:
        """The filled region of the stack (a view, no copy)."""
        return self._buffer[tuple(slice(0, n) for n in self.extent)]

    def accepts(self, frame: np.ndarray[Any, Any]) -> bool:
        """True if ``frame`` has this stack's frame shape and dtype."""
        return bool(frame.shape == self.frame_shape and frame.dtype == self.dtype)

    def add_axis(self, letter: str) -> None:
        """Append an index axis of length 1 (a new key appeared in ``index``)."""
        pos = len(self.index_axes)
        self._buffer = np.expand_dims(self._buffer, pos)
        self.index_axes += letter
        self.extent.insert(pos, 1 if any(self.extent) else 0)

    def place(self, index: Mapping[str, int], frame: np.ndarray[Any, Any]) -> bool:
        """Write ``frame`` at ``index``; returns True if the visible shape changed."""
        if not self.accepts(frame):
            raise PlacementError(
                f"frame {frame.shape} {frame.dtype} does not fit a stack of "
                f"{self.frame_shape} {self.dtype} frames"
            )
        position = tuple(int(index.get(a, 0)) for a in self.index_axes)
        needed = [max(e, p + 1) for e, p in zip(self.extent, position)]
        capacity = self._buffer.shape[: len(self.index_axes)]
        if any(n > c for n, c in zip(needed, capacity)):
            self._grow(needed, capacity)
        self._buffer[position] = frame
        changed = needed != self.extent
        self.extent = needed
        return changed

    def _grow(self, needed: list[int], capacity: tuple[int, ...]) -> None:
        frame_bytes = math.prod(self.frame_shape) * self.dtype.itemsize
        if math.prod(needed) * frame_bytes > self.max_bytes:
            raise PlacementError(
                f"a stack of shape {tuple(needed) + self.frame_shape} exceeds the "
                f"{self.max_bytes} byte limit"
            )
        doubled = [max(n, 2 * c) if n > c else c for n, c in zip(needed, capacity)]
        if math.prod(doubled) * frame_bytes > self.max_bytes:
            doubled = [max(n, c) for n, c in zip(needed, capacity)]
        grown = np.zeros(tuple(doubled) + self.frame_shape, dtype=self.dtype)
        filled = tuple(slice(0, e) for e in self.extent)
        grown[filled] = self._buffer[filled]
        self._buffer = grown


@dataclass
class LayerUpdate:
    """What a viewer must show for one layer after a batch of frames."""

    name: str
    data: np.ndarray[Any, Any]
    stacked: bool
    axis_labels: tuple[str, ...]
    #: True when ``data`` is a new array object or shape (reassign the layer's data);
    #: False when a stack was written in place (a refresh is enough).
    reassign: bool
    display: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    frames: int = 1
    rgb: bool = False  # the last axis holds RGB(A) colour, not a slider
    sent: float = 0.0  # sender clock of the newest frame in this update
    received: float = 0.0
    path: str = ""


class Placer:
    """Turns received frames into one :class:`LayerUpdate` per touched layer."""

    def __init__(self, max_stack_bytes: int = DEFAULT_MAX_STACK_BYTES) -> None:
        self.max_stack_bytes = int(max_stack_bytes)
        self.stacks: dict[str, StackBuffer] = {}
        self.rejected = 0
        self.placed = 0
        self.last_error = ""
        #: The frames refused by the last :meth:`place` call, with the reason.
        self.refused: list[tuple[Frame, str]] = []

    def forget(self, name: str) -> None:
        """Drop the stack kept for layer ``name`` (e.g. the user deleted the layer)."""
        self.stacks.pop(name, None)

    def place(self, frames: Iterable[Frame]) -> list[LayerUpdate]:
        """Place ``frames`` (oldest first); invalid ones are counted in :attr:`rejected`.

        Each frame is placed on its own: one that cannot be placed (whatever
        the error) is refused and listed in :attr:`refused`, the others of
        the same batch are still shown.
        """
        updates: dict[str, LayerUpdate] = {}
        self.refused = []
        for frame in frames:
            try:
                update = self._place_one(frame, updates.get(frame.layer))
            except Exception as exc:  # noqa: BLE001 - one odd frame must not drop the batch
                reason = str(exc) if isinstance(exc, PlacementError) else f"cannot place the frame: {exc}"
                self.rejected += 1
                self.last_error = f"{frame.layer}: {reason}"
                self.refused.append((frame, self.last_error))
                continue
            self.placed += 1
            updates.pop(update.name, None)
            updates[update.name] = update
        return list(updates.values())

    def _place_one(self, frame: Frame, pending: LayerUpdate | None) -> LayerUpdate:
        header = frame.header
        name = frame.layer
        array = frame.data
        common: dict[str, Any] = {
            "display": dict(header.display),
            "meta": dict(header.meta),
            "sent": header.sent,
            "received": frame.received,
            "path": header.path,
        }
        rgb = is_rgb_frame(array.shape, array.dtype, header.axes)
        common["rgb"] = rgb
        if header.index is None:
            self.stacks.pop(name, None)  # a live frame takes the layer over
            if header.axes and array.ndim:
                frame_axes = header.axes[-array.ndim :]
            else:
                frame_axes = default_frame_axes(array.ndim - 1) + "c" if rgb else default_frame_axes(array.ndim)
            return LayerUpdate(name, array, False, tuple(frame_axes), True, **common)
        stack = self.stacks.get(name)
        index_axes, frame_axes = self._split_axes(header.axes, header.index, array.ndim, rgb)
        if stack is None or not stack.accepts(array):
            if stack is not None:
                raise PlacementError(
                    f"frame {array.shape} {array.dtype} does not match the stack's "
                    f"{stack.frame_shape} {stack.dtype} frames; save to another layer"
                )
            stack = StackBuffer(index_axes, frame_axes, array.shape, array.dtype, self.max_stack_bytes)
            self.stacks[name] = stack
            reassign = True
        else:
            reassign = False
            for letter in index_axes:
                if letter not in stack.index_axes:
                    stack.add_axis(letter)
                    reassign = True
        unknown = set(header.index) - set(stack.index_axes)
        if unknown:
            raise PlacementError(f"index axes {sorted(unknown)} are not axes of the stack {stack.axes!r}")
        try:
            reassign = stack.place(header.index, array) or reassign
        except Exception:
            if not any(stack.extent):
                self.stacks.pop(name, None)  # a stack that never took a frame is not kept
            raise
        if pending is not None and pending.stacked:
            reassign = reassign or pending.reassign
        return LayerUpdate(
            name,
            stack.view(),
            True,
            tuple(stack.axes),
            reassign,
            frames=(pending.frames + 1) if pending is not None else 1,
            **common,
        )

    @staticmethod
    def _split_axes(axes: str | None, index: Mapping[str, int], ndim: int, rgb: bool = False) -> tuple[str, str]:
        if axes:
            cut = len(axes) - ndim
            return axes[:cut], axes[cut:]
        index_axes = "".join(index)
        if rgb:
            return index_axes, "yxc"
        tail = "yx"[-min(ndim, 2) :] if ndim else ""
        pool = [c for c in "zcqrsuvwab" if c not in index_axes]
        return index_axes, "".join(pool[: ndim - len(tail)]) + tail
