"""``polystore info``: one array, image, store or file in detail."""

from __future__ import annotations

import json
import math
import os
from collections import Counter
from pathlib import Path
from typing import Any

import click

from polystore.cli._common import disk_array_header, human_size, read_zarr_meta, tree_size
from polystore.path_kinds import guess_backend, is_url

__all__ = ["info", "zarr_info", "disk_info"]


def _nbytes(shape: Any, dtype: Any) -> int:
    import numpy as np

    return int(math.prod(shape)) * int(np.dtype(dtype).itemsize)


def _codec_text(meta: dict[str, Any]) -> str:
    """``"blosc lz4 level 1 (shuffle)"`` from v3 codecs or a v2 compressor."""
    if "codecs" in meta:
        parts = []
        for codec in meta["codecs"]:
            name = codec.get("name")
            conf = codec.get("configuration") or {}
            if name == "bytes":
                continue
            if name == "blosc":
                parts.append(f"blosc {conf.get('cname')} level {conf.get('clevel')} ({conf.get('shuffle')})")
            elif name == "sharding_indexed":
                parts.append("sharded")
            else:
                parts.append(str(name) + (f" level {conf['level']}" if "level" in conf else ""))
        return ", ".join(parts) or "none"
    comp = meta.get("compressor")
    if not comp:
        return "none"
    return f"{comp.get('id')} {comp.get('cname', '')} level {comp.get('clevel', comp.get('level', '?'))}".replace("  ", " ")


def zarr_info(path: str) -> dict[str, Any]:
    """Everything ``info`` reports about a zarr node (local stores also get sizes and codecs)."""
    from polystore import BackendRegistry

    backend: Any = BackendRegistry().get_backend("zarr")
    if not backend.exists(path):
        raise click.ClickException(f"zarr: no such store, group or array: {path!r}")
    out: dict[str, Any] = {"path": path, "backend": "zarr", **backend.info(path)}
    if backend.is_dir(path) and "shape" in out:
        out["kind"] = "batch array"
    metadata = backend.load_metadata(path) if out["kind"] != "group" else None
    if metadata:
        out["metadata"] = metadata
    if is_url(path):
        return out
    node_dir = Path(path).parent if out["kind"] == "member" else Path(path)
    meta = read_zarr_meta(node_dir) or {}
    attrs = meta.get("attributes") or {}
    if out["kind"] == "member":
        out["member_of"] = str(node_dir)
        return out
    if out["kind"] == "group":
        return _group_summary(backend, path, out)
    if out["kind"] == "batch array":
        names = (attrs.get("polystore") or {}).get("names") or []
        out["members"] = len([n for n in names if n is not None])
    arrays = [(node_dir, meta)]
    ome = attrs.get("ome") if isinstance(attrs.get("ome"), dict) else attrs
    if out["kind"] == "image" and isinstance(ome, dict) and ome.get("multiscales"):
        ms = ome["multiscales"][0]
        out["ome_version"] = ome.get("version") or ms.get("version")
        # reported below in detail (axes_detail, levels_detail, channels)
        for key in ("axes", "levels", "axis_names", "scale", "channel_axis", "channel_names", "channel_colors",
                    "contrast_limits"):
            out.pop(key, None)
        out["axes_detail"] = [
            {k: a[k] for k in ("name", "type", "unit") if k in a} if isinstance(a, dict) else {"name": a}
            for a in ms.get("axes", [])
        ]
        levels = []
        arrays = []
        for ds in ms.get("datasets", []):
            level_dir = node_dir / str(ds["path"])
            level_meta = read_zarr_meta(level_dir) or {}
            arrays.append((level_dir, level_meta))
            scale = next((t.get("scale") for t in ds.get("coordinateTransformations", []) if t.get("type") == "scale"), None)
            levels.append({"path": ds["path"], "shape": level_meta.get("shape"), "scale": scale})
        out["levels_detail"] = levels
        omero = ome.get("omero") or {}
        if omero.get("channels"):
            out["channels"] = [
                {"label": c.get("label"), "color": c.get("color")} for c in omero["channels"]
            ]
        if arrays:
            meta = arrays[0][1]
    out["compressor"] = _codec_text(meta)
    raw = sum(_nbytes(m.get("shape", ()), out.get("dtype") or "u1") for _d, m in arrays if m)
    stored = tree_size(node_dir)
    out["raw_bytes"] = raw
    out["stored_bytes"] = stored
    out["compression_ratio"] = round(raw / stored, 2) if stored else None
    return out


