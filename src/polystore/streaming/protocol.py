"""The polystore streaming wire format, version 1 (see ``docs/streaming-protocol.md``).

One message per image: a ZeroMQ multipart message of exactly two frames,
``[UTF-8 JSON header, raw C-contiguous payload]``. This module builds and
encodes headers and turns a validated ``(header, payload)`` pair back into a
NumPy array without copying. It imports neither zmq nor Qt, and it never
unpickles or evaluates anything it receives: a header is plain JSON checked
field by field (:mod:`polystore.streaming.header_checks`) against the limits
of :mod:`polystore.streaming.header`, which this module re-exports.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from polystore.streaming.header import (
    _DTYPE_RE,
    _REPLY_RE,
    DEFAULT_MAX_FRAME_BYTES,
    MAX_DEPTH,
    MAX_HEADER_BYTES,
    MAX_NDIM,
    MAX_PATH_CHARS,
    PROTOCOL_VERSION,
    Header,
    ProtocolError,
)
from polystore.streaming.header_checks import _check_display, _check_placement, parse_header, validate_header

if TYPE_CHECKING:
    from polystore.streaming.header_cache import HeaderCache

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
    "validate_header",
    "decode_message",
    "array_from_payload",
    "as_payload_array",
]


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


def array_from_payload(header: Header, payload: Any) -> np.ndarray[Any, Any]:
    """View ``payload`` (any buffer of ``header.nbytes`` bytes) as the array it carries.

    No copy: the array keeps the buffer alive and is read-only when the buffer is.
    """
    view = payload if type(payload) is memoryview and payload.format == "B" and payload.ndim == 1 else memoryview(payload).cast("B")
    if view.nbytes != header.nbytes:
        raise ProtocolError(f"payload has {view.nbytes} bytes but the header declares {header.nbytes}")
    return np.frombuffer(view, dtype=header.dtype).reshape(header.shape)


def decode_message(
    frames: list[Any],
    max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES,
    headers: HeaderCache | None = None,
) -> tuple[Header, np.ndarray[Any, Any]]:
    """Validate a received multipart message and return ``(header, array)``.

    ``frames`` are bytes, memoryviews or ``zmq.Frame`` objects (anything with
    the buffer protocol, or a ``.buffer`` attribute). ``headers`` (one per
    receiving thread) validates a header that repeats an earlier one in all
    but ``seq`` and ``sent`` cheaply, with the same outcome.
    """
    if len(frames) != 2:
        raise ProtocolError(f"expected 2 frames (header, payload), got {len(frames)}")
    head, body = frames
    payload = memoryview(getattr(body, "buffer", body))
    if payload.nbytes > max_frame_bytes:
        raise ProtocolError(f"payload of {payload.nbytes} bytes exceeds the limit of {max_frame_bytes}")
    if headers is not None:
        # a zmq.Frame's .bytes is its own cached copy: no second copy of the header
        data = getattr(head, "bytes", None)
        header = headers.parse(data if type(data) is bytes else bytes(getattr(head, "buffer", head)), payload.nbytes)
    else:
        header = parse_header(memoryview(getattr(head, "buffer", head)), payload.nbytes)
    return header, array_from_payload(header, payload)
