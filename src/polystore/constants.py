"""Names the existing polystore package kept in ``polystore.constants``."""

from __future__ import annotations

import enum

from polystore.config import Backend

__all__ = ["Backend", "TransportMode", "DEFAULT_BACKEND"]


class TransportMode(str, enum.Enum):
    """How streaming backends reach a viewer: ZeroMQ over ``ipc`` sockets or ``tcp``."""

    IPC = "ipc"
    TCP = "tcp"


#: The backend intermediate results use by default.
DEFAULT_BACKEND = Backend.MEMORY
