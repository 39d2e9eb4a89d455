"""Points and shapes sent plane by plane: ``index=`` appends to a layer (docs/annotations.md).

A points or shapes message with ``index={"t": 3}`` holds the items of one
plane of its layer. The layer keeps every plane received; a message for a
plane already there replaces that plane only. The layer's coordinates are the
stack axes (the index keys, in order of first appearance; a plane without a
key sits at 0 on it) followed by the message's own axes. A message whose
kind, axes or property names differ from the layer's starts the layer afresh;
so does one without ``index`` (it replaces the whole layer).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from polystore.annotations._model import Points, Shapes
from polystore.exceptions import InvalidAnnotationError

__all__ = ["PlaneStack", "check_plane_index"]

#: A plane's index, as sorted ``(axis, position)`` pairs.
PlaneKey = tuple[tuple[str, int], ...]


def check_plane_index(index: Mapping[str, Any], axes: tuple[str, ...], what: str) -> dict[str, int]:
    """``index`` as ``{axis: position}``: single-letter axes not in ``axes``, integers in ``[0, 2**31)``."""
    out: dict[str, int] = {}
    for key, value in index.items():
        if not (isinstance(key, str) and len(key) == 1 and key.isascii() and key.isalpha()):
            raise InvalidAnnotationError(f"{what}: index keys must be single axis letters, got {key!r}")
        if key in axes:
            raise InvalidAnnotationError(
                f"{what}: index axis {key!r} is also a coordinate axis of {''.join(axes)!r}; "
                "index names the plane's axes the coordinates do not have"
            )
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not 0 <= int(value) < 2**31:
            raise InvalidAnnotationError(f"{what}: index {key!r} must be an integer in [0, 2**31), got {value!r}")
        out[key] = int(value)
    return out


class PlaneStack:
    """The planes of one points or shapes layer, by index (newest message per plane)."""

    def __init__(self) -> None:
        self.axes: list[str] = []
        self.planes: dict[PlaneKey, Points | Shapes] = {}

    def _fits(self, annotation: Points | Shapes) -> bool:
        if not self.planes:
            return True
        first = next(iter(self.planes.values()))
        return (
            type(first) is type(annotation)
            and first.axes == annotation.axes
            and list(first.properties) == list(annotation.properties)
        )

    def put(self, annotation: Points | Shapes, index: Mapping[str, Any]) -> Points | Shapes:
        """Store ``annotation`` as the plane at ``index``; return the whole layer."""
        where = check_plane_index(index, annotation.axes, type(annotation).__name__)
        if not self._fits(annotation):
            self.axes, self.planes = [], {}
        for key in where:
            if key not in self.axes:
                self.axes.append(key)
        self.planes[tuple(sorted(where.items()))] = annotation
        return self.combined()

    def combined(self) -> Points | Shapes:
        """Every plane's items in one object, with the stack axes in front."""
        planes = list(self.planes.items())
        first = planes[0][1]
        axes = (*self.axes, *first.axes)
        columns = {name: np.concatenate([a.properties[name] for _, a in planes]) for name in first.properties}

        def lead(key: PlaneKey, rows: int) -> np.ndarray[Any, Any]:
            where = dict(key)
            return np.tile(np.array([where.get(a, 0) for a in self.axes], dtype=np.float64), (rows, 1))

        if isinstance(first, Points):
            blocks = [np.hstack([lead(key, len(a)), a.data]) for key, a in planes if isinstance(a, Points)]
            return Points(np.concatenate(blocks), properties=columns, axes=axes)
        vertices = [np.hstack([lead(key, len(v)), v]) for key, a in planes if isinstance(a, Shapes) for v in a.data]
        types = [t for _, a in planes if isinstance(a, Shapes) for t in a.shape_types]
        return Shapes(vertices, shape_type=types, properties=columns, axes=axes)
