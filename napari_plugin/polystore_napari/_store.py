"""Qt-free logic of the Store browser and the reader: walk a folder or zarr store, open items.

Folders are listed through :class:`polystore.FileManager` (``backend="disk"``);
zarr stores through the ``zarr`` backend when it is installed, else with zarr
directly. Zarr arrays open lazily (dask), OME-Zarr multiscale groups open as
one multiscale layer; disk files load through ``FileManager.load``.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["StoreNode", "StoreBrowserModel", "is_zarr_store", "open_zarr_layers", "ome_multiscales"]

_ZARR_MARKERS = ("zarr.json", ".zgroup", ".zarray")
_IMAGE_SUFFIXES = (".tif", ".tiff", ".npy", ".npz", ".png", ".jpg", ".jpeg")


def is_zarr_store(path: str | os.PathLike[str]) -> bool:
    """True if ``path`` is a local zarr v2/v3 store (a folder with zarr metadata)."""
    p = Path(path)
    return p.is_dir() and any((p / marker).exists() for marker in _ZARR_MARKERS)


def _read_attrs(node: Path) -> dict[str, Any]:
    for name in ("zarr.json", ".zattrs"):
        meta = node / name
        if meta.exists():
            try:
                doc = json.loads(meta.read_text())
            except (OSError, ValueError):
                return {}
            attrs = doc.get("attributes", {}) if name == "zarr.json" else doc
            return attrs if isinstance(attrs, dict) else {}
    return {}


def ome_multiscales(attrs: dict[str, Any]) -> list[dict[str, Any]] | None:
    """The OME-NGFF ``multiscales`` list of a group's attributes (v0.4 or v0.5), if any."""
    ms = attrs.get("ome", {}).get("multiscales") if isinstance(attrs.get("ome"), dict) else None
    ms = ms if ms is not None else attrs.get("multiscales")
    return ms if isinstance(ms, list) and ms else None


@dataclass(frozen=True)
class StoreNode:
    """One entry of the browsed tree."""

    path: str  # absolute path on disk (for zarr: store path + "/" + key)
    name: str
    kind: str  # "folder" | "file" | "zarr-group" | "zarr-array" | "ome-image" | "zarr-item"
    store: str = ""  # the zarr store root for zarr nodes
    key: str = ""  # path inside the zarr store
    children_known: bool = field(default=False, compare=False)

    @property
    def expandable(self) -> bool:
        """True for nodes with children (folders and zarr groups)."""
        return self.kind in ("folder", "zarr-group")

    @property
    def openable(self) -> bool:
        """True for nodes that open as a layer."""
        return self.kind in ("file", "zarr-array", "ome-image", "zarr-item")


