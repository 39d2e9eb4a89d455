"""Small helpers the existing polystore package exposed: natural sorting, ZeroMQ URLs."""

from __future__ import annotations

import re
from collections.abc import Iterable

__all__ = ["natural_sort", "natural_key", "get_zmq_transport_url"]

_DIGITS = re.compile(r"(\d+)")


def natural_key(text: str) -> list[int | str]:
    """Sort key putting ``"img2"`` before ``"img10"`` (digit runs compare as numbers, text case-folded)."""
    return [int(part) if part.isdigit() else part.lower() for part in _DIGITS.split(text)]


def natural_sort(items: Iterable[str]) -> list[str]:
    """``items`` sorted in natural (human) order: ``file2`` before ``file10``."""
    return sorted(items, key=natural_key)


def get_zmq_transport_url(port: int, transport_mode: str = "tcp") -> str:
    """The ZeroMQ endpoint for ``port``: ``tcp://127.0.0.1:<port>`` or a private ``ipc://`` socket.

    The ipc socket lives in polystore's private runtime directory (see
    ``docs/streaming-protocol.md``), not in ``/tmp``.
    """
    from polystore.streaming.endpoints import ipc_endpoint, tcp_endpoint

    if transport_mode == "tcp":
        return tcp_endpoint(port)
    if transport_mode == "ipc":
        return ipc_endpoint(f"polystore_{port}")
    raise ValueError(f"unknown transport mode {transport_mode!r}; use 'tcp' or 'ipc'")