def _group_summary(backend: Any, path: str, out: dict[str, Any]) -> dict[str, Any]:
    from polystore.cli.ls import zarr_entries

    entries = list(zarr_entries(path, True, None, None))
    kinds = Counter(e.kind for e in entries)
    out["contains"] = dict(sorted(kinds.items()))
    raw = 0
    for e in entries:
        if e.kind in ("array", "image", "field") and e.shape is not None and e.dtype:
            raw += _nbytes(e.shape, e.dtype)
    stored = tree_size(path)
    out["raw_bytes"] = raw
    out["stored_bytes"] = stored
    out["compression_ratio"] = round(raw / stored, 2) if stored and raw else None
    out["children"] = [e.path for e in zarr_entries(path, False, None, None)]
    return out


def disk_info(path: str) -> dict[str, Any]:
    """Everything ``info`` reports about a local file or folder."""
    if os.path.isdir(path):
        counts: Counter[str] = Counter()
        total = 0
        for folder, _dirs, files in os.walk(path):
            for name in files:
                counts[os.path.splitext(name)[1].lower() or "(none)"] += 1
                total += os.path.getsize(os.path.join(folder, name))
        return {"path": path, "backend": "disk", "kind": "dir", "files": dict(sorted(counts.items())),
                "stored_bytes": total}
    if not os.path.isfile(path):
        raise click.ClickException(f"no such file or directory: {path!r}")
    from polystore.formats import codec_for

    out: dict[str, Any] = {"path": path, "backend": "disk", "kind": "file"}
    codec = codec_for(path)
    out["format"] = codec.name
    out.update(disk_array_header(path))
    out["stored_bytes"] = os.path.getsize(path)
    if "shape" in out:
        out["raw_bytes"] = _nbytes(out["shape"], out["dtype"])
        out["compression_ratio"] = round(out["raw_bytes"] / out["stored_bytes"], 2) if out["stored_bytes"] else None
    from polystore import DiskBackend

    metadata = DiskBackend().load_metadata(path)
    if metadata:
        out["metadata"] = metadata
    return out


def _render(report: dict[str, Any]) -> list[str]:
    lines = []
    for key, value in report.items():
        if key.endswith("_bytes"):
            value = f"{human_size(value)} ({value} bytes)"
        elif key == "levels_detail":
            value = "; ".join(f"{lv['path']}: {tuple(lv['shape'] or ())} scale {lv['scale']}" for lv in value)
            key = "levels"
        elif key == "axes_detail":
            value = ", ".join(
                a["name"] + (f" ({a['type']}" + (f", {a['unit']}" if "unit" in a else "") + ")" if "type" in a else "")
                for a in value
            )
            key = "axes"
        elif key == "channels":
            value = ", ".join(f"{c['label']} #{c['color']}" for c in value)
        elif key == "children":
            value = " ".join(value) or "-"
        elif isinstance(value, dict):
            value = json.dumps(value)
        elif isinstance(value, tuple):
            value = "(" + ", ".join(map(str, value)) + ")"
        lines.append(f"{key.replace('_', ' ') + ':':<19} {value}")
    return lines


@click.command("info")
@click.argument("path")
@click.option("--backend", type=click.Choice(["auto", "disk", "zarr"]), default="auto", show_default=True,
              help="Where PATH lives (auto: zarr for *.zarr paths, stores and URLs).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON object.")
def info(path: str, backend: str, as_json: bool) -> None:
    """Describe PATH: an array, OME-Zarr image, store, group, or a file.

    Shows shape, dtype, chunks, axes, OME metadata (levels, scales, channels),
    compressor, bytes stored and the compression ratio (raw bytes / stored).
    """
    chosen = guess_backend(path, backend)
    report = zarr_info(path) if chosen == "zarr" else disk_info(path)
    if as_json:
        click.echo(json.dumps(report, default=str))
    else:
        for line in _render(report):
            click.echo(line)
