"""``.csv``: 2-D numeric arrays, pandas DataFrames, CSV text and rows of dicts.

A string is written as it is (CSV text made elsewhere, e.g. by ``to_csv()``);
a dict or a list of dicts is written as rows under a header of their keys.
A file whose first row is numeric loads as a float array; a file with a header
row loads as a DataFrame (``as_dataframe=True`` forces one).
"""

from __future__ import annotations

import io
from typing import Any

import numpy as np

from polystore.annotations import Points, as_annotation
from polystore.exceptions import MissingDependencyError
from polystore.formats._codec import Codec, data_type_error
from polystore.formats.points_csv import read_points_csv, write_points_csv


def _is_dataframe(data: Any) -> bool:
    return type(data).__name__ == "DataFrame" and type(data).__module__.startswith("pandas")


def _first_row_numeric(path: str) -> bool:
    with open(path, encoding="utf-8") as handle:
        first = handle.readline()
    try:
        [float(cell) for cell in first.strip().split(",") if cell.strip()]
    except ValueError:
        return False
    return True


class CsvCodec(Codec):
    """Comma-separated values."""

    name = "CSV"
    extensions = (".csv",)
    kinds = frozenset({"points"})

    def write(self, data: Any, path: str, metadata: dict[str, Any] | None, **kwargs: Any) -> None:
        """Write a 1-D/2-D array (``fmt=`` as in np.savetxt), a DataFrame, a string, dict rows or Points."""
        if isinstance(data, Points) or kwargs.get("kind") == "points":
            write_points_csv(path, as_annotation(data, "points", kwargs.get("axes")))  # type: ignore[arg-type]
            return
        if isinstance(data, str):
            with open(path, "w", encoding="utf-8", newline="") as handle:
                handle.write(data)
            return
        rows = [data] if isinstance(data, dict) else data
        if isinstance(rows, list) and rows and all(isinstance(row, dict) for row in rows):
            with open(path, "w", encoding="utf-8", newline="") as handle:
                import csv
                writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
                writer.writeheader()
                writer.writerows(rows)
            return
        if _is_dataframe(data):
            with open(path, "w", encoding="utf-8", newline="") as handle:
                data.to_csv(handle, index=kwargs.get("index", False))
            return
        if isinstance(data, (list, tuple)):
            data = np.asarray(data)
        if not isinstance(data, np.ndarray) or data.ndim > 2 or data.dtype.kind not in "biuf":
            raise data_type_error(self, "1-D/2-D numeric arrays or pandas DataFrames", data)
        default_fmt = "%d" if data.dtype.kind in "biu" else "%.18g"
        buffer = io.StringIO()
        np.savetxt(buffer, np.atleast_2d(data) if data.ndim else data.reshape(1, 1),
                   delimiter=",", fmt=kwargs.get("fmt", default_fmt))
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(buffer.getvalue())

    def read(self, path: str, **kwargs: Any) -> Any:
        """Return a float array, or a DataFrame for a file with a header row.

        ``records=True`` returns the rows under the header as a list of dicts
        of strings (what the existing polystore package returned);
        ``kind="points"`` returns :class:`~polystore.annotations.Points`
        (see :mod:`polystore.formats.points_csv`).
        """
        if kwargs.get("kind") == "points":
            return read_points_csv(path, axes=kwargs.get("axes"))
        if kwargs.get("records"):
            with open(path, encoding="utf-8", newline="") as handle:
                import csv
                return list(csv.DictReader(handle))
        as_dataframe = kwargs.get("as_dataframe")
        if as_dataframe is None:
            as_dataframe = not _first_row_numeric(path)
        if as_dataframe:
            try:
                import pandas
            except ImportError as exc:
                raise MissingDependencyError("pandas", "test", "CSV files with a header row") from exc
            return pandas.read_csv(path)
        return np.loadtxt(path, delimiter=",", ndmin=2, dtype=kwargs.get("dtype", float))
