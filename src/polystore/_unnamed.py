"""Unnamed files (Linux ``O_TMPFILE``): written invisibly, then given their name in one step.

A save of a new file opens an unnamed file in the target's folder, writes it,
and links it at its name with ``linkat`` (which, like ``RENAME_NOREPLACE``,
refuses an existing name). Until then no name exists: a killed writer leaves
nothing behind (no temp file), and nobody sees a half-written file. It costs
one directory entry where a temp file and a rename cost two, and saves building
a temp name. Where the kernel, the filesystem or ``/proc`` does not allow it,
:func:`open_unnamed` returns None and the caller writes a named temp file.
"""

from __future__ import annotations

import ctypes
import errno
import os
import sys
from typing import Any

__all__ = ["open_unnamed", "link_unnamed"]

_O_TMPFILE = getattr(os, "O_TMPFILE", 0)
_AT_FDCWD = -100
_AT_SYMLINK_FOLLOW = 0x400
#: errnos of a kernel or filesystem without O_TMPFILE (old kernels report EISDIR)
_UNSUPPORTED = frozenset({errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL, errno.ENOSYS})


def _load_linkat() -> Any:
    if not sys.platform.startswith("linux") or not _O_TMPFILE or not os.path.isdir("/proc/self/fd"):
        return None
    try:
        function = ctypes.CDLL(None, use_errno=True).linkat
    except (OSError, AttributeError):
        return None
    function.argtypes = [ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
    function.restype = ctypes.c_int
    return function


_linkat = _load_linkat()


def open_unnamed(folder: str) -> int | None:
    """A file descriptor of a new unnamed file in ``folder``, open for writing; None if unsupported.

    Raises :class:`FileNotFoundError` when ``folder`` does not exist and other
    :class:`OSError` (permissions, full disk) as ``open`` would.
    """
    if _linkat is None:
        return None
    try:
        return os.open(folder or ".", os.O_WRONLY | os.O_CLOEXEC | _O_TMPFILE, 0o666)
    except OSError as exc:
        if exc.errno in _UNSUPPORTED:
            return None
        raise


def link_unnamed(fd: int, path: str) -> bool:
    """Name the unnamed file ``fd`` ``path``; False, changing nothing, if ``path`` exists."""
    source = b"/proc/self/fd/%d" % fd
    if _linkat(_AT_FDCWD, source, _AT_FDCWD, os.fsencode(path), _AT_SYMLINK_FOLLOW) == 0:
        return True
    err = ctypes.get_errno()
    if err == errno.EEXIST:
        return False
    raise OSError(err, os.strerror(err), path)
