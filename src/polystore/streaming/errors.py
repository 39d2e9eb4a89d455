"""Errors raised by the streaming backends (all are :class:`~polystore.exceptions.StorageError`)."""

from __future__ import annotations

from polystore.exceptions import StorageError

__all__ = ["StreamingError", "NoReceiverError", "ReceiveTimeoutError"]


class StreamingError(StorageError):
    """A streaming operation failed (socket, endpoint or protocol problem)."""


class NoReceiverError(StreamingError, TimeoutError):
    """No receiver took a message within the send timeout; names the endpoint."""

    def __init__(self, endpoint: str, timeout: float, hint: str) -> None:
        super().__init__(
            f"no receiver took the message at {endpoint} within {timeout:g} s: nothing is "
            f"listening there, or the receiver stopped reading. {hint}"
        )
        self.endpoint = endpoint
        self.timeout = timeout


class ReceiveTimeoutError(StreamingError, TimeoutError):
    """``load`` on a pull backend saw no matching message within its timeout."""

