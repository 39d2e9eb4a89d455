"""Streaming backends: send arrays over ZeroMQ to a receiver (napari, Fiji, a process).

The wire format is in :mod:`polystore.streaming.protocol` and
``docs/streaming-protocol.md``. This package needs pyzmq
(``pip install "polystore[streaming]"``) and never imports Qt or napari.
"""

from __future__ import annotations

from polystore.streaming._zmq import zmq as _zmq  # noqa: F401 - fails early without pyzmq
from polystore.streaming.backend import StreamingBackend
from polystore.streaming.errors import NoReceiverError, ReceiveTimeoutError, StreamingError
from polystore.streaming.placement import LayerUpdate, Placer, layer_name_from_path
from polystore.streaming.protocol import PROTOCOL_VERSION, Header, ProtocolError
from polystore.streaming.receiver import Frame, ReceiverStats, StreamReceiver
from polystore.streaming.rejections import RejectedFrame, RejectedFrameError, RejectedFrameWarning, RejectionLog
from polystore.streaming.sender import StreamSender

__all__ = [
    "StreamingBackend",
    "StreamSender",
    "StreamReceiver",
    "Frame",
    "ReceiverStats",
    "Header",
    "PROTOCOL_VERSION",
    "ProtocolError",
    "StreamingError",
    "NoReceiverError",
    "ReceiveTimeoutError",
    "Placer",
    "LayerUpdate",
    "layer_name_from_path",
    "RejectedFrame",
    "RejectedFrameWarning",
    "RejectedFrameError",
    "RejectionLog",
]
