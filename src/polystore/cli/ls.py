"""``polystore ls``: files, arrays and groups, with shape, dtype, chunks and size."""

from __future__ import annotations

import fnmatch
import json
import os
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from typing import Any

import click

from polystore._listing import is_working_file
from polystore.cli._common import disk_array_header, human_size, tree_size
from polystore.path_kinds import guess_backend, is_url, is_zarr_dir

__all__ = ["ls", "Entry", "disk_entries", "zarr_entries"]

_SIDECAR = ".meta.json"


@dataclass
class Entry:
    """One listed thing."""

    path: str
    kind: str  # dir | file | store | group | array | image | member | plate | well | field
    shape: tuple[int, ...] | None = None
    dtype: str | None = None
    chunks: tuple[int, ...] | None = None
    size: int | None = None
    error: str | None = None  # set (and kind "corrupt") when the file could not be read


def _wanted(name: str, pattern: str | None, exts: tuple[str, ...] | None) -> bool:
    if exts is not None and not name.lower().endswith(exts):
        return False
    return pattern is None or fnmatch.fnmatchcase(name, pattern)


def _disk_file(path: str, shown: str) -> Entry:
    header = disk_array_header(path)
    return Entry(shown, "file", header.get("shape"), header.get("dtype"), None, os.path.getsize(path))


def _listed_disk_file(path: str, shown: str) -> Entry:
    """The entry of a file inside a listed folder: an unreadable one is marked, not fatal."""
    try:
        return _disk_file(path, shown)
    except click.ClickException as exc:
        return Entry(shown, "corrupt", size=os.path.getsize(path), error=exc.format_message())


def disk_entries(
    root: str, recursive: bool, pattern: str | None, exts: tuple[str, ...] | None
) -> Iterator[Entry]:
    """Entries of a local folder; zarr stores inside it are one ``store`` entry each."""
    if os.path.isfile(root):
        yield _disk_file(root, root)
        return
    if not os.path.isdir(root):
        raise click.ClickException(f"no such file or directory: {root!r}")
    filtered = pattern is not None or exts is not None

    def walk(rel: str) -> Iterator[Entry]:
        folder = os.path.join(root, rel) if rel else root
        with os.scandir(folder) as it:
            children = sorted(it, key=lambda e: e.name)
        for entry in children:
            if entry.name.startswith(".") or entry.name.endswith(_SIDECAR) or is_working_file(entry.name):
                continue
            shown = os.path.join(rel, entry.name) if rel else entry.name
            if entry.is_dir():
                if is_zarr_dir(entry.path):
                    if _wanted(entry.name, pattern, exts) or not filtered:
                        yield Entry(shown + "/", "store", size=tree_size(entry.path))
                    continue
                if not filtered:
                    yield Entry(shown + "/", "dir")
                if recursive:
                    yield from walk(shown)
            elif entry.is_file() and _wanted(entry.name, pattern, exts):
                yield _listed_disk_file(entry.path, shown)

    yield from walk("")


def _zarr_entry(backend: Any, path: str, shown: str) -> Entry:
    info = backend.info(path)
    kind = info.get("hcs") or info["kind"]  # an HCS plate, well or field is shown as such
    local = not is_url(path)
    size = None if kind == "member" or not local else tree_size(path)
    return Entry(shown, kind, info.get("shape"), info.get("dtype"), info.get("chunks"), size)


def zarr_entries(
    root: str, recursive: bool, pattern: str | None, exts: tuple[str, ...] | None
) -> Iterator[Entry]:
    """Entries of a zarr store or group: groups, arrays, OME images and members of batch arrays."""
    from polystore import BackendRegistry

    backend: Any = BackendRegistry().get_backend("zarr")
    if not backend.exists(root):
        raise click.ClickException(f"zarr: no such store, group or array: {root!r}")
    if backend.is_file(root):
        yield _zarr_entry(backend, root, root)
        return
    filtered = pattern is not None or exts is not None

    def walk(rel: str) -> Iterator[Entry]:
        here = f"{root.rstrip('/')}/{rel}" if rel else root
        for name in backend.list_dir(here):
            path = f"{here.rstrip('/')}/{name}"
            shown = f"{rel}/{name}" if rel else name
            entry = _zarr_entry(backend, path, shown)
            is_dir = backend.is_dir(path)
            if is_dir and entry.kind in ("group", "plate", "well"):
                if not filtered:
                    entry.path += "/"
                    yield entry
            elif _wanted(name, pattern, exts):
                yield entry
            if is_dir and recursive:  # groups, and batch arrays (their members)
                yield from walk(shown)

    yield from walk("")


def _text(value: tuple[int, ...] | None) -> str:
    return "-" if value is None else "(" + ", ".join(map(str, value)) + ")"


@click.command("ls")
@click.argument("path", default=".")
@click.option(
    "--backend", type=click.Choice(["auto", "disk", "zarr"]), default="auto", show_default=True,
    help="Where PATH lives; auto: zarr for *.zarr paths, folders inside stores and URLs.",
)
@click.option("-r", "--recursive", is_flag=True, help="Descend into folders and groups.")
@click.option("--pattern", default=None, help="Glob on names, e.g. '*_c1*'.")
@click.option("--ext", "extensions", multiple=True, help="Only names with this extension (repeatable).")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line instead of a table.")
def ls(path: str, backend: str, recursive: bool, pattern: str | None, extensions: tuple[str, ...], as_json: bool) -> None:
    """List PATH: files, zarr stores, groups, arrays and OME-Zarr images.

    Arrays show shape, dtype, chunks and bytes stored; .npy and .tif files
    show shape and dtype (read from their headers only).
    """
    exts = tuple(e.lower() if e.startswith(".") else "." + e.lower() for e in extensions) or None
    chosen = guess_backend(path, backend)
    entries = zarr_entries(path, recursive, pattern, exts) if chosen == "zarr" else disk_entries(
        path, recursive, pattern, exts
    )
    unreadable = 0
    for entry in entries:
        if entry.error is not None:
            unreadable += 1
        if as_json:
            click.echo(json.dumps({k: list(v) if isinstance(v, tuple) else v for k, v in asdict(entry).items()}))
        else:
            note = f"  ({entry.error})" if entry.error else ""
            click.echo(
                f"{entry.kind:<7} {_text(entry.shape):<20} {entry.dtype or '-':<8} "
                f"{_text(entry.chunks):<18} {human_size(entry.size):>10}  {entry.path}{note}"
            )
    if unreadable:
        raise click.ClickException(f"{unreadable} file(s) could not be read (marked corrupt above)")
