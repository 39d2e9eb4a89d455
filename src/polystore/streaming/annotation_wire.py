"""Annotations on the wire: protocol version 2 messages of kind labels, points and shapes.

Images stay version-1 messages (so receivers that speak only version 1 still
take them); annotations are version 2 (docs/streaming-protocol.md,
"Annotations"):

- ``labels``: like an image (header + payload), with an integer or bool dtype
  and ``axes`` naming every dimension;
- ``points`` / ``shapes``: header, payload and a third frame, the *table*
  (UTF-8 JSON). The payload is the float64 ``(N, D)`` coordinates (for shapes
  all vertices, shape after shape); ``axes`` names the D columns. The table
  holds ``properties`` (column -> list of values) and, for shapes,
  ``shape_types`` and ``counts`` (vertices per shape).

A receiver rebuilds the :mod:`polystore.annotations` object, so every rule of
the model (finite coordinates, vertex counts, property lengths, the
:data:`~polystore.annotations.MAX_COORDINATES` cap) holds for what it shows.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import re
from typing import Any

import numpy as np

from polystore.annotations import MAX_COORDINATES, Annotation, Labels, Points, Shapes, as_annotation
from polystore.annotations.planes import check_plane_index
from polystore.exceptions import InvalidAnnotationError
from polystore.streaming.header_checks import WIRE_KINDS
from polystore.streaming.protocol import (
    DEFAULT_MAX_FRAME_BYTES,
    Header,
    ProtocolError,
    array_from_payload,
    decode_message,
    parse_header,
)

__all__ = [
    "ANNOTATION_VERSION",
    "WIRE_KINDS",
    "MAX_TABLE_BYTES",
    "check_annotation_header",
    "encode_annotation",
    "decode_any",
    "two_part_annotation",
    "send_annotation",
]

#: The protocol version of annotation messages.
ANNOTATION_VERSION = 2
#: Largest table frame (properties, shape types, counts) a receiver reads.
MAX_TABLE_BYTES = 64 * 1024**2
_COORDS = np.dtype("<f8")
_COLUMN_DTYPE = re.compile(r"[<|][biuf](1|2|4|8)")


def check_annotation_header(kind: str, dtype: np.dtype[Any], shape: tuple[int, ...], axes: Any, index: Any) -> None:
    """The version-2 rules on top of an image header's (called by ``validate_header``)."""
    if type(axes) is not str:
        raise ProtocolError(f"{kind} messages need 'axes' naming their dimensions")
    if index is not None:
        if kind == "labels":
            raise ProtocolError("labels messages replace their layer: 'index' must be null")
        if type(index) is not dict or len(index) > 16:
            raise ProtocolError("header field 'index' must be an object of axis -> integer")
        if any(type(v) is not int for v in index.values()):
            raise ProtocolError(f"bad index {index!r}: positions must be JSON integers")
        try:
            check_plane_index(index, tuple(axes), kind)
        except InvalidAnnotationError as exc:
            raise ProtocolError(str(exc)) from None
    if kind == "labels":
        if dtype.kind not in "biu":
            raise ProtocolError(f"labels must have an integer dtype, not {dtype.str}")
        if len(axes) != len(shape) or len(shape) < 2:
            raise ProtocolError(f"labels of shape {list(shape)} need one axis letter per dimension, got {axes!r}")
        return
    if dtype != _COORDS or len(shape) != 2 or shape[1] != len(axes):
        raise ProtocolError(f"{kind} coordinates must be <f8 of shape [N, {len(axes)}] for axes {axes!r}")
    if shape[0] > MAX_COORDINATES:
        raise ProtocolError(f"{kind}: {shape[0]} coordinates is more than the limit of {MAX_COORDINATES}")


def _wire_axes(annotation: Annotation) -> str:
    if not all(len(a) == 1 and a.isascii() and a.isalpha() for a in annotation.axes):
        raise InvalidAnnotationError(
            f"streaming: axes must be single letters to be sent, got {annotation.axes!r}"
        )
    return "".join(annotation.axes)


def _column(values: np.ndarray[Any, Any]) -> Any:
    """A property column for the table: numbers and bools as base64 of their little-endian bytes."""
    if values.dtype.kind in "biuf":
        little = values.astype(values.dtype.newbyteorder("<"), copy=False)
        return {"dtype": little.dtype.str, "base64": base64.b64encode(little.tobytes()).decode("ascii")}
    return list(values.tolist())


def _decode_column(name: str, value: Any) -> Any:
    if type(value) is list:
        return value
    if type(value) is not dict or type(value.get("dtype")) is not str or type(value.get("base64")) is not str:
        raise ProtocolError(f"property {name!r} must be a list or {{'dtype', 'base64'}}")
    if not _COLUMN_DTYPE.fullmatch(value["dtype"]):
        raise ProtocolError(f"property {name!r} has unsupported dtype {value['dtype']!r}")
    try:
        raw = base64.b64decode(value["base64"], validate=True)
    except ValueError:
        raise ProtocolError(f"property {name!r} is not valid base64") from None
    dtype = np.dtype(value["dtype"])
    if len(raw) % dtype.itemsize:
        raise ProtocolError(f"property {name!r} has {len(raw)} bytes, not a multiple of {dtype.itemsize}")
    return np.frombuffer(raw, dtype=dtype)


