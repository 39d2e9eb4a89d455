"""Qt-free logic of the Store browser and the reader: walk a folder or zarr store, open items.

Everything goes through :class:`polystore.FileManager`: folders with
``backend="disk"``, zarr stores with ``backend="zarr"`` (``list_dir``,
``is_dir``, ``is_file``, and :meth:`polystore.zarr.ZarrBackend.info` for the
kind, shape, axes, scale and OMERO channels of a node). The zarr backend also
lists the members of a batch array (``save_batch`` into ``plate.zarr/A01/img0``
... is ONE array at ``A01``), so they appear in the tree and open one by one.
An OME-NGFF HCS plate shows as plate -> well -> field (``info``'s ``hcs``).
Zarr data opens lazily (``fm.load(..., lazy=True)``: dask); an OME-Zarr image
with several pyramid levels opens as one multiscale layer.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["StoreNode", "StoreBrowserModel", "is_zarr_store", "open_zarr_layers", "zarr_layer"]

_IMAGE_SUFFIXES = (".tif", ".tiff", ".npy", ".npz", ".png", ".jpg", ".jpeg")
#: info() kinds of the zarr backend -> node kinds of the tree
_KINDS = {"array": "zarr-array", "image": "ome-image", "member": "zarr-item"}
#: info() ``hcs`` roles (OME-NGFF plates) -> node kinds of the tree
_HCS_KINDS = {"plate": "zarr-plate", "well": "zarr-well", "field": "ome-field"}


def _default_file_manager() -> Any:
    from polystore import BackendRegistry, FileManager

    return FileManager(BackendRegistry())


def _zarr_info(fm: Any, path: str) -> dict[str, Any] | None:
    """``ZarrBackend.info(path)``; None if no zarr node is there, {} if the backend cannot describe it."""
    info = getattr(fm.get_backend("zarr"), "info", None)
    if info is None:
        return {}
    try:
        described: dict[str, Any] = info(path)
    except Exception:  # noqa: BLE001 - not a zarr node (missing, plain folder, unreadable metadata)
        return None
    return described


def is_zarr_store(path: str | os.PathLike[str], file_manager: Any = None) -> bool:
    """True if ``path`` is a local folder holding a zarr node (store, group, array or OME image).

    Asked of the ``zarr`` backend of ``file_manager`` (a default
    :class:`polystore.FileManager` if None). Members of a batch array have no
    folder of their own and are not stores.
    """
    p = Path(path)
    if not p.is_dir():
        return False
    fm = file_manager if file_manager is not None else _default_file_manager()
    info = _zarr_info(fm, str(p))
    return info is not None and bool(info) and info.get("kind") != "member"


@dataclass(frozen=True)
class StoreNode:
    """One entry of the browsed tree."""

    path: str  # absolute path (for zarr nodes: the path the zarr backend is given)
    name: str
    kind: str  # "folder" | "file" | "zarr-group" | "zarr-batch" | "zarr-array" | "ome-image" | "zarr-item"
    #            | "zarr-plate" | "zarr-well" | "ome-field" (an HCS plate, its wells, their fields)
    children_known: bool = field(default=False, compare=False)

    @property
    def expandable(self) -> bool:
        """True for nodes with children (folders, zarr groups, batch arrays, plates, wells)."""
        return self.kind in ("folder", "zarr-group", "zarr-batch", "zarr-plate", "zarr-well")

    @property
    def openable(self) -> bool:
        """True for nodes that open as a layer (a batch array opens as one stack)."""
        return self.kind in ("file", "zarr-batch", "zarr-array", "ome-image", "ome-field", "zarr-item")

    @property
    def is_zarr(self) -> bool:
        """True for nodes read through the zarr backend."""
        return self.kind.startswith(("zarr-", "ome-"))


class StoreBrowserModel:
    """The tree under ``root`` (a folder or a zarr store) and how to open its items.

    Args:
        root: folder or zarr store to browse.
        file_manager: the :class:`polystore.FileManager` used for every listing
            and load (its ``disk`` and ``zarr`` backends); a default one if None.
    """

    def __init__(self, root: str | os.PathLike[str], file_manager: Any = None) -> None:
        self.root = str(Path(root).resolve())
        self.fm = file_manager if file_manager is not None else _default_file_manager()

    def root_node(self) -> StoreNode:
        """The node for ``root`` itself.

        Raises ``FileNotFoundError`` for a missing path and ``NotADirectoryError``
        for a plain file, with a message saying what to choose instead.
        """
        name = Path(self.root).name or self.root
        if is_zarr_store(self.root):
            return self._zarr_node(self.root, name)
        if not os.path.exists(self.root):
            raise FileNotFoundError(f"no such folder or zarr store: {self.root}")
        if not os.path.isdir(self.root):
            raise NotADirectoryError(
                f"{self.root} is a file, not a folder or a zarr store: choose the folder that holds it "
                "(or open the file with File > Open)"
            )
        return StoreNode(self.root, name, "folder")

    def children(self, node: StoreNode | None = None) -> list[StoreNode]:
        """The entries directly inside ``node`` (the root if None), expandable ones first."""
        node = node or self.root_node()
        if node.kind == "folder":
            return self._folder_children(node.path)
        if node.kind in ("zarr-group", "zarr-batch", "zarr-plate", "zarr-well"):
            return self._zarr_children(node)
        return []

    def _folder_children(self, path: str) -> list[StoreNode]:
        out: list[StoreNode] = []
        for name in self.fm.list_dir(path, backend="disk"):
            full = os.path.join(path, name)
            if is_zarr_store(full):
                out.append(self._zarr_node(full, name))
            elif self.fm.is_dir(full, backend="disk"):
                out.append(StoreNode(full, name, "folder"))
            elif name.lower().endswith(_IMAGE_SUFFIXES):
                out.append(StoreNode(full, name, "file"))
        return sorted(out, key=lambda n: (not n.expandable, n.name))

    def _zarr_node(self, path: str, name: str) -> StoreNode:
        """Classify the zarr node at ``path`` with ``is_file`` and ``info`` (no info: by ``is_file`` only)."""
        info = _zarr_info(self.fm, path) or {}
        if info.get("hcs") in _HCS_KINDS:
            return StoreNode(path, name, _HCS_KINDS[str(info["hcs"])])
        if self.fm.is_file(path, backend="zarr"):
            return StoreNode(path, name, _KINDS.get(str(info.get("kind")), "zarr-item"))
        # a group; a batch array (it has a shape) lists its members and also opens whole
        return StoreNode(path, name, "zarr-batch" if "shape" in info else "zarr-group")

    def _zarr_children(self, node: StoreNode) -> list[StoreNode]:
        out = []
        for name in self.fm.list_dir(node.path, backend="zarr"):
            full = f"{node.path.rstrip('/')}/{name}"
            try:
                if not (self.fm.is_dir(full, backend="zarr") or self.fm.is_file(full, backend="zarr")):
                    continue
                out.append(self._zarr_node(full, str(name)))
            except Exception:  # noqa: BLE001 - an entry the backend cannot describe
                continue
        return sorted(out, key=lambda n: (not n.expandable, n.name))

    def open(self, node: StoreNode) -> tuple[Any, dict[str, Any]]:
        """``(data, layer_kwargs)`` for an openable node; zarr data stays lazy."""
        if node.kind == "file":
            data = self.fm.load(node.path, backend="disk")
            return data, {"name": Path(node.name).stem}
        if node.openable and node.is_zarr:
            data, kwargs, _kind = zarr_layer(node.path, self.fm, name=Path(node.name).stem)
            return data, kwargs
        raise ValueError(f"{node.path} is a {node.kind}; expand it instead")


def zarr_layer(path: str, file_manager: Any = None, name: str | None = None) -> tuple[Any, dict[str, Any], str]:
    """The napari layer tuple ``(data, kwargs, "image")`` of the zarr array, image or member at ``path``.

    Data is lazy (``fm.load(path, backend="zarr", lazy=True)``); an OME image
    with several levels gives a list of levels (``multiscale=True``). Axis
    names, scale, and OMERO channel names, colours and windows come from
    ``ZarrBackend.info``; a channel axis of 1 to 32 channels is split into one
    layer per channel.
    """
    fm = file_manager if file_manager is not None else _default_file_manager()
    info = _zarr_info(fm, path) or {}
    name = name or Path(path.rstrip("/")).name.removesuffix(".zarr")
    levels = int(info.get("levels") or 1)
    if levels > 1:
        data: Any = [fm.load(path, backend="zarr", lazy=True, level=level) for level in range(levels)]
        shape = tuple(data[0].shape)
    else:
        data = fm.load(path, backend="zarr", lazy=True)
        shape = tuple(data.shape)
    kwargs = _layer_kwargs(info, shape, name)
    if levels > 1:
        kwargs["multiscale"] = True
    return data, kwargs, "image"


def open_zarr_layers(
    path: str, max_layers: int = 64, file_manager: Any = None
) -> list[tuple[Any, dict[str, Any], str]]:
    """napari layer tuples for the zarr node at ``path`` (lazy dask data).

    An array, OME image, batch array (the whole stack) or batch member is one
    layer (see :func:`zarr_layer`); a group gives one layer per array, image
    or batch array found under it (depth-first, at most ``max_layers``).
    """
    fm = file_manager if file_manager is not None else _default_file_manager()
    info = _zarr_info(fm, path)
    if info is None:
        raise ValueError(f"{path} is not a zarr store, group, array or image")
    if "shape" in info or not fm.is_dir(path, backend="zarr"):
        return [zarr_layer(path, fm)]
    layers: list[tuple[Any, dict[str, Any], str]] = []
    for child in sorted(fm.list_dir(path, backend="zarr")):
        if len(layers) >= max_layers:
            break
        layers.extend(open_zarr_layers(f"{path.rstrip('/')}/{child}", max_layers - len(layers), fm))
    return layers


def _layer_kwargs(info: dict[str, Any], shape: tuple[int, ...], name: str) -> dict[str, Any]:
    """napari kwargs from ``ZarrBackend.info``: axis names, scale, channels split, named and coloured."""
    ndim = len(shape)
    kwargs: dict[str, Any] = {"name": name}
    labels = info.get("axis_names")
    labels = [str(a) for a in labels] if isinstance(labels, list) and len(labels) == ndim else None
    scale = info.get("scale")
    scale = [float(v) for v in scale] if isinstance(scale, list) and len(scale) == ndim else None
    channel = info.get("channel_axis")
    if not isinstance(channel, int) or not 0 <= channel < ndim or not 1 <= shape[channel] <= 32:
        if labels is not None:
            kwargs["axis_labels"] = tuple(labels)
        if scale is not None:
            kwargs["scale"] = scale
        return kwargs
    # One layer per channel, named and coloured from the OMERO channels when it has them.
    count = shape[channel]
    kwargs["channel_axis"] = channel
    if labels is not None:
        kwargs["axis_labels"] = [tuple(lab for i, lab in enumerate(labels) if i != channel)] * count
    if scale is not None:
        kwargs["scale"] = [[v for i, v in enumerate(scale) if i != channel]] * count
    names = info.get("channel_names")
    if not isinstance(names, list) or len(names) != count:
        kwargs["name"] = [f"{name} c{i}" for i in range(count)]
        return kwargs
    kwargs["name"] = [str(label or f"{name} c{i}") for i, label in enumerate(names)]
    colors = info.get("channel_colors")
    if isinstance(colors, list) and len(colors) == count:
        kwargs["colormap"] = [_colormap(str(c)) for c in colors]
    limits = info.get("contrast_limits")
    if isinstance(limits, list) and len(limits) == count:
        kwargs["contrast_limits"] = [[float(lo), float(hi)] for lo, hi in limits]
    return kwargs


def _colormap(color: str) -> Any:
    """A black-to-colour napari colormap from an OME hex colour ("FF00FF")."""
    from napari.utils.colormaps import Colormap

    rgb = [int(color[i : i + 2], 16) / 255 for i in (0, 2, 4)]
    return Colormap([[0.0, 0.0, 0.0, 1.0], [*rgb, 1.0]], name=f"#{color.upper()}")