class StoreBrowserModel:
    """The tree under ``root`` (a folder or a zarr store) and how to open its items."""

    def __init__(self, root: str | os.PathLike[str], file_manager: Any = None) -> None:
        from polystore import BackendRegistry, FileManager

        self.root = str(Path(root).resolve())
        self.fm = file_manager if file_manager is not None else FileManager(BackendRegistry())

    def root_node(self) -> StoreNode:
        """The node for ``root`` itself."""
        name = Path(self.root).name or self.root
        if is_zarr_store(self.root):
            return self._zarr_node(self.root, "", name)
        return StoreNode(self.root, name, "folder")

    def children(self, node: StoreNode | None = None) -> list[StoreNode]:
        """The entries directly inside ``node`` (the root if None), folders first."""
        node = node or self.root_node()
        if node.kind == "folder":
            return self._folder_children(node.path)
        if node.kind == "zarr-group":
            return self._zarr_children(node)
        return []

    def _folder_children(self, path: str) -> list[StoreNode]:
        out: list[StoreNode] = []
        for name in self.fm.list_dir(path, backend="disk"):
            full = os.path.join(path, name)
            if is_zarr_store(full):
                out.append(self._zarr_node(full, "", name))
            elif self.fm.is_dir(full, backend="disk"):
                out.append(StoreNode(full, name, "folder"))
            elif name.lower().endswith(_IMAGE_SUFFIXES):
                out.append(StoreNode(full, name, "file"))
        return sorted(out, key=lambda n: (not n.expandable, n.name))

    def _zarr_node(self, store: str, key: str, name: str) -> StoreNode:
        node_path = Path(store) / key if key else Path(store)
        full = str(node_path)
        if (node_path / ".zarray").exists():
            return StoreNode(full, name, "zarr-array", store, key)
        zarr_json = node_path / "zarr.json"
        if zarr_json.exists():
            try:
                node_type = json.loads(zarr_json.read_text()).get("node_type")
            except (OSError, ValueError):
                node_type = None
            if node_type == "array":
                return StoreNode(full, name, "zarr-array", store, key)
        if ome_multiscales(_read_attrs(node_path)):
            return StoreNode(full, name, "ome-image", store, key)
        return StoreNode(full, name, "zarr-group", store, key)

    def _zarr_children(self, node: StoreNode) -> list[StoreNode]:
        try:
            # Through FileManager: the zarr backend also lists virtual entries
            # (members of a batch array) that have no folder of their own.
            names = [str(n) for n in self.fm.list_dir(node.path, backend="zarr")]
            via_backend = True
        except Exception:  # noqa: BLE001 - zarr backend missing or failing: read the folder
            names = sorted(p.name for p in Path(node.path).iterdir() if p.is_dir())
            via_backend = False
        out = []
        for name in names:
            key = f"{node.key}/{name}" if node.key else name
            child = Path(node.store) / key
            full = str(child)
            if via_backend:
                try:
                    is_dir = bool(self.fm.is_dir(full, backend="zarr"))
                    is_file = bool(self.fm.is_file(full, backend="zarr"))
                except Exception:  # noqa: BLE001 - an entry the backend cannot describe
                    continue
                on_disk = any((child / marker).exists() for marker in _ZARR_MARKERS)
                if is_dir:
                    described = self._zarr_node(node.store, key, name) if on_disk else None
                    kind = "ome-image" if described is not None and described.kind == "ome-image" else "zarr-group"
                    out.append(StoreNode(full, name, kind, node.store, key))
                elif is_file:
                    out.append(self._zarr_node(node.store, key, name) if on_disk else
                               StoreNode(full, name, "zarr-item", node.store, key))
            elif any((child / marker).exists() for marker in _ZARR_MARKERS):
                out.append(self._zarr_node(node.store, key, name))
        return sorted(out, key=lambda n: (not n.expandable, n.name))

    def open(self, node: StoreNode) -> tuple[Any, dict[str, Any]]:
        """``(data, layer_kwargs)`` for an openable node; zarr data stays lazy."""
        if node.kind == "file":
            data = self.fm.load(node.path, backend="disk")
            return data, {"name": Path(node.name).stem}
        if node.kind == "zarr-item":
            try:
                data = self.fm.load(node.path, backend="zarr", lazy=True)
            except TypeError:
                data = self.fm.load(node.path, backend="zarr")
            return data, {"name": Path(node.name).stem}
        if node.kind in ("zarr-array", "ome-image"):
            layers = open_zarr_layers(node.store, node.key)
            if not layers:
                raise ValueError(f"{node.path} holds no arrays")
            data, kwargs, _kind = layers[0]
            return data, kwargs
        raise ValueError(f"{node.path} is a {node.kind}; expand it instead")


def _lazy(store: str, key: str) -> Any:
    import dask.array as da
    import zarr

    array = zarr.open_array(store=store, path=key, mode="r") if key else zarr.open_array(store=store, mode="r")
    return da.from_zarr(array)  # type: ignore[no-untyped-call]


def open_zarr_layers(store: str, key: str = "", max_layers: int = 64) -> list[tuple[Any, dict[str, Any], str]]:
    """napari layer tuples for the zarr node ``key`` in ``store`` (lazy dask data).

    An OME-Zarr multiscale group becomes one multiscale layer (axis names from
    its metadata); a plain array one layer; a plain group one layer per array
    found under it (depth-first, at most ``max_layers``).
    """
    base = Path(store) / key if key else Path(store)
    name = key.split("/")[-1] if key else base.name.removesuffix(".zarr")
    attrs = _read_attrs(base)
    multiscales = ome_multiscales(attrs)
    if multiscales:
        ms = multiscales[0]
        paths = [str(d["path"]) for d in ms.get("datasets", []) if isinstance(d, dict) and "path" in d]
        levels = [_lazy(store, f"{key}/{p}" if key else p) for p in paths]
        kwargs = _ome_layer_kwargs(ms, attrs, levels[0].shape, str(ms.get("name") or name))
        kwargs["multiscale"] = len(levels) > 1
        return [(levels if len(levels) > 1 else levels[0], kwargs, "image")]
    if (base / ".zarray").exists() or _is_v3_array(base):
        return [(_lazy(store, key), {"name": name}, "image")]
    layers: list[tuple[Any, dict[str, Any], str]] = []
    for child in sorted(p for p in base.iterdir() if p.is_dir()):
        if len(layers) >= max_layers:
            break
        child_key = f"{key}/{child.name}" if key else child.name
        if any((child / marker).exists() for marker in _ZARR_MARKERS):
            layers.extend(open_zarr_layers(store, child_key, max_layers - len(layers)))
    return layers


