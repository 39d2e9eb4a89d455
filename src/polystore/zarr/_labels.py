"""OME-NGFF label images: ``save(mask, "<image>/labels/<name>", kind="labels")``.

The label image is written like any OME-Zarr image (multiscales, same axes and
scale as its image), then marked as labels, as OME-NGFF 0.4/0.5 describe:

- its group gets ``image-label`` = ``{"source": {"image": "../../"}}`` (0.5:
  inside ``attributes.ome``; 0.4: at the top of ``.zattrs`` with ``version``);
- the ``labels`` group beside the image's levels lists it in ``labels``.

napari-ome-zarr and ome-zarr-py's reader then show it as labels over the
image. Loading with ``kind="labels"`` returns a
:class:`~polystore.annotations.Labels` with the stored axes.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any, Protocol

from polystore.annotations import Labels, as_annotation
from polystore.base import PathLike
from polystore.exceptions import ImageLoadError, ImageSaveError, UnsupportedFormatError
from polystore.zarr._meta import _META, _dumps, _write_group
from polystore.zarr._nodes import _Loc, _Node

__all__ = ["save_labels", "load_labels"]


class _Backend(Protocol):
    def _locate(self, path: PathLike) -> _Loc: ...

    def _node(self, loc: _Loc) -> _Node | None: ...

    def save(self, data: Any, file_path: PathLike, **kwargs: Any) -> None: ...

    def load(self, file_path: PathLike, **kwargs: Any) -> Any: ...


def _check_kind(kwargs: Mapping[str, Any], where: str, data: Any = None) -> None:
    kind = kwargs.get("kind") or getattr(data, "kind", None)
    if kind != "labels":
        raise UnsupportedFormatError(
            f"zarr: cannot hold kind={kind!r} at {where!r}; zarr holds images and labels "
            "(save points and shapes to .csv, .geojson or .roi.zip)"
        )


def _image_of(backend: _Backend, loc: _Loc) -> tuple[_Loc, _Node]:
    parent_key, _, name = loc.key.rpartition("/")
    image_key, _, group = parent_key.rpartition("/")
    if group != "labels" or not name:
        raise ImageSaveError(
            f"zarr: labels go to '<image>/labels/<name>' (OME-NGFF), not {loc.display!r}; "
            "e.g. 'plate.zarr/A01/labels/nuclei'"
        )
    image_loc = _Loc(loc.fs, loc.store, image_key, loc.display.rstrip("/").rsplit("/", 2)[0])
    image = backend._node(image_loc)
    if image is None or image.multiscale is None:
        raise ImageSaveError(
            f"zarr: no OME-Zarr image at {image_loc.display!r} to hold labels {name!r}; "
            "save the image there first with axes="
        )
    return image_loc, image


def save_labels(backend: _Backend, data: Any, file_path: PathLike, kwargs: dict[str, Any]) -> None:
    """Write ``data`` as the OME label image ``<image>/labels/<name>`` at ``file_path``."""
    loc = backend._locate(file_path)
    _check_kind(kwargs, loc.display, data)
    _, image = _image_of(backend, loc)
    ms = image.multiscale
    assert ms is not None
    options = {k: v for k, v in kwargs.items() if k not in ("kind", "axes")}
    labels = as_annotation(data, "labels", kwargs.get("axes") or ms.axes)
    if not isinstance(labels, Labels):  # pragma: no cover - as_annotation returns the kind asked
        raise TypeError(type(labels))
    if labels.axes != ms.axes:
        raise ImageSaveError(
            f"zarr: labels {loc.display!r} have axes {''.join(labels.axes)!r} but their image has "
            f"{''.join(ms.axes)!r}; OME-NGFF labels share the image's axes"
        )
    if ms.datasets and ms.datasets[0].scale is not None:
        options.setdefault("scale", list(ms.datasets[0].scale))
    backend.save(labels.data, file_path, axes="".join(labels.axes), **options)
    node = backend._node(loc)
    assert node is not None
    name = loc.key.rpartition("/")[2]
    source = {"source": {"image": "../../"}}
    fs, label_path = loc.fs, loc.full
    group_path = label_path.rsplit("/", 1)[0]
    group = backend._node(_Loc(fs, loc.store, loc.key.rpartition("/")[0], loc.display))
    attrs = dict(group.attrs) if group is not None else {}
    if node.zarr_format == 2:
        meta = dict(node.attrs)
        meta["image-label"] = {"version": "0.4", **source}
        fs.write_atomic(fs.join(label_path, ".zattrs"), _dumps(meta))
        known = list(attrs.get("labels", []))
        attrs["labels"] = [*known, name] if name not in known else known
    else:
        doc = json.loads(fs.read(fs.join(label_path, _META)) or b"{}")
        doc.setdefault("attributes", {}).setdefault("ome", {})["image-label"] = source
        fs.write_atomic(fs.join(label_path, _META), _dumps(doc))
        ome = dict(attrs.get("ome", {}))
        ome.setdefault("version", "0.5")
        known = list(ome.get("labels", []))
        ome["labels"] = [*known, name] if name not in known else known
        attrs["ome"] = ome
    _write_group(fs, group_path, attrs, node.zarr_format)


def load_labels(backend: _Backend, file_path: PathLike, kwargs: dict[str, Any]) -> Labels:
    """The :class:`~polystore.annotations.Labels` stored at ``file_path`` (an OME image)."""
    loc = backend._locate(file_path)
    _check_kind(kwargs, loc.display)
    node = backend._node(loc)
    options = {k: v for k, v in kwargs.items() if k != "kind"}
    data = backend.load(file_path, **options)
    if node is None or node.multiscale is None:
        raise ImageLoadError(f"zarr: {loc.display!r} is not an OME-Zarr image, so it has no label axes")
    return Labels(data, axes=node.multiscale.axes)
