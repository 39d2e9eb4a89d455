"""The polystore streaming wire format, version 1 (see ``docs/streaming-protocol.md``).

One message per image: a ZeroMQ multipart message of exactly two frames,
``[UTF-8 JSON header, raw C-contiguous payload]``. This module builds and
validates headers and turns a validated ``(header, payload)`` pair back into a
NumPy array without copying. It imports neither zmq nor Qt, and it never
unpickles or evaluates anything it receives: a header is plain JSON checked
field by field against the limits below.
"""

from __future__ import annotations

import functools
import json
import math
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = [
    "PROTOCOL_VERSION",
    "MAX_HEADER_BYTES",
    "MAX_NDIM",
    "MAX_DEPTH",
    "MAX_PATH_CHARS",
    "DEFAULT_MAX_FRAME_BYTES",
    "ProtocolError",
    "Header",
    "build_header",
    "encode_header",
    "parse_header",
    "decode_message",
    "array_from_payload",
    "as_payload_array",
]

#: The version this module writes and the only one it accepts.
PROTOCOL_VERSION = 1
#: Largest header accepted, in bytes (a header is a few hundred bytes).
MAX_HEADER_BYTES = 64 * 1024
#: Largest number of array dimensions accepted.
MAX_NDIM = 16
#: Deepest nesting of JSON arrays/objects accepted in a header (the header object is level 1).
MAX_DEPTH = 64
#: Longest ``path`` / ``layer`` / ``stream`` string accepted.
MAX_PATH_CHARS = 4096
#: Default largest payload a receiver accepts (2 GiB); receivers can change it.
DEFAULT_MAX_FRAME_BYTES = 2 * 1024**3

# Byte order + kind + item size: "<u2", "|u1", ">f8", "|b1", "<c16". Anything
# else (structured, object, string, datetime dtypes) is refused.
_DTYPE_RE = re.compile(r"^[<>|=]([biufc])(1|2|4|8|16)$")
_AXIS_RE = re.compile(r"^[A-Za-z]$")
# Feedback goes only to a loopback port: a header cannot make a receiver connect elsewhere.
_REPLY_RE = re.compile(r"^tcp://127\.0\.0\.1:[1-9][0-9]{0,4}$")
_REQUIRED = ("v", "kind", "stream", "seq", "path", "dtype", "shape", "order", "nbytes", "sent")


class ProtocolError(ValueError):
    """A header or payload does not follow the wire protocol; the message is dropped."""


@dataclass(frozen=True)
class Header:
    """A validated message header (the fields of ``docs/streaming-protocol.md``)."""

    stream: str
    seq: int
    path: str
    dtype: np.dtype[Any]
    shape: tuple[int, ...]
    nbytes: int
    sent: float
    layer: str | None = None
    axes: str | None = None
    index: dict[str, int] | None = None
    display: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    v: int = PROTOCOL_VERSION
    kind: str = "image"
    #: Optional: ``tcp://127.0.0.1:PORT`` where the sender reads feedback
    #: (flow-control credit and rejected frames); see :mod:`polystore.streaming.feedback`.
    reply: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """The header as the JSON-ready mapping that goes on the wire."""
        return {
            "v": self.v,
            "kind": self.kind,
            "stream": self.stream,
            "seq": self.seq,
            "path": self.path,
            "dtype": self.dtype.str,
            "shape": list(self.shape),
            "order": "C",
            "nbytes": self.nbytes,
            "layer": self.layer,
            "axes": self.axes,
            "index": self.index,
            "display": self.display,
            "meta": self.meta,
            "sent": self.sent,
            **({"reply": self.reply} if self.reply is not None else {}),
        }


def as_payload_array(data: Any) -> np.ndarray[Any, Any]:
    """Return ``data`` as a C-contiguous NumPy array of a streamable dtype.

    Arrays already C-contiguous are returned as they are (no copy). Torch, JAX
    and other array types are converted through ``polystore.frameworks`` when
    it is available, else through ``np.asarray``.
    """
    if type(data) is np.ndarray:
        array = data
    else:
        from polystore.frameworks import to_numpy

        array = np.asarray(to_numpy(data))
    if not _DTYPE_RE.match(array.dtype.str):
        raise TypeError(
            f"cannot stream arrays of dtype {array.dtype}: only bool, integer, "
            "float and complex dtypes are sent"
        )
    if not array.flags.c_contiguous:
        array = np.ascontiguousarray(array)
    if array.ndim > MAX_NDIM:
        raise ValueError(f"cannot stream a {array.ndim}-D array (at most {MAX_NDIM} dims)")
    return array


