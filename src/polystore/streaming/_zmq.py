"""Import pyzmq or explain which extra installs it; one zmq context per process."""

from __future__ import annotations

import os
import threading
from typing import Any

from polystore.exceptions import MissingDependencyError

try:
    import zmq
except ImportError as exc:  # pragma: no cover - exercised only without pyzmq
    raise MissingDependencyError("pyzmq", "streaming", "the streaming backends") from exc

__all__ = ["zmq", "context"]

_lock = threading.Lock()
_context: Any = None
_context_pid = -1


def context() -> zmq.Context[Any]:
    """The process-wide zmq context, recreated after a fork (contexts are not fork-safe)."""
    global _context, _context_pid
    with _lock:
        if _context is None or _context_pid != os.getpid():
            _context = zmq.Context()
            _context_pid = os.getpid()
        ctx: zmq.Context[Any] = _context
        return ctx
