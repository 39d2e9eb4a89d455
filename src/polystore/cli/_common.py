"""Helpers shared by the commands: error lines, sizes, file and store summaries."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click

__all__ = [
    "STATE",
    "CliState",
    "one_line",
    "describe",
    "human_size",
    "tree_size",
    "disk_array_header",
    "read_zarr_meta",
]


@dataclass
class CliState:
    """Options that apply to the whole invocation."""

    debug: bool = False


#: The state of the running invocation (reset by :func:`polystore.cli.main`).
STATE = CliState()


def one_line(message: str) -> str:
    """The first non-empty line of ``message``."""
    for line in message.strip().splitlines():
        if line.strip():
            return line.strip()
    return ""


def describe(exc: BaseException) -> str:
    """One line naming what went wrong: the message, with the type for non-polystore errors."""
    from polystore.exceptions import StorageError

    message = str(exc).strip()
    first = one_line(message)
    if isinstance(exc, (StorageError, click.ClickException)):
        text = exc.format_message() if isinstance(exc, click.ClickException) else first
    elif isinstance(exc, OSError) and exc.strerror:
        text = f"{exc.strerror}: {exc.filename!r}" if exc.filename else first
    else:
        text = f"{type(exc).__name__}: {first}" if first else type(exc).__name__
    if "\n" in message:
        text += " (more with --debug)"
    return one_line(text)


def human_size(nbytes: int | None) -> str:
    """``1536`` -> ``"1.5 KiB"``; None -> ``"-"``."""
    if nbytes is None:
        return "-"
    size = float(nbytes)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{int(size)} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TiB"  # pragma: no cover - the loop returns


def tree_size(path: str | os.PathLike[str]) -> int:
    """Bytes of every file under ``path`` (or of ``path`` itself if it is a file)."""
    p = os.fspath(path)
    if os.path.isfile(p):
        return os.path.getsize(p)
    total = 0
    for folder, _dirs, files in os.walk(p):
        for name in files:
            try:
                total += os.path.getsize(os.path.join(folder, name))
            except OSError:
                pass
    return total


def disk_array_header(path: str) -> dict[str, Any]:
    """Shape, dtype (and for TIFF: axes, pages, ImageJ) of a .npy/.tif file without reading its pixels.

    Returns ``{}`` for other formats. Raises :class:`click.ClickException`
    naming the file if it cannot be parsed.
    """
    ext = os.path.splitext(path)[1].lower()
    try:
        if ext == ".npy":
            import numpy as np

            arr = np.load(path, mmap_mode="r", allow_pickle=False)
            return {"shape": tuple(arr.shape), "dtype": str(arr.dtype)}
        if ext in (".tif", ".tiff"):
            import tifffile

            with tifffile.TiffFile(path) as tif:
                series = tif.series[0]
                page = tif.pages.first
                return {
                    "shape": tuple(series.shape),
                    "dtype": str(series.dtype),
                    "axes": series.axes,
                    "pages": len(tif.pages),
                    "imagej": bool(tif.is_imagej),
                    "tiff_compression": getattr(page.compression, "name", str(page.compression)).lower(),
                }
    except Exception as exc:
        raise click.ClickException(f"cannot read {path!r}: {type(exc).__name__}: {one_line(str(exc))}") from exc
    return {}


def read_zarr_meta(node_dir: str | os.PathLike[str]) -> dict[str, Any] | None:
    """The metadata of the local zarr node at ``node_dir`` (v3 ``zarr.json``, or v2 merged), or None."""
    d = Path(node_dir)
    v3 = d / "zarr.json"
    try:
        if v3.is_file():
            meta: dict[str, Any] = json.loads(v3.read_text())
            return meta
        for name, kind in ((".zarray", "array"), (".zgroup", "group")):
            f = d / name
            if f.is_file():
                meta = json.loads(f.read_text())
                meta["node_type"] = kind
                attrs = d / ".zattrs"
                meta["attributes"] = json.loads(attrs.read_text()) if attrs.is_file() else {}
                return meta
    except (OSError, ValueError) as exc:
        raise click.ClickException(f"unreadable zarr metadata in {os.fspath(d)!r}: {exc}") from exc
    return None
