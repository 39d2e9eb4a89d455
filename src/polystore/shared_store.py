"""A ``multiprocessing`` manager's dict, with a timeout and errors that name the manager.

``MemoryBackend(shared_dict=Manager().dict())`` shares one store between
processes; every access is a round trip to the manager process. The plain
proxy raises ``BrokenPipeError``/``EOFError`` when that process has died and
blocks forever when it is stopped or stuck. :class:`ManagedStore` wraps the
proxy (the memory backend does so itself) and instead raises
:class:`~polystore.exceptions.StorageError` naming the manager's address and
what to do, after at most ``timeout`` seconds per call.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, MutableMapping
from typing import Any

from polystore.exceptions import StorageError

__all__ = ["ManagedStore", "DEFAULT_MANAGER_TIMEOUT", "is_manager_proxy"]

#: Seconds one call to the manager process may take before :class:`StorageError`.
DEFAULT_MANAGER_TIMEOUT = 30.0


def is_manager_proxy(obj: object) -> bool:
    """True for a ``multiprocessing`` manager proxy (``Manager().dict()`` and the like)."""
    if type(obj).__module__ != "multiprocessing.managers":
        return False
    from multiprocessing.managers import BaseProxy

    return isinstance(obj, BaseProxy)


class ManagedStore(MutableMapping[str, Any]):
    """A manager dict proxy as a mapping whose calls time out and fail with clear errors.

    Parameters
    ----------
    proxy:
        The ``DictProxy`` from ``Manager().dict()``.
    timeout:
        Seconds each call may wait for the manager (None: wait forever, as the
        plain proxy does).
    """

    def __init__(self, proxy: Any, timeout: float | None = DEFAULT_MANAGER_TIMEOUT) -> None:
        self.proxy = proxy
        self.timeout = timeout
        self.address = proxy._token.address

    # -- one round trip ---------------------------------------------------
    def _connection(self) -> Any:
        proxy = self.proxy
        try:
            return proxy._tls.connection
        except AttributeError:
            pass
        # BaseProxy._connect, bounded: the handshake blocks while the manager is stopped
        from multiprocessing import current_process
        from multiprocessing.managers import dispatch  # type: ignore[attr-defined]

        result: list[Any] = []
        name = f"{current_process().name}|{threading.current_thread().name}"

        def connect() -> None:
            try:
                conn = proxy._Client(proxy._token.address, authkey=proxy._authkey)
                dispatch(conn, None, "accept_connection", (name,))
                result.append(conn)
            except BaseException as exc:  # noqa: BLE001 - handed to the caller below
                result.append(exc)

        worker = threading.Thread(target=connect, name="polystore-manager-connect", daemon=True)
        worker.start()
        worker.join(self.timeout)
        if not result:
            raise self._stalled("connect", None)
        if isinstance(result[0], BaseException):
            raise result[0]
        proxy._tls.connection = result[0]
        return result[0]

    def _drop_connection(self) -> None:
        conn = getattr(self.proxy._tls, "connection", None)
        if conn is not None:
            del self.proxy._tls.connection
            try:
                conn.close()
            except OSError:
                pass

    def _call(self, method: str, *args: Any) -> Any:
        from multiprocessing.managers import convert_to_error  # type: ignore[attr-defined]

        try:
            conn = self._connection()
            conn.send((self.proxy._id, method, args, {}))
            if self.timeout is not None and not conn.poll(self.timeout):
                # the reply may still come: this connection is out of step now
                self._drop_connection()
                raise self._stalled(method, self.timeout)
            kind, result = conn.recv()
        except (OSError, EOFError) as exc:  # BrokenPipeError, ConnectionRefusedError, ...
            self._drop_connection()
            raise StorageError(
                f"memory: the shared-dict manager process at {self.address!r} is gone "
                f"({type(exc).__name__} during {method}); the shared store is lost: start a new "
                "multiprocessing.Manager() and give its dict to every process"
            ) from exc
        if kind == "#RETURN":
            return result
        raise convert_to_error(kind, result)

    def _stalled(self, method: str, waited: float | None) -> StorageError:
        return StorageError(
            f"memory: the shared-dict manager process at {self.address!r} did not answer {method} "
            f"within {waited if waited is not None else self.timeout} s: it is stopped, stuck or "
            "overloaded; check that process, or give MemoryBackend(manager_timeout=...) more time"
        )

    # -- the mapping ------------------------------------------------------
    def __getitem__(self, key: str) -> Any:
        return self._call("__getitem__", key)

    def __setitem__(self, key: str, value: Any) -> None:
        self._call("__setitem__", key, value)

    def __delitem__(self, key: str) -> None:
        self._call("__delitem__", key)

    def __contains__(self, key: object) -> bool:
        return bool(self._call("__contains__", key))

    def __len__(self) -> int:
        return int(self._call("__len__"))

    def __iter__(self) -> Iterator[str]:
        return iter(self._call("keys"))

    def keys(self) -> Any:
        """A list of the keys (one round trip)."""
        return self._call("keys")

    def get(self, key: str, default: Any = None) -> Any:
        """The value at ``key``, or ``default`` (one round trip)."""
        return self._call("get", key, default)

    def pop(self, key: str, *default: Any) -> Any:
        """Remove ``key`` and return its value (or ``default``), in one round trip."""
        return self._call("pop", key, *default)

    def clear(self) -> None:
        """Remove every key (one round trip)."""
        self._call("clear")