def _json_value(value: Any, what: str) -> Any:
    """Check that ``value`` survives a JSON round trip unchanged in kind."""
    try:
        return json.loads(json.dumps(value, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise TypeError(f"{what} must contain only JSON values (str, numbers, lists, dicts): {exc}") from exc


def build_header(
    array: np.ndarray[Any, Any],
    path: str,
    *,
    stream: str,
    seq: int,
    layer: str | None = None,
    axes: str | None = None,
    index: Mapping[str, int] | None = None,
    display: Mapping[str, Any] | None = None,
    meta: Mapping[str, Any] | None = None,
    sent: float | None = None,
    reply: str | None = None,
) -> Header:
    """Build and validate the header for one C-contiguous ``array`` saved at ``path``.

    Raises ``ValueError``/``TypeError`` for anything a receiver would refuse,
    so a sender never puts an invalid message on the wire.
    """
    # Trusted fields come from the array itself; only what the caller chose is
    # checked (the same checks a receiver makes), which keeps sending cheap.
    dtype = array.dtype
    if not _DTYPE_RE.match(dtype.str):
        raise TypeError(f"cannot stream arrays of dtype {dtype}")
    shape = tuple(int(n) for n in array.shape)
    if len(shape) > MAX_NDIM:
        raise ValueError(f"cannot stream a {len(shape)}-D array (at most {MAX_NDIM} dims)")
    path = str(path).replace("\\", "/")
    for key, value in (("stream", stream), ("path", path), ("layer", layer)):
        if value is None and key == "layer":
            continue
        if not isinstance(value, str) or len(value) > MAX_PATH_CHARS:
            raise ValueError(f"{key} must be a string of at most {MAX_PATH_CHARS} characters")
    clean_index = None if index is None else {str(k): _as_int(v, "index") for k, v in index.items()}
    clean_display = _json_value(dict(display), "display options") if display else {}
    clean_meta = _json_value(dict(meta), "metadata") if meta else {}
    try:
        if axes is not None or clean_index is not None:
            _check_placement(axes, clean_index, len(shape))
        if clean_display:
            clean_display = _check_display(clean_display)
    except ProtocolError as exc:
        raise ValueError(str(exc)) from exc
    if not isinstance(seq, int) or seq < 0:
        raise ValueError("seq must be a non-negative integer")
    if reply is not None and not _REPLY_RE.fullmatch(reply):
        raise ValueError(f"reply must be tcp://127.0.0.1:PORT, got {reply!r}")
    return Header(
        stream=stream,
        seq=seq,
        path=path,
        dtype=dtype,
        shape=shape,
        nbytes=int(array.nbytes),
        sent=_finite(time.time() if sent is None else float(sent)),
        layer=layer,
        axes=axes,
        index=clean_index,
        display=clean_display,
        meta=clean_meta,
        reply=reply,
    )


def _finite(value: float) -> float:
    if not math.isfinite(value):
        raise ValueError(f"sent must be a finite number, got {value}")
    return value


def _as_int(value: Any, what: str) -> int:
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{what} values must be integers, got {value!r}")
    return int(value)


_ENCODER = json.JSONEncoder(separators=(",", ":"), allow_nan=False)


_quote = json.encoder.encode_basestring_ascii  # type: ignore[attr-defined]


def encode_header(header: Header) -> bytes:
    """Serialise ``header`` to the compact UTF-8 JSON of the first frame."""
    if header.index or header.display or header.meta or header.axes is not None:
        return _ENCODER.encode(header.to_dict()).encode("utf-8")
    # The common case (a plain image) without building a dict: same JSON, faster.
    layer = "null" if header.layer is None else _quote(header.layer)
    reply = "" if header.reply is None else f',"reply":"{header.reply}"'
    shape = ",".join(map(str, header.shape))
    return (
        f'{{"v":{header.v},"kind":"image","stream":{_quote(header.stream)},"seq":{header.seq},'
        f'"path":{_quote(header.path)},"dtype":"{header.dtype.str}","shape":[{shape}],"order":"C",'
        f'"nbytes":{header.nbytes},"layer":{layer},"axes":null,"index":null,"display":{{}},'
        f'"meta":{{}},"sent":{header.sent!r}{reply}}}'
    ).encode("ascii")


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
    if type(raw["v"]) is not int or raw["v"] != PROTOCOL_VERSION:
        raise ProtocolError(f"unsupported protocol version {raw['v']!r} (this receiver speaks {PROTOCOL_VERSION})")
    if raw["kind"] != "image":
        raise ProtocolError(f"unknown message kind {raw['kind']!r}")
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
    if axes is not None or index is not None:
        _check_placement(axes, index, len(shape))
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


def array_from_payload(header: Header, payload: Any) -> np.ndarray[Any, Any]:
    """View ``payload`` (any buffer of ``header.nbytes`` bytes) as the array it carries.

    No copy: the array keeps the buffer alive and is read-only when the buffer is.
    """
    view = memoryview(payload).cast("B")
    if view.nbytes != header.nbytes:
        raise ProtocolError(f"payload has {view.nbytes} bytes but the header declares {header.nbytes}")
    return np.frombuffer(view, dtype=header.dtype).reshape(header.shape)


def decode_message(frames: list[Any], max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES) -> tuple[Header, np.ndarray[Any, Any]]:
    """Validate a received multipart message and return ``(header, array)``.

    ``frames`` are bytes, memoryviews or ``zmq.Frame`` objects (anything with
    the buffer protocol, or a ``.buffer`` attribute).
    """
    if len(frames) != 2:
        raise ProtocolError(f"expected 2 frames (header, payload), got {len(frames)}")
    head, body = (getattr(f, "buffer", f) for f in frames)
    payload = memoryview(body)
    if payload.nbytes > max_frame_bytes:
        raise ProtocolError(f"payload of {payload.nbytes} bytes exceeds the limit of {max_frame_bytes}")
    header = parse_header(memoryview(head), payload.nbytes)
    return header, array_from_payload(header, payload)
