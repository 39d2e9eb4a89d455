"""Validation of received headers: JSON decoding with limits, then every field rule.

A header is plain JSON checked field by field against the limits of
:mod:`polystore.streaming.header`; nothing is unpickled or evaluated, and
nothing is allocated from declared sizes. :mod:`polystore.streaming.protocol`
re-exports :func:`parse_header` and :func:`validate_header`.
"""

from __future__ import annotations

import functools
import json
import math
from typing import Any

import numpy as np

from polystore.streaming.header import (
    _AXIS_RE,
    _DTYPE_RE,
    _REPLY_RE,
    _REQUIRED,
    MAX_DEPTH,
    MAX_HEADER_BYTES,
    MAX_NDIM,
    MAX_PATH_CHARS,
    PROTOCOL_VERSION,
    Header,
    ProtocolError,
)

__all__ = ["parse_header", "validate_header"]


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    """A JSON number that is finite as a float (an int too large for a float is not)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    try:
        return math.isfinite(value)
    except OverflowError:
        return False


def _check_display(value: Any) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ProtocolError("header field 'display' must be an object")
    out: dict[str, Any] = {}
    for key, item in value.items():
        if key == "colormap":
            if not isinstance(item, str) or len(item) > 256:
                raise ProtocolError("display.colormap must be a short string")
        elif key == "contrast_limits":
            if (
                not isinstance(item, list)
                or len(item) != 2
                or not all(_is_number(x) for x in item)
                or not item[0] < item[1]
            ):
                raise ProtocolError("display.contrast_limits must be [lo, hi] numbers with lo < hi")
        elif key == "scale":
            if (
                not isinstance(item, list)
                or not 0 < len(item) <= MAX_NDIM
                or not all(_is_number(x) and x > 0 for x in item)
            ):
                raise ProtocolError("display.scale must be a list of positive numbers")
        # Unknown display keys are kept: receivers ignore what they do not know.
        out[key] = item
    return out


def _check_placement(axes: Any, index: Any, ndim: int) -> None:
    """Check the ``axes`` and ``index`` fields against each other and the frame's ndim."""
    if axes is not None:
        if (
            not isinstance(axes, str)
            or not 0 < len(axes) <= MAX_NDIM
            or not all(_AXIS_RE.fullmatch(a) for a in axes)
            or len(set(axes)) != len(axes)
        ):
            raise ProtocolError("header field 'axes' must be distinct axis letters, e.g. 'tczyx'")
    if index is not None:
        if not isinstance(index, dict) or len(index) > MAX_NDIM:
            raise ProtocolError("header field 'index' must be an object of axis -> integer")
        for key, value in index.items():
            if not isinstance(key, str) or not _AXIS_RE.fullmatch(key) or not _is_int(value) or not 0 <= value < 2**31:
                raise ProtocolError(f"bad index entry {key!r}: {value!r}")
        if axes is not None:
            extra = set(index) - set(axes)
            if extra:
                raise ProtocolError(f"index axes {sorted(extra)} are not in axes {axes!r}")
            if len(axes) < ndim or len(axes) - ndim < len(index):
                raise ProtocolError(f"axes {axes!r} must name the stack axes and then the {ndim} frame axes")


_REQUIRED_SET = frozenset(_REQUIRED)
#: Message kinds by protocol version: images are version 1, annotations version 2
#: (:mod:`polystore.streaming.annotation_wire`).
WIRE_KINDS: dict[int, tuple[str, ...]] = {PROTOCOL_VERSION: ("image",), 2: ("labels", "points", "shapes")}


