"""OME-NGFF metadata: axes, downsampling for pyramids, OMERO channel display."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np


#: Axis names OME-NGFF knows, in the order it requires them.
OME_AXES = "tczyx"
_AXIS_TYPES = {"t": "time", "c": "channel", "z": "space", "y": "space", "x": "space"}
_DEFAULT_COLORS = ("FF0000", "00FF00", "0000FF", "FF00FF", "00FFFF", "FFFF00", "FFFFFF")


def _is_num(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _ome_display(ome: Mapping[str, Any]) -> dict[str, Any]:
    """Axis names, level-0 scale and OMERO channel names/colours/windows of an OME image."""
    ms = ome["multiscales"][0]
    axes = [a if isinstance(a, dict) else {"name": str(a)} for a in ms.get("axes") or []]
    names = [str(a.get("name", i)) for i, a in enumerate(axes)]
    out: dict[str, Any] = {"axis_names": names}
    datasets = ms.get("datasets") or []
    transforms = datasets[0].get("coordinateTransformations") if datasets and isinstance(datasets[0], dict) else None
    for transform in transforms or []:
        values = transform.get("scale") if isinstance(transform, dict) and transform.get("type") == "scale" else None
        if isinstance(values, list) and len(values) == len(names) and all(_is_num(v) and v > 0 for v in values):
            out["scale"] = [float(v) for v in values]
    channel = next(
        (i for i, a in enumerate(axes) if a.get("type") == "channel" or ("type" not in a and a.get("name") == "c")),
        None,
    )
    if channel is None:
        return out
    out["channel_axis"] = channel
    omero = ome.get("omero")
    channels = omero.get("channels") if isinstance(omero, dict) else None
    if not isinstance(channels, list) or not channels or not all(isinstance(c, dict) for c in channels):
        return out
    out["channel_names"] = [str(c["label"]) if c.get("label") else None for c in channels]
    colors = [c.get("color") for c in channels]
    if all(isinstance(c, str) and len(c) == 6 and all(ch in "0123456789abcdefABCDEF" for ch in c) for c in colors):
        out["channel_colors"] = [str(c).upper() for c in colors]
    windows = [c.get("window") for c in channels]
    if all(
        isinstance(w, dict) and _is_num(w.get("start")) and _is_num(w.get("end")) and w["start"] < w["end"]
        for w in windows
    ):
        out["contrast_limits"] = [[float(w["start"]), float(w["end"])] for w in windows]
    return out


def _drop_lead_axis(display: dict[str, Any]) -> dict[str, Any]:
    """:func:`_ome_display` for one member of a batch image (axis 0 is the batch axis)."""
    out = dict(display)
    out["axis_names"] = display["axis_names"][1:]
    if "scale" in out:
        out["scale"] = display["scale"][1:]
    channel = out.pop("channel_axis", None)
    if channel is None or channel == 0:  # a member of a batch along c is one channel
        for key in ("channel_names", "channel_colors", "contrast_limits"):
            out.pop(key, None)
    else:
        out["channel_axis"] = channel - 1
    return out


def _is_dask(data: Any) -> bool:
    return type(data).__module__.startswith("dask.") and hasattr(data, "dask") and hasattr(data, "chunks")


def _jsonable(value: Any) -> Any:
    """``value`` with NumPy scalars/arrays turned into plain JSON types."""
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    return value


def _validate_axes(axes: str, ndim: int) -> None:
    if len(axes) != ndim:
        raise ValueError(f"axes {axes!r} has {len(axes)} letters for a {ndim}-D array")
    if not 2 <= ndim <= 5:
        raise ValueError(f"OME-Zarr images have 2 to 5 axes, got {ndim} ({axes!r})")
    if any(a not in OME_AXES for a in axes) or len(set(axes)) != len(axes):
        raise ValueError(f"axes {axes!r} must be distinct letters from {OME_AXES!r}")
    order = [OME_AXES.index(a) for a in axes]
    if order != sorted(order):
        raise ValueError(f"axes {axes!r} must follow OME-NGFF order t, c, z, y, x")
    if not axes.endswith("yx"):
        raise ValueError(f"axes {axes!r} must end with 'yx'")


def _axis_entry(axis: str) -> dict[str, str]:
    entry = {"name": axis, "type": _AXIS_TYPES[axis]}
    return entry


def _downsampled_shape(shape: tuple[int, ...]) -> tuple[int, ...]:
    """Shape after :func:`_downsample_yx` (odd y/x edges dropped; too small: unchanged)."""
    ny, nx = shape[-2] // 2, shape[-1] // 2
    if ny == 0 or nx == 0:
        return shape
    return shape[:-2] + (ny, nx)


def _max_pyramid_levels(shape: Sequence[int]) -> int:
    """How many extra 2x2-halved levels an image of ``shape`` has room for (y and x >= 1)."""
    ny, nx = int(shape[-2]), int(shape[-1])
    levels = 0
    while ny >= 2 and nx >= 2:
        ny, nx, levels = ny // 2, nx // 2, levels + 1
    return levels


def _downsample_yx(data: np.ndarray, axes: str) -> np.ndarray:
    """2x2 mean over y and x (odd edges dropped), keeping the dtype.

    The sum is taken in float64 (complex128 for complex images), so 32- and
    64-bit integers and float64 keep their precision; integers are rounded.
    """
    ny, nx = data.shape[-2] // 2 * 2, data.shape[-1] // 2 * 2
    if ny == 0 or nx == 0:
        return data
    d = data[..., :ny, :nx]
    acc = d[..., 0::2, 0::2].astype(np.complex128 if data.dtype.kind == "c" else np.float64)
    acc += d[..., 1::2, 0::2]
    acc += d[..., 0::2, 1::2]
    acc += d[..., 1::2, 1::2]
    acc *= 0.25
    if data.dtype.kind in "iub":
        acc = np.rint(acc)
    return acc.astype(data.dtype)


def _check_channels(
    shape: Sequence[int], axes: str, names: Sequence[str] | None, colors: Sequence[str] | None
) -> None:
    """Refuse channel names/colours that do not match the channel axis (before writing)."""
    if (names is not None or colors is not None) and "c" not in axes:
        raise ValueError(f"channel_names/channel_colors need a 'c' axis; axes are {axes!r}")
    if "c" not in axes:
        return
    n = int(shape[axes.index("c")])
    if names is not None and len(names) != n:
        raise ValueError(f"{len(names)} channel_names for {n} channels")
    if colors is not None and len(colors) != n:
        raise ValueError(f"{len(colors)} channel_colors for {n} channels")
    for color in colors or ():
        text = str(color).lstrip("#")
        if len(text) != 6 or any(ch not in "0123456789abcdefABCDEF" for ch in text):
            raise ValueError(f"channel colour {color!r} is not a hex RRGGBB string")


class _ChannelRange:
    """Running per-channel min/max (on a 4x4-subsampled copy) for the OMERO display window."""

    def __init__(self, axes: str, n: int) -> None:
        self.c = axes.index("c")
        self.lo = np.full(n, np.inf)
        self.hi = np.full(n, -np.inf)

    def update(self, slab: np.ndarray, first_index: int) -> None:
        """Fold in ``slab``, whose axis 0 starts at ``first_index`` of the image."""
        sub = np.moveaxis(slab[..., ::4, ::4], self.c, 0)
        if sub.size == 0:
            return
        flat = sub.reshape(sub.shape[0], -1)
        if flat.dtype.kind == "f":
            lo, hi = np.nanmin(flat, axis=1), np.nanmax(flat, axis=1)
        else:
            lo, hi = flat.min(axis=1), flat.max(axis=1)
        idx = slice(first_index, first_index + sub.shape[0]) if self.c == 0 else slice(None)
        self.lo[idx] = np.minimum(self.lo[idx], lo)
        self.hi[idx] = np.maximum(self.hi[idx], hi)


def _omero(
    shape: Sequence[int],
    dtype: np.dtype[Any],
    axes: str,
    names: Sequence[str] | None,
    colors: Sequence[str] | None,
    seen: _ChannelRange | None = None,
) -> dict[str, Any]:
    """OMERO channel metadata: labels, colours, and a display window from the data's range."""
    n = int(shape[axes.index("c")])
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        lo, hi = float(info.min), float(info.max)
    else:
        lo, hi = 0.0, 1.0
    channels = []
    for i in range(n):
        color = (colors[i] if colors is not None else _DEFAULT_COLORS[i % len(_DEFAULT_COLORS)]).lstrip("#").upper()
        start, end = lo, hi
        if seen is not None and np.isfinite(seen.lo[i]) and np.isfinite(seen.hi[i]):
            start, end = float(seen.lo[i]), float(seen.hi[i])
            if end <= start:
                end = start + 1.0
            if dtype.kind == "f":
                lo, hi = min(lo, start), max(hi, end)
        channels.append(
            {
                "label": str(names[i]) if names is not None else f"channel {i}",
                "color": color,
                "active": True,
                "window": {"min": lo, "max": hi, "start": start, "end": end},
            }
        )
    return {"channels": channels, "rdefs": {"model": "color" if n > 1 else "greyscale"}}
