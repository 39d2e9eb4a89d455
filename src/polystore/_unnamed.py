"""Unnamed files (Linux ``O_TMPFILE``): written invisibly, then given their name in one step.

A save of a new file opens an unnamed file in the target's folder, writes it,
and links it at its name with ``linkat`` (which, like ``RENAME_NOREPLACE``,
refuses an existing name). Until then no name exists: a killed writer leaves
nothing behind (no temp file), and nobody sees a half-written file. It costs
one directory entry where a temp file and a rename cost two, and saves building
a temp name. Where the kernel, the filesystem or ``/proc`` does not allow it,
:func:`open_unnamed` returns None and the caller writes a named temp file.

The link names the file through this process's ``/proc/<pid>/fd`` folder, held
open (one descriptor per process): ``linkat`` then resolves one name in it
instead of walking ``/proc/self/fd/N`` from the root for every file. A forked
child never uses its parent's folder (it would name the parent's files): the
descriptor is dropped after ``fork`` and checked against the pid on each use.
"""

from __future__ import annotations

import errno
import os
import sys

__all__ = ["open_unnamed", "link_unnamed"]

_O_TMPFILE = getattr(os, "O_TMPFILE", 0)
#: errnos of a kernel or filesystem without O_TMPFILE (old kernels report EISDIR)
_UNSUPPORTED = frozenset({errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL, errno.ENOSYS})

_SUPPORTED = bool(
    sys.platform.startswith("linux")
    and _O_TMPFILE
    and os.link in os.supports_dir_fd
    and os.link in os.supports_follow_symlinks
    and os.path.isdir("/proc/self/fd")
)

#: (pid, descriptor of /proc/<pid>/fd) of this process, opened on first use
_fd_folder: tuple[int, int] | None = None


def _forget_fd_folder() -> None:
    """In a forked child: close the inherited descriptor (it names the parent's files)."""
    global _fd_folder
    if _fd_folder is not None:
        try:
            os.close(_fd_folder[1])
        except OSError:
            pass
        _fd_folder = None


if _SUPPORTED:
    os.register_at_fork(after_in_child=_forget_fd_folder)


def _own_fd_folder() -> int:
    global _fd_folder
    pid = os.getpid()
    if _fd_folder is None or _fd_folder[0] != pid:  # the pid check also covers a fork outside os.fork
        _fd_folder = (pid, os.open(f"/proc/{pid}/fd", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC))
    return _fd_folder[1]


def open_unnamed(folder: str) -> int | None:
    """A file descriptor of a new unnamed file in ``folder``, open for writing; None if unsupported.

    Raises :class:`FileNotFoundError` when ``folder`` does not exist and other
    :class:`OSError` (permissions, full disk) as ``open`` would.
    """
    if not _SUPPORTED:
        return None
    try:
        return os.open(folder or ".", os.O_WRONLY | os.O_CLOEXEC | _O_TMPFILE, 0o666)
    except OSError as exc:
        if exc.errno in _UNSUPPORTED:
            return None
        raise


def link_unnamed(fd: int, path: str) -> bool:
    """Name the unnamed file ``fd`` ``path``; False, changing nothing, if ``path`` exists.

    Other failures raise :class:`OSError` naming ``path``.
    """
    try:
        os.link(str(fd), path, src_dir_fd=_own_fd_folder(), follow_symlinks=True)
    except FileExistsError:
        return False
    except OSError as exc:
        raise OSError(exc.errno, exc.strerror, path) from None
    return True
