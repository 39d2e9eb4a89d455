"""Endpoint helpers: defaults, loopback checks and private ipc socket directories.

Defaults keep everything on the local machine: ``tcp://127.0.0.1:PORT`` or an
``ipc://`` socket inside the user's runtime directory (mode 0700). Binding to
any other interface is refused unless the caller passes ``allow_remote=True``.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import socket
import stat
import tempfile
from pathlib import Path

__all__ = [
    "tcp_endpoint",
    "runtime_dir",
    "ipc_endpoint",
    "is_loopback",
    "check_bind_allowed",
    "prepare_ipc",
    "RemoteBindError",
]

_LOOPBACK_NAMES = {"localhost", "127.0.0.1", "::1", "[::1]", "ip6-localhost"}


class RemoteBindError(ValueError):
    """Binding to a non-loopback interface without ``allow_remote=True``."""


def tcp_endpoint(port: int, host: str = "127.0.0.1") -> str:
    """``tcp://host:port`` (IPv6 hosts are bracketed)."""
    if not 0 < int(port) < 65536:
        raise ValueError(f"port must be 1..65535, got {port}")
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"
    return f"tcp://{host}:{int(port)}"


def runtime_dir() -> Path:
    """The private directory for polystore ipc sockets, created with mode 0700.

    ``$XDG_RUNTIME_DIR/polystore`` when that variable is set, else
    ``<tmp>/polystore-<uid>``. Refuses a directory owned by another user or
    readable by others.
    """
    base = os.environ.get("XDG_RUNTIME_DIR")
    if base and os.path.isdir(base):
        path = Path(base) / "polystore"
    else:
        path = Path(tempfile.gettempdir()) / f"polystore-{os.getuid()}"
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = path.lstat()
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
        raise PermissionError(f"{path} is not a directory owned by this user")
    if stat.S_IMODE(info.st_mode) & 0o077:
        os.chmod(path, 0o700)
    return path


def ipc_endpoint(name: str) -> str:
    """``ipc://<runtime_dir>/<name>.sock`` for a short socket ``name``."""
    if not name or "/" in name or len(name) > 64:
        raise ValueError(f"bad ipc socket name {name!r}")
    return f"ipc://{runtime_dir() / name}.sock"


def _host_of(endpoint: str) -> str | None:
    if not endpoint.startswith("tcp://"):
        return None
    rest = endpoint[len("tcp://") :]
    if rest.startswith("["):
        return rest[1 : rest.index("]")]
    host, _, _port = rest.rpartition(":")
    return host.split(";")[-1]  # "tcp://src;dst:port" form


def is_loopback(endpoint: str) -> bool:
    """True for ipc/inproc endpoints and tcp endpoints on a loopback address."""
    if endpoint.startswith(("ipc://", "inproc://")):
        return True
    host = _host_of(endpoint)
    if host is None:
        return False
    if host in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # an interface name or a hostname: treat as remote


def check_bind_allowed(endpoint: str, allow_remote: bool) -> None:
    """Raise :class:`RemoteBindError` for a non-loopback bind without ``allow_remote``."""
    if not is_loopback(endpoint) and not allow_remote:
        raise RemoteBindError(
            f"refusing to listen on {endpoint!r}: it is not a loopback or ipc endpoint. "
            "Pass allow_remote=True (and preferably CURVE keys) to accept other machines."
        )


def prepare_ipc(endpoint: str) -> None:
    """Get an ipc path ready to bind: parent directory (mode 0700) made, path not in use.

    libzmq silently replaces a socket file that another receiver still
    listens on; this raises ``OSError(EADDRINUSE)`` instead. A stale file
    (nobody listening) is left for libzmq to replace.
    """
    if not endpoint.startswith("ipc://"):
        return
    path = Path(endpoint[len("ipc://") :])
    if path.parent and not path.parent.exists():
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    if path.is_socket():
        probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            probe.settimeout(1.0)
            probe.connect(str(path))
        except OSError:
            return  # stale: nobody is listening
        finally:
            probe.close()
        raise OSError(errno.EADDRINUSE, f"another receiver is listening on {endpoint}")