def validate_header(raw: Any, payload_nbytes: int) -> Header:
    """Check a decoded JSON header against the protocol and the payload length.

    Returns a :class:`Header`; raises :class:`ProtocolError` naming the first
    problem found. Nothing is allocated from the declared sizes.
    """
    # ``type(x) is int`` (not isinstance) also refuses booleans.
    if type(raw) is not dict:
        raise ProtocolError("header is not a JSON object")
    if not _REQUIRED_SET.issubset(raw):
        missing = [key for key in _REQUIRED if key not in raw]
        raise ProtocolError(f"header is missing fields: {', '.join(missing)}")
    version, kind = raw["v"], raw["kind"]
    if type(version) is not int or version not in WIRE_KINDS:
        raise ProtocolError(f"unsupported protocol version {version!r} (this receiver speaks 1 and 2)")
    if kind not in WIRE_KINDS[version]:
        raise ProtocolError(f"unknown message kind {kind!r} for protocol version {version}")
    stream = raw["stream"]
    path = raw["path"]
    layer = raw.get("layer")
    if type(stream) is not str or len(stream) > MAX_PATH_CHARS:
        raise ProtocolError(f"header field 'stream' must be a string of at most {MAX_PATH_CHARS} characters")
    if type(path) is not str or len(path) > MAX_PATH_CHARS:
        raise ProtocolError(f"header field 'path' must be a string of at most {MAX_PATH_CHARS} characters")
    if layer is not None and (type(layer) is not str or len(layer) > MAX_PATH_CHARS):
        raise ProtocolError(f"header field 'layer' must be a string of at most {MAX_PATH_CHARS} characters")
    seq = raw["seq"]
    if type(seq) is not int or not 0 <= seq < 2**63:
        raise ProtocolError("header field 'seq' must be a non-negative integer below 2**63")
    dtype_str = raw["dtype"]
    if type(dtype_str) is not str or not _DTYPE_RE.fullmatch(dtype_str):
        raise ProtocolError(f"unsupported dtype {dtype_str!r}")
    dtype = _dtype(dtype_str)
    shape = raw["shape"]
    if type(shape) is not list or len(shape) > MAX_NDIM or not all(type(n) is int and n >= 0 for n in shape):
        raise ProtocolError(f"header field 'shape' must be a list of at most {MAX_NDIM} non-negative integers")
    if raw["order"] != "C":
        raise ProtocolError("header field 'order' must be 'C'")
    nbytes = raw["nbytes"]
    if type(nbytes) is not int or nbytes < 0:
        raise ProtocolError("header field 'nbytes' must be a non-negative integer")
    expected = math.prod(shape) * dtype.itemsize  # exact: Python ints do not overflow
    if nbytes != expected:
        raise ProtocolError(f"nbytes {nbytes} does not match shape {shape} x itemsize {dtype.itemsize} = {expected}")
    if nbytes != payload_nbytes:
        raise ProtocolError(f"payload has {payload_nbytes} bytes but the header declares {nbytes}")
    axes = raw.get("axes")
    index = raw.get("index")
    if version != PROTOCOL_VERSION:
        from polystore.streaming.annotation_wire import check_annotation_header

        check_annotation_header(kind, dtype, tuple(shape), axes, index)
    if axes is not None or index is not None:
        # annotation index keys name the plane, not axes of the payload (check_annotation_header)
        _check_placement(axes, index if version == PROTOCOL_VERSION else None, len(shape))
    display = raw.get("display")
    display = {} if display is None else _check_display(display)
    meta = raw.get("meta")
    if meta is None:
        meta = {}
    elif type(meta) is not dict:
        raise ProtocolError("header field 'meta' must be an object")
    sent = raw["sent"]
    if not ((type(sent) is float or type(sent) is int) and _is_number(sent)):
        raise ProtocolError("header field 'sent' must be a number")
    reply = raw.get("reply")
    if reply is not None and (type(reply) is not str or not _REPLY_RE.fullmatch(reply)):
        raise ProtocolError("header field 'reply' must be tcp://127.0.0.1:PORT")
    return Header(
        stream=stream,
        seq=seq,
        path=path,
        dtype=dtype,
        shape=tuple(shape),
        nbytes=nbytes,
        sent=float(sent),
        layer=layer,
        axes=axes,
        index=None if index is None else dict(index),
        display=display,
        meta=meta,
        reply=reply,
        v=version,
        kind=kind,
    )


def parse_header(data: bytes | memoryview, payload_nbytes: int) -> Header:
    """Decode and validate the first frame of a message.

    ``payload_nbytes`` is the length of the second frame; a header whose
    declared size differs is refused.
    """
    if len(data) > MAX_HEADER_BYTES:
        raise ProtocolError(f"header is larger than {MAX_HEADER_BYTES} bytes")
    try:
        text = bytes(data).decode("utf-8")
        if text.count("[") + text.count("{") > MAX_DEPTH and _depth(text) > MAX_DEPTH:
            raise ProtocolError(f"header is nested deeper than {MAX_DEPTH} levels")
        raw = _DECODER.decode(text)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        if isinstance(exc, ProtocolError):
            raise
        raise ProtocolError(f"header is not UTF-8 JSON: {exc}") from None
    return validate_header(raw, payload_nbytes)


def _depth(text: str) -> int:
    """Deepest nesting of arrays/objects in JSON ``text`` (brackets inside strings ignored)."""
    depth = deepest = 0
    in_string = escaped = False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
            deepest = max(deepest, depth)
        elif char in "]}":
            depth -= 1
    return deepest


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed in a header")


_DECODER = json.JSONDecoder(parse_constant=_refuse_constant)


@functools.lru_cache(maxsize=64)
def _dtype(text: str) -> np.dtype[Any]:
    return np.dtype(text)
