"""Fast paths for headers that repeat: the same stream, path, layer, dtype and shape, frame after frame.

A sender encodes headers in one canonical layout (:func:`~polystore.streaming.protocol.encode_header`)::

    {"v":1,"kind":"image","stream":S,"seq":N,"path":...,"sent":F}      (or ...,"sent":F,"reply":"R"})

Consecutive frames of a stream differ only in the digits of ``seq`` and ``sent``.

* :class:`HeaderTemplate` (sender): the encoded header split around those two
  numbers, so the next header is three byte strings joined instead of a
  validation and a JSON encoding.
* :class:`HeaderCache` (receiver): remembers canonical headers that passed full
  validation; a header whose bytes equal a remembered one except for the
  ``seq`` and ``sent`` numbers is, by construction, the same valid header with
  those two numbers, and only they are checked (``seq`` a non-negative integer
  below 2**63, ``sent`` a finite JSON number). Anything else takes the full
  path (:func:`~polystore.streaming.header_checks.parse_header`), so every rule
  of ``docs/streaming-protocol.md`` still holds.

Only headers without ``index`` and ``meta`` and with flat ``display`` values are
remembered: those are the repeated live frames, and the copies handed out
then share no mutable value.
"""

from __future__ import annotations

import collections
import math
import re
from typing import Any

from polystore.streaming.header import MAX_HEADER_BYTES, Header, with_seq
from polystore.streaming.header_checks import parse_header
from polystore.streaming.protocol import encode_header

__all__ = ["HeaderTemplate", "HeaderCache", "canonical_split"]

_SEQ = b',"seq":'
_SENT = b',"sent":'
_SEQ_RE = re.compile(rb"0|[1-9][0-9]{0,18}")
_SEQ_LIMIT = 2**63
_NUMBER_RE = re.compile(rb"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?")


def _cacheable(header: Header) -> bool:
    return (
        header.index is None
        and not header.meta
        and all(type(v) is not dict and (type(v) is not list or all(type(x) is not list and type(x) is not dict for x in v))
                for v in header.display.values())
    )


def canonical_split(data: bytes) -> tuple[bytes, bytes, bytes, bytes, bytes] | None:
    """Split an encoded header into ``(before seq, seq digits, between, sent number, after)``.

    None when ``data`` does not have the canonical layout's markers. The split
    is by the first ``,"seq":`` and the last ``,"sent":``; in canonical JSON
    those are the two fields (a quote inside a string is always escaped).
    """
    i = data.find(_SEQ)
    if i < 0:
        return None
    j = data.find(b",", i + 7)
    k = data.rfind(_SENT)
    if j < 0 or k < j:
        return None
    m = data.find(b",", k + 8)
    if m < 0:
        m = len(data) - 1
    return data[:i], data[i + 7 : j], data[j:k], data[k + 8 : m], data[m:]


class HeaderTemplate:
    """The encoding of one validated header, ready to take another ``seq`` and ``sent``."""

    __slots__ = ("header", "_head", "_middle", "_tail")

    def __init__(self, header: Header, head: bytes, middle: bytes, tail: bytes) -> None:
        self.header = header
        self._head = head
        self._middle = middle
        self._tail = tail

    @classmethod
    def of(cls, header: Header, encoded: bytes) -> HeaderTemplate | None:
        """A template from ``header`` and its canonical ``encoded`` bytes (None if not repeatable)."""
        if not _cacheable(header):
            return None
        parts = canonical_split(encoded)
        if parts is None or parts[1] != str(header.seq).encode() or parts[3] != repr(header.sent).encode():
            return None
        return cls(header, parts[0] + _SEQ, parts[2] + _SENT, parts[4])

    def make(self, seq: int, sent: float) -> tuple[Header, bytes]:
        """The header with ``seq`` and ``sent`` (a non-negative int, a finite float) and its bytes."""
        encoded = b"%s%d%s%s%s" % (self._head, seq, self._middle, repr(sent).encode(), self._tail)
        return _fresh(self.header, seq, sent), encoded


class HeaderCache:
    """Parse received headers, validating a header that repeats a known one in all but ``seq``/``sent`` cheaply.

    Holds at most ``size`` remembered headers (least recently used dropped).
    Not thread-safe: one per receiving thread.
    """

    def __init__(self, size: int = 64) -> None:
        self.size = int(size)
        self._known: collections.OrderedDict[tuple[bytes, bytes, bytes], Header] = collections.OrderedDict()
        self.hits = 0

    def parse(self, data: bytes, payload_nbytes: int) -> Header:
        """Like :func:`~polystore.streaming.header_checks.parse_header` (same result, same errors).

        The repeat check is :func:`canonical_split` and the ``seq``/``sent``
        checks written out in one function: it runs once per received message,
        and with 128 KiB frames each Python call saved is ~1% of the receive.
        """
        if len(data) <= MAX_HEADER_BYTES:
            i = data.find(_SEQ)
            j = data.find(b",", i + 7) if i >= 0 else -1
            k = data.rfind(_SENT) if j >= 0 else -1
            if k >= j >= 0:
                m = data.find(b",", k + 8)
                if m < 0:
                    m = len(data) - 1
                known = self._known.get((data[:i], data[j:k], data[m:]))
                if known is not None and payload_nbytes == known.nbytes:
                    seq_text = data[i + 7 : j]
                    sent_text = data[k + 8 : m]
                    if _SEQ_RE.fullmatch(seq_text) and _NUMBER_RE.fullmatch(sent_text):
                        seq = int(seq_text)
                        sent = float(sent_text)
                        if seq < _SEQ_LIMIT and math.isfinite(sent):
                            self.hits += 1
                            return _fresh(known, seq, sent)
        parts = canonical_split(data) if len(data) <= MAX_HEADER_BYTES else None
        header = parse_header(data, payload_nbytes)
        if parts is not None and _cacheable(header):
            self._remember(parts, header)
        return header

    def _remember(self, parts: tuple[bytes, bytes, bytes, bytes, bytes], header: Header) -> None:
        # Only canonical bytes: then the split found exactly the seq and sent fields.
        if encode_header(header) != parts[0] + _SEQ + parts[1] + parts[2] + _SENT + parts[3] + parts[4]:
            return
        key = (parts[0], parts[2], parts[4])
        self._known[key] = header
        self._known.move_to_end(key)
        while len(self._known) > self.size:
            self._known.popitem(last=False)


def _fresh(known: Header, seq: int, sent: float) -> Header:
    """``known`` with ``seq`` and ``sent``, and its own ``display`` and ``meta`` (no value shared)."""
    header = with_seq(known, seq, sent)
    values = header.__dict__
    display: dict[str, Any] = known.display
    values["display"] = {k: (list(v) if type(v) is list else v) for k, v in display.items()} if display else {}
    values["meta"] = {}
    return header