def _ome_layer_kwargs(
    ms: dict[str, Any], attrs: dict[str, Any], shape: tuple[int, ...], name: str
) -> dict[str, Any]:
    """napari kwargs from OME-NGFF metadata: axis names, scale, channels split and coloured."""
    ndim = len(shape)
    kwargs: dict[str, Any] = {"name": name}
    axes = ms.get("axes")
    labels: list[str] | None = None
    types: list[str] = []
    if isinstance(axes, list) and len(axes) == ndim:
        labels = [str(a.get("name", i)) if isinstance(a, dict) else str(a) for i, a in enumerate(axes)]
        types = [str(a.get("type", "")) if isinstance(a, dict) else "" for a in axes]
    scale: list[float] | None = None
    datasets = ms.get("datasets") or []
    if datasets and isinstance(datasets[0], dict):
        for transform in datasets[0].get("coordinateTransformations") or []:
            if isinstance(transform, dict) and transform.get("type") == "scale":
                values = transform.get("scale")
                if isinstance(values, list) and len(values) == ndim and all(
                    isinstance(v, (int, float)) and v > 0 for v in values
                ):
                    scale = [float(v) for v in values]
    channel = types.index("channel") if "channel" in types else None
    if channel is None or not 1 <= shape[channel] <= 32:
        if labels is not None:
            kwargs["axis_labels"] = tuple(labels)
        if scale is not None:
            kwargs["scale"] = scale
        return kwargs
    # One layer per channel, named and coloured from the omero block when it has them.
    count = shape[channel]
    kwargs["channel_axis"] = channel
    if labels is not None:
        kwargs["axis_labels"] = [tuple(lab for i, lab in enumerate(labels) if i != channel)] * count
    if scale is not None:
        kwargs["scale"] = [[v for i, v in enumerate(scale) if i != channel]] * count
    omero = attrs.get("omero") or (attrs.get("ome") or {}).get("omero")
    channels = omero.get("channels") if isinstance(omero, dict) else None
    if not isinstance(channels, list) or len(channels) != count or not all(isinstance(c, dict) for c in channels):
        kwargs["name"] = [f"{name} c{i}" for i in range(count)]
        return kwargs
    kwargs["name"] = [str(c.get("label") or f"{name} c{i}") for i, c in enumerate(channels)]
    colormaps = [_colormap(c.get("color")) for c in channels]
    if all(cmap is not None for cmap in colormaps):
        kwargs["colormap"] = colormaps
    windows = [c.get("window") for c in channels]
    if all(isinstance(w, dict) and _is_num(w.get("start")) and _is_num(w.get("end")) and w["start"] < w["end"]
           for w in windows):
        kwargs["contrast_limits"] = [[float(w["start"]), float(w["end"])] for w in windows]
    return kwargs


def _is_num(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _colormap(color: Any) -> Any:
    """A black-to-colour napari colormap from an OME hex colour ("FF00FF"), or None."""
    if not isinstance(color, str) or len(color) != 6:
        return None
    try:
        rgb = [int(color[i : i + 2], 16) / 255 for i in (0, 2, 4)]
    except ValueError:
        return None
    from napari.utils.colormaps import Colormap

    return Colormap([[0.0, 0.0, 0.0, 1.0], [*rgb, 1.0]], name=f"#{color.upper()}")


def _is_v3_array(path: Path) -> bool:
    meta = path / "zarr.json"
    if not meta.exists():
        return False
    try:
        return bool(json.loads(meta.read_text()).get("node_type") == "array")
    except (OSError, ValueError):
        return False
