"""The typed annotation model: :class:`Labels`, :class:`Points` and :class:`Shapes`.

Every object is validated when it is made, so a backend, codec or receiver
that holds one can rely on its rules (docs/annotations.md lists them):

- coordinates are finite float64, one column per axis, in the order of ``axes``;
- a label image has an integer (or bool) dtype and one dimension per axis;
- a shape has at least the vertices its type needs (polygon 3, path 2,
  rectangle and ellipse 4 corners, line exactly 2);
- a :class:`Points` holds at most :data:`MAX_COORDINATES` points and a
  :class:`Shapes` at most :data:`MAX_COORDINATES` vertices in all;
- properties are a table: 1-D columns of numbers, bools or strings, one value
  per point or shape, named differently from the axes.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, ClassVar

import numpy as np
import numpy.typing as npt

from polystore.exceptions import InvalidAnnotationError

__all__ = [
    "Labels",
    "Points",
    "Shapes",
    "Annotation",
    "AxesLike",
    "PropertiesLike",
    "SHAPE_TYPES",
    "MIN_VERTICES",
    "MAX_COORDINATES",
    "DEFAULT_AXES",
    "default_axes",
    "ANNOTATION_KINDS",
    "as_annotation",
    "rows_to_columns",
    "plane_of",
]

#: At most this many points in one :class:`Points`, or vertices in one :class:`Shapes`.
MAX_COORDINATES = 10_000_000
#: Axis names used when none are given: the last ``ndim`` of these.
DEFAULT_AXES = "tczyx"
#: Shape types (napari's names); ``polyline`` is accepted for ``path``.
SHAPE_TYPES: tuple[str, ...] = ("polygon", "path", "rectangle", "ellipse", "line")
#: The fewest vertices of each shape type (rectangles and ellipses: their 4 corners).
MIN_VERTICES: dict[str, int] = {"polygon": 3, "path": 2, "rectangle": 4, "ellipse": 4, "line": 2}
_EXACT_VERTICES = {"rectangle": 4, "ellipse": 4, "line": 2}
_SHAPE_ALIASES = {"polyline": "path", "rect": "rectangle", "oval": "ellipse"}

#: Axis names: a string of one-letter names (``"zyx"``) or a sequence of names.
AxesLike = str | Sequence[str]
#: A properties table: column name -> values (one per point or shape).
PropertiesLike = Mapping[str, Any]
FloatArray = npt.NDArray[np.float64]


def default_axes(ndim: int) -> tuple[str, ...]:
    """The axis names used for ``ndim`` dimensions when none are given (``2 -> ("y", "x")``)."""
    if not 1 <= ndim <= len(DEFAULT_AXES):
        raise InvalidAnnotationError(
            f"annotations: cannot name {ndim} axes by default (at most {len(DEFAULT_AXES)}); pass axes="
        )
    return tuple(DEFAULT_AXES[-ndim:])


def _axes(axes: AxesLike | None, ndim: int, what: str) -> tuple[str, ...]:
    if axes is None:
        return default_axes(ndim)
    names = tuple(axes)
    if not all(isinstance(name, str) and name for name in names):
        raise InvalidAnnotationError(f"{what}: axes must be non-empty strings, got {axes!r}")
    if len(set(names)) != len(names):
        raise InvalidAnnotationError(f"{what}: axes {names!r} repeat a name")
    if len(names) != ndim:
        raise InvalidAnnotationError(
            f"{what}: data has {ndim} dimension(s) but axes {names!r} name {len(names)}; "
            "give one axis name per dimension"
        )
    return names


def _coordinates(data: Any, axes: AxesLike | None, what: str) -> tuple[FloatArray, tuple[str, ...]]:
    """(N, D) finite float64 coordinates and their axes."""
    try:
        array = np.asarray(data, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise InvalidAnnotationError(f"{what}: coordinates are not numbers: {exc}") from None
    if array.ndim == 1 and array.size == 0:
        array = array.reshape(0, len(axes) if axes is not None else 2)
    if array.ndim != 2:
        raise InvalidAnnotationError(
            f"{what}: coordinates must be a 2-D (N, D) array, one row per point, got shape {array.shape}"
        )
    names = _axes(axes, array.shape[1], what)
    if not np.isfinite(array).all():
        bad = int(np.argwhere(~np.isfinite(array))[0][0])
        raise InvalidAnnotationError(f"{what}: coordinates must be finite; row {bad} is {array[bad].tolist()}")
    return array, names


def _properties(properties: PropertiesLike | None, n: int, axes: tuple[str, ...], what: str) -> dict[str, np.ndarray[Any, Any]]:
    table: dict[str, np.ndarray[Any, Any]] = {}
    for name, values in (properties or {}).items():
        if not isinstance(name, str) or not name:
            raise InvalidAnnotationError(f"{what}: property names must be non-empty strings, got {name!r}")
        if name in axes:
            raise InvalidAnnotationError(f"{what}: property {name!r} has the name of an axis; rename it")
        column = np.asarray(values)
        if column.dtype.kind == "O":
            if not all(isinstance(v, str) for v in column.ravel()):
                raise InvalidAnnotationError(
                    f"{what}: property {name!r} must hold numbers, bools or strings, not mixed objects"
                )
            column = column.astype(str)
        if column.dtype.kind not in "biufU":
            raise InvalidAnnotationError(
                f"{what}: property {name!r} has dtype {column.dtype}; use numbers, bools or strings"
            )
        if column.ndim != 1:
            raise InvalidAnnotationError(f"{what}: property {name!r} must be 1-D, got shape {column.shape}")
        if len(column) != n:
            raise InvalidAnnotationError(
                f"{what}: property {name!r} has {len(column)} value(s) but there are {n}; give one per item"
            )
        table[name] = column
    return table


def _same_table(a: Mapping[str, np.ndarray[Any, Any]], b: Mapping[str, np.ndarray[Any, Any]]) -> bool:
    if list(a) != list(b):
        return False
    return all(
        np.array_equal(a[k], b[k], equal_nan=a[k].dtype.kind == "f" and b[k].dtype.kind == "f") for k in a
    )


def _check_cap(count: int, what: str, unit: str) -> None:
    if count > MAX_COORDINATES:
        raise InvalidAnnotationError(
            f"{what}: {count} {unit} is more than the limit of {MAX_COORDINATES} per object; split it"
        )


class Labels:
    """An integer label image: 0 is background, each other value one object.

    ``data`` keeps the array given (no copy); ``axes`` names its dimensions
    (default: the last ``ndim`` of ``"tczyx"``). Float, complex and
    non-numeric dtypes are refused.
    """

    kind: ClassVar[str] = "labels"

    def __init__(self, data: Any, axes: AxesLike | None = None) -> None:
        array = np.asarray(data)
        what = "Labels"
        if array.dtype.kind not in "biu":
            hint = "; round or cast it, e.g. mask.astype(np.uint32)" if array.dtype.kind == "f" else ""
            raise InvalidAnnotationError(
                f"{what}: a label image must have an integer dtype, not {array.dtype}{hint}"
            )
        if array.ndim < 2:
            raise InvalidAnnotationError(f"{what}: a label image has at least 2 dimensions, got shape {array.shape}")
        self.data: np.ndarray[Any, Any] = array
        self.axes: tuple[str, ...] = _axes(axes, array.ndim, what)

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray[Any, Any]:
        """The label image as a NumPy array."""
        return self.data if dtype is None else self.data.astype(dtype)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Labels) and self.axes == other.axes and np.array_equal(self.data, other.data)

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Labels(shape={self.data.shape}, dtype={self.data.dtype}, axes={''.join(self.axes)!r})"


class Points:
    """N points in D dimensions, with an optional properties table (one row per point)."""

    kind: ClassVar[str] = "points"

    def __init__(self, data: Any, properties: PropertiesLike | None = None, axes: AxesLike | None = None) -> None:
        what = "Points"
        shape = getattr(data, "shape", None)
        if shape is not None and len(shape) >= 1:
            _check_cap(int(shape[0]), what, "points")  # before touching a huge array
        coords, names = _coordinates(data, axes, what)
        _check_cap(len(coords), what, "points")
        self.data: FloatArray = coords
        self.axes: tuple[str, ...] = names
        self.properties: dict[str, np.ndarray[Any, Any]] = _properties(properties, len(coords), names, what)

    def __len__(self) -> int:
        return len(self.data)

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Points)
            and self.axes == other.axes
            and np.array_equal(self.data, other.data)
            and _same_table(self.properties, other.properties)
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Points(n={len(self)}, axes={''.join(self.axes)!r}, properties={list(self.properties)})"


def _shape_types(shape_type: str | Iterable[str], n: int) -> list[str]:
    given = [shape_type] * n if isinstance(shape_type, str) else list(shape_type)
    if len(given) != n:
        raise InvalidAnnotationError(f"Shapes: {len(given)} shape type(s) for {n} shape(s); give one per shape")
    types = []
    for index, name in enumerate(given):
        canonical = _SHAPE_ALIASES.get(str(name).lower(), str(name).lower())
        if canonical not in SHAPE_TYPES:
            raise InvalidAnnotationError(
                f"Shapes: shape {index} has unknown type {name!r}; known: {', '.join(SHAPE_TYPES)}"
            )
        types.append(canonical)
    return types


class Shapes:
    """Shapes (polygons, paths, rectangles, ellipses, lines), each an (M, D) array of vertices.

    ``shape_type`` is one type for all or one per shape. Rectangles and
    ellipses are given by the 4 corners of their (bounding) box, as in napari.
    ``properties`` has one row per shape.
    """

    kind: ClassVar[str] = "shapes"

    def __init__(
        self,
        data: Sequence[Any],
        shape_type: str | Iterable[str] = "polygon",
        properties: PropertiesLike | None = None,
        axes: AxesLike | None = None,
    ) -> None:
        items = list(data)
        types = _shape_types(shape_type, len(items))
        total = sum(int(getattr(v, "shape", (len(v),))[0]) for v in items)
        _check_cap(total, "Shapes", "vertices")
        if axes is None and items:
            first = np.asarray(items[0])
            axes = default_axes(first.shape[1] if first.ndim == 2 else 2)
        names = _axes(axes, len(tuple(axes)), "Shapes") if axes is not None else default_axes(2)
        vertices: list[FloatArray] = []
        for index, (item, kind) in enumerate(zip(items, types)):
            coords, _ = _coordinates(item, names, f"Shapes: shape {index} ({kind})")
            need = MIN_VERTICES[kind]
            exact = _EXACT_VERTICES.get(kind)
            if len(coords) < need or (exact is not None and len(coords) != exact):
                rule = f"exactly {exact}" if exact is not None else f"at least {need}"
                raise InvalidAnnotationError(
                    f"Shapes: shape {index} is a {kind} with {len(coords)} vertices; a {kind} needs {rule}"
                )
            vertices.append(coords)
        self.data: list[FloatArray] = vertices
        self.shape_types: list[str] = types
        self.axes: tuple[str, ...] = names
        self.properties: dict[str, np.ndarray[Any, Any]] = _properties(properties, len(vertices), names, "Shapes")

    def __len__(self) -> int:
        return len(self.data)

    @property
    def n_vertices(self) -> int:
        """The number of vertices of all shapes together."""
        return sum(len(v) for v in self.data)

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, Shapes)
            and self.axes == other.axes
            and self.shape_types == other.shape_types
            and len(self.data) == len(other.data)
            and all(np.array_equal(a, b) for a, b in zip(self.data, other.data))
            and _same_table(self.properties, other.properties)
        )

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return (
            f"Shapes(n={len(self)}, vertices={self.n_vertices}, axes={''.join(self.axes)!r}, "
            f"properties={list(self.properties)})"
        )


#: Any annotation object.
Annotation = Labels | Points | Shapes

#: The kinds of annotation, as named by ``kind=`` and on the wire.
ANNOTATION_KINDS: tuple[str, ...] = ("labels", "points", "shapes")


def as_annotation(data: Any, kind: str, axes: AxesLike | None = None) -> Annotation:
    """``data`` as the annotation of ``kind`` (``"labels"``, ``"points"``, ``"shapes"``), validated.

    An annotation object of that kind is returned as it is; an array (or a
    list of vertex arrays for shapes) is wrapped, with ``axes`` if given.
    """
    types: dict[str, type[Labels] | type[Points] | type[Shapes]] = {"labels": Labels, "points": Points, "shapes": Shapes}
    if kind not in types:
        raise InvalidAnnotationError(f"annotations: unknown kind {kind!r}; known: image, {', '.join(ANNOTATION_KINDS)}")
    if isinstance(data, types[kind]):
        return data
    if isinstance(data, (Labels, Points, Shapes)):
        raise InvalidAnnotationError(f"annotations: kind={kind!r} given for a {type(data).__name__} object")
    return types[kind](data, axes=axes)


def rows_to_columns(rows: Iterable[Mapping[str, Any]]) -> dict[str, list[Any]]:
    """A properties table from one dict per item; keys missing from some rows are dropped."""
    items = list(rows)
    keys = list(items[0]) if items else []
    return {k: [row[k] for row in items] for k in keys if all(k in row for row in items)}


def plane_of(vertices: np.ndarray[Any, Any], axes: Sequence[str], what: str) -> tuple[float, ...]:
    """The values of the axes before ``y, x`` for one shape, which must be constant over it.

    2-D formats (ImageJ ROIs, GeoJSON) place a shape in one plane; this
    refuses axes not ending in ``y, x`` and shapes that leave their plane.
    """
    if tuple(axes[-2:]) != ("y", "x"):
        raise InvalidAnnotationError(f"{what}: a 2-D format needs the last two axes to be y, x; got {tuple(axes)}")
    lead = vertices[:, :-2]
    if len(lead) and not (lead == lead[0]).all():
        raise InvalidAnnotationError(
            f"{what}: the axes {tuple(axes[:-2])} must be constant over one shape (its plane)"
        )
    return tuple(float(v) for v in lead[0]) if len(lead) else tuple(0.0 for _ in axes[:-2])
