"""The message header of the streaming wire format: its limits, :class:`Header` and :class:`ProtocolError`.

See ``docs/streaming-protocol.md``; :mod:`polystore.streaming.protocol` builds,
encodes and decodes messages, :mod:`polystore.streaming.header_checks`
validates received headers.
"""

from __future__ import annotations

import re
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
    "with_seq",
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


def with_seq(header: Header, seq: int, sent: float) -> Header:
    """A copy of the validated ``header`` with another ``seq`` and ``sent`` (both already checked).

    Cheaper than building a new :class:`Header` (no ``__init__`` of 15 fields);
    the copy shares ``header``'s other field values.
    """
    copy = object.__new__(Header)
    values = copy.__dict__
    values.update(header.__dict__)
    values["seq"] = seq
    values["sent"] = sent
    return copy