def encode_annotation(annotation: Annotation) -> tuple[str, np.ndarray[Any, Any], bytes | None]:
    """``(kind, payload array, table frame or None)`` of ``annotation``."""
    _wire_axes(annotation)
    if isinstance(annotation, Labels):
        return "labels", np.ascontiguousarray(annotation.data), None
    table: dict[str, Any] = {"properties": {k: _column(v) for k, v in annotation.properties.items()}}
    if isinstance(annotation, Points):
        coords = np.ascontiguousarray(annotation.data, dtype=_COORDS)
        return "points", coords, json.dumps(table, allow_nan=False).encode()
    table["shape_types"] = list(annotation.shape_types)
    table["counts"] = [len(v) for v in annotation.data]
    width = len(annotation.axes)
    coords = np.concatenate(annotation.data).astype(_COORDS) if annotation.data else np.empty((0, width), _COORDS)
    return "shapes", np.ascontiguousarray(coords), json.dumps(table, allow_nan=False).encode()


def _table(frame: Any) -> dict[str, Any]:
    data = memoryview(getattr(frame, "buffer", frame))
    if data.nbytes > MAX_TABLE_BYTES:
        raise ProtocolError(f"table frame of {data.nbytes} bytes exceeds the limit of {MAX_TABLE_BYTES}")
    try:
        table = json.loads(bytes(data).decode("utf-8"), parse_constant=_refuse)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise ProtocolError(f"table frame is not UTF-8 JSON: {exc}") from None
    if type(table) is not dict or type(table.get("properties", {})) is not dict:
        raise ProtocolError("table frame must be a JSON object with a 'properties' object")
    return table


def _refuse(name: str) -> Any:
    raise ValueError(f"{name} is not allowed")


def _annotation(header: Header, array: np.ndarray[Any, Any], table: dict[str, Any]) -> Annotation:
    axes = header.axes or ""
    properties = {str(k): _decode_column(str(k), v) for k, v in table.get("properties", {}).items()}
    try:
        if header.kind == "points":
            return Points(array, properties=properties, axes=axes)
        counts, types = table.get("counts"), table.get("shape_types")
        if type(counts) is not list or not all(type(c) is int and c >= 0 for c in counts):
            raise ProtocolError("shapes table needs 'counts': a list of non-negative integers")
        if sum(counts) != len(array):
            raise ProtocolError(f"shapes table counts {sum(counts)} vertices but the payload holds {len(array)}")
        if type(types) is not list or not all(type(t) is str for t in types):
            raise ProtocolError("shapes table needs 'shape_types': a list of strings")
        bounds = np.cumsum([0, *counts])
        vertices = [array[bounds[i] : bounds[i + 1]] for i in range(len(counts))]
        return Shapes(vertices, shape_type=types, properties=properties, axes=axes)
    except InvalidAnnotationError as exc:
        raise ProtocolError(str(exc)) from None


def decode_any(
    frames: list[Any], max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES, headers: Any = None
) -> tuple[Header, np.ndarray[Any, Any], Annotation | None]:
    """Validate a received message of any kind: ``(header, payload array, annotation or None)``.

    ``headers`` is the receiving thread's header cache (see
    :func:`~polystore.streaming.protocol.decode_message`). Version-1 images
    give ``None``; version-2 messages the validated
    :class:`~polystore.annotations.Labels`, ``Points`` or ``Shapes``.
    """
    if len(frames) == 3:
        head, body, table = (getattr(f, "buffer", f) for f in frames)
        payload = memoryview(body)
        if payload.nbytes > max_frame_bytes:
            raise ProtocolError(f"payload of {payload.nbytes} bytes exceeds the limit of {max_frame_bytes}")
        header = parse_header(memoryview(head), payload.nbytes)
        if header.kind not in ("points", "shapes"):
            raise ProtocolError(f"{header.kind} messages have 2 frames, got 3")
        array = array_from_payload(header, payload)
        return header, array, _annotation(header, array, _table(table))
    header, array = decode_message(frames, max_frame_bytes, headers)
    return header, array, two_part_annotation(header, array)


def two_part_annotation(header: Header, array: np.ndarray[Any, Any]) -> Annotation | None:
    """What a validated two-part message carries besides its array: None for an image,
    the :class:`~polystore.annotations.Labels` of a labels message; points and shapes
    need three parts (a :class:`ProtocolError`)."""
    if header.kind in ("points", "shapes"):
        raise ProtocolError(f"{header.kind} messages have 3 frames (header, coordinates, table), got 2")
    if header.kind == "labels":
        return Labels(array, axes=header.axes)
    return None


def send_annotation(sender: Any, data: Any, path: str, kind: str | None = None, **options: Any) -> Header:
    """Send ``data`` (an annotation, or an array/vertex list with ``kind=``) through a ``StreamSender``.

    ``options`` are ``layer``, ``display`` and ``meta`` (``axes`` names the
    axes of plain data) and, for points and shapes, ``index``: the plane
    (``{"t": 3}``) these items belong to; the layer keeps the other planes
    (:mod:`polystore.annotations.planes`). Labels replace their layer.
    """
    annotation = as_annotation(data, str(kind or getattr(data, "kind", "")), options.get("axes"))
    index = options.get("index")
    if index is not None:
        if isinstance(annotation, Labels):
            raise ValueError("labels replace their layer: index= is supported for points and shapes only")
        index = check_plane_index(index, annotation.axes, type(annotation).__name__)
    wire_kind, array, table = encode_annotation(annotation)
    sender.check_feedback()
    with sender._lock:
        header: Header = sender.build(
            array, path, layer=options.get("layer"), display=options.get("display"), meta=options.get("meta")
        )[0]
        header = dataclasses.replace(
            header, v=ANNOTATION_VERSION, kind=wire_kind, axes=_wire_axes(annotation), index=index
        )
        sender._send_locked(header, array, None, table)
    return header
