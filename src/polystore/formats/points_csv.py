"""Points as CSV: one row per point, columns named by the axes, then the properties.

``z,y,x,id,score`` holds 3-D points with two properties. On loading
(``kind="points"``) the axis columns are those named in ``axes=``, or else the
leading columns named by one of the letters ``t, c, z, y, x``; every other
column is a property, typed as int, float or bool when all its values are,
else text.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from polystore.annotations import DEFAULT_AXES, InvalidAnnotationError, Points
from polystore.annotations._model import AxesLike

__all__ = ["write_points_csv", "read_points_csv"]


def _cell(value: Any) -> Any:
    return repr(float(value)) if isinstance(value, (float, np.floating)) else _plain(value)


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def write_points_csv(path: str, points: Points) -> None:
    """Write ``points`` to ``path`` (floats in their shortest exact form)."""
    import csv

    columns = [points.data[:, k] for k in range(points.data.shape[1])] + list(points.properties.values())
    with open(path, "w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([*points.axes, *points.properties])
        writer.writerows(zip(*[[_cell(v) for v in column] for column in columns]))


def _typed(values: list[str]) -> np.ndarray[Any, Any]:
    if values and all(v in ("True", "False") for v in values):
        return np.array([v == "True" for v in values])
    for kind in (np.int64, np.float64):
        try:
            return np.array(values, dtype=kind) if values else np.array([], dtype=str)
        except ValueError:
            continue
    return np.array(values, dtype=str)


def read_points_csv(path: str, axes: AxesLike | None = None) -> Points:
    """Read points written by :func:`write_points_csv` (or any CSV with axis-named columns)."""
    import csv

    with open(path, encoding="utf-8", newline="") as handle:
        rows = list(csv.reader(handle))
    if not rows:
        raise InvalidAnnotationError(f"points CSV {path!r} is empty: it has no header row")
    header, body = rows[0], rows[1:]
    if axes is None:
        names: list[str] = []
        for name in header:
            if len(name) != 1 or name not in DEFAULT_AXES or name in names:
                break
            names.append(name)
    else:
        names = list(axes)
    missing = [n for n in names if n not in header]
    if not names or missing:
        raise InvalidAnnotationError(
            f"points CSV {path!r}: no axis columns {missing or ''} in header {header}; name them with axes="
        )
    cols = {name: [row[i] for row in body] for i, name in enumerate(header)}
    data = np.array([cols[n] for n in names], dtype=np.float64).T.reshape(len(body), len(names))
    props = {name: _typed(values) for name, values in cols.items() if name not in names}
    return Points(data, properties=props, axes=names)
