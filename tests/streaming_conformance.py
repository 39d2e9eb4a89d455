"""The shared conformance table of docs/streaming-protocol.md (not a test module).

Every receiver (the Python ``StreamReceiver`` and the Java Fiji bridge) must accept
exactly the ``valid`` messages and count every other one as malformed. Each valid
case carries its own ``stream`` id (``case-<name>``), so a test can tell which
cases a receiver took. "Valid" is about the protocol only: a valid message a
viewer cannot show (an ``<i4`` frame in ImageJ) is still taken, then dropped and
reported.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

REQUIRED = ("v", "kind", "stream", "seq", "path", "dtype", "shape", "order", "nbytes", "sent")


@dataclass(frozen=True)
class Case:
    """One message and whether the protocol allows it."""

    name: str
    frames: tuple[bytes, ...]
    valid: bool

    @property
    def stream(self) -> str:
        return f"case-{self.name}"


def base(name: str) -> dict[str, Any]:
    """A valid header for a 2x3 ``<u2`` payload (12 bytes)."""
    return {
        "v": 1, "kind": "image", "stream": f"case-{name}", "seq": 0, "path": "conf/c.tif", "dtype": "<u2",
        "shape": [2, 3], "order": "C", "nbytes": 12, "layer": None, "axes": None, "index": None,
        "display": {}, "meta": {}, "sent": 1.0,
    }


def _case(name: str, valid: bool, payload: int = 12, raw: bytes | None = None, **changes: Any) -> Case:
    header = base(name)
    for key, value in changes.items():
        if value is _DELETE:
            header.pop(key, None)
        else:
            header[key] = value
    head = raw if raw is not None else json.dumps(header).encode()
    return Case(name, (head, bytes(payload)), valid)


_DELETE = object()


def _nested(depth: int) -> Any:
    value: Any = 1
    for _ in range(depth - 1):  # the header object itself is one level
        value = {"a": value}
    return value


def cases() -> list[Case]:
    """The table: valid messages first, then invalid ones."""
    out = [
        _case("plain", True),
        _case("minimal", True, layer=_DELETE, axes=_DELETE, index=_DELETE, display=_DELETE, meta=_DELETE),
        _case("big-endian", True, dtype=">u2"),
        _case("u1", True, dtype="|u1", nbytes=6, payload=6),
        _case("i4-not-shown-by-fiji", True, dtype="<i4", nbytes=24, payload=24),
        _case("c16", True, dtype="<c16", nbytes=96, payload=96),
        _case("bool", True, dtype="|b1", nbytes=6, payload=6),
        _case("native-order-sign", True, dtype="=u2"),
        _case("16-dims", True, shape=[1] * 14 + [2, 3]),
        _case("0-d", True, shape=[], nbytes=2, payload=2),
        _case("zero-size", True, shape=[0, 5], nbytes=0, payload=0),
        _case("huge-dim-zero-size", True, shape=[0, 2**40], nbytes=0, payload=0),
        _case("index-max", True, index={"t": 2**31 - 1}),
        _case("index-with-axes", True, axes="tcyx", index={"t": 0, "c": 1}),
        _case("index-uppercase", True, index={"T": 1}),
        _case("axes-no-index", True, axes="tczyx"),
        _case("axes-stack-of-one", True, axes="tyx", index={"t": 4}),
        _case("seq-max", True, seq=2**63 - 1),
        _case("sent-int", True, sent=5),
        _case("display", True, display={"contrast_limits": [0, 1.5], "scale": [1.5, 2], "colormap": "gray",
                                        "auto_contrast": True, "unknown": [1]}),
        _case("display-null", True, display=None),
        _case("meta-nested", True, meta=_nested(60)),
        _case("layer-and-empty-path", True, layer="L", path=""),
        _case("extra-field", True, extra={"x": 1}),
        _case("long-strings", True, path="p" * 4096, layer="l" * 4096),
        _case("unicode", True, path="\u00e9t\u00e9/\u6f22.tif"),
        _case("reply", True, reply="tcp://127.0.0.1:9"),
        _case("reply-null", True, reply=None),
    ]
    for key in REQUIRED:
        out.append(_case(f"missing-{key}", False, **{key: _DELETE}))
    out += [
        _case("v2", False, v=2),
        _case("v-string", False, v="1"),
        _case("v-float", False, v=1.0),
        _case("v-bool", False, v=True),
        _case("kind-other", False, kind="other"),
        _case("seq-negative", False, seq=-1),
        _case("seq-float", False, seq=1.5),
        _case("seq-too-big", False, seq=2**63),
        _case("seq-bool", False, seq=True),
        _case("dtype-no-byte-order", False, dtype="u2"),
        _case("dtype-bad-size", False, dtype="<u3"),
        _case("dtype-unicode", False, dtype="<U4"),
        _case("dtype-object", False, dtype="|O"),
        _case("dtype-datetime", False, dtype="<M8"),
        _case("dtype-trailing-newline", False, dtype="<u2\n"),
        _case("dtype-empty", False, dtype=""),
        _case("dtype-number", False, dtype=5),
        _case("shape-17-dims", False, shape=[1] * 15 + [2, 3]),
        _case("shape-negative", False, shape=[-2, -3]),
        _case("shape-float", False, shape=[2.0, 3]),
        _case("shape-bool", False, shape=[True, 3], nbytes=6, payload=6),
        _case("shape-string", False, shape="2,3"),
        _case("order-F", False, order="F"),
        _case("nbytes-vs-shape", False, nbytes=10, payload=10),
        _case("nbytes-vs-payload", False, payload=11),
        _case("nbytes-negative", False, nbytes=-12),
        _case("nbytes-float", False, nbytes=12.0),
        _case("index-too-big", False, index={"t": 2**31}),
        _case("index-negative", False, index={"t": -1}),
        _case("index-float", False, index={"t": 1.0}),
        _case("index-bool", False, index={"t": True}),
        _case("index-long-key", False, index={"tt": 0}),
        _case("index-digit-key", False, index={"1": 0}),
        _case("index-key-newline", False, index={"t\n": 0}),
        _case("index-list", False, index=[0]),
        _case("index-not-in-axes", False, axes="cyx", index={"t": 0}),
        _case("axes-no-room-for-index", False, axes="tyx", shape=[1, 2, 3], index={"t": 0}),
        _case("axes-duplicate", False, axes="ttyx"),
        _case("axes-empty", False, axes=""),
        _case("axes-digit", False, axes="t1yx"),
        _case("axes-17", False, axes="abcdefghijklmnopq"),
        _case("axes-number", False, axes=5),
        _case("display-string", False, display="x"),
        _case("display-list", False, display=[]),
        _case("contrast-reversed", False, display={"contrast_limits": [1, 0]}),
        _case("contrast-infinite", False, raw=json.dumps(base("contrast-infinite")).replace(
            '"display": {}', '"display": {"contrast_limits": [0, 1e999]}').encode()),
        _case("scale-zero", False, display={"scale": [0]}),
        _case("scale-empty", False, display={"scale": []}),
        _case("colormap-number", False, display={"colormap": 5}),
        _case("meta-list", False, meta=[]),
        _case("sent-string", False, sent="now"),
        _case("sent-bool", False, sent=True),
        _case("sent-huge-int", False, sent=10**400),
        _case("sent-infinite", False, raw=json.dumps(base("sent-infinite")).replace('"sent": 1.0', '"sent": 1e999').encode()),
        _case("sent-nan", False, raw=json.dumps(base("sent-nan")).replace('"sent": 1.0', '"sent": NaN').encode()),
        _case("path-number", False, path=5),
        _case("path-too-long", False, path="p" * 4097),
        _case("stream-null", False, stream=None),
        _case("layer-number", False, layer=5),
        _case("meta-too-deep", False, meta=_nested(65)),
        _case("reply-not-loopback", False, reply="tcp://10.0.0.1:5999"),
        _case("reply-ipc", False, reply="ipc:///tmp/x.sock"),
        _case("reply-newline", False, reply="tcp://127.0.0.1:5999\n"),
        _case("reply-number", False, reply=5999),
        _case("not-json", False, raw=b"{not json"),
        _case("json-array", False, raw=b"[1, 2]"),
        _case("trailing-data", False, raw=json.dumps(base("trailing-data")).encode() + b" {}"),
        _case("not-utf8", False, raw=b'{"v": 1, "path": "\xff"}'),
        _case("control-char", False, raw=json.dumps(base("control-char")).replace("conf/c.tif", "conf/\tc.tif").encode()),
        _case("header-over-64k", False, meta={"pad": "x" * 65536}),
        Case("one-frame", (json.dumps(base("one-frame")).encode(),), False),
        Case("three-frames", (json.dumps(base("three-frames")).encode(), bytes(12), b""), False),
    ]
    return out


#: Sent last by the tests: once a receiver has it, it has handled every case before it.
SENTINEL = _case("sentinel", True)


def annotation_frames(obj: Any, **changes: Any) -> list[bytes]:
    """The frames of a protocol-2 message for a ``Labels``/``Points``/``Shapes`` object, header fields changed."""
    from polystore.streaming.annotation_wire import encode_annotation
    from polystore.streaming.protocol import build_header

    kind, array, table = encode_annotation(obj)
    header = build_header(array, "p", stream="s", seq=0)
    raw = {**header.to_dict(), "v": 2, "kind": kind, "axes": "".join(obj.axes), **changes}
    frames = [json.dumps(raw).encode(), array.tobytes()]
    return frames if table is None else [*frames, table]


def annotation_table(obj: Any, **changes: Any) -> list[bytes]:
    """The frames of a points/shapes message whose table has ``changes``."""
    frames = annotation_frames(obj)
    return [frames[0], frames[1], json.dumps({**json.loads(frames[2]), **changes}).encode()]
