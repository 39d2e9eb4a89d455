"""Turn an :class:`OSError` from the filesystem into a polystore error naming the path, backend and fix."""

from __future__ import annotations

import errno

from polystore.exceptions import (
    ImageSaveError,
    StorageError,
    StorageFullError,
    StoragePermissionError,
    SymlinkLoopError,
)

__all__ = ["storage_error"]

_FIXES: dict[int, tuple[type[StorageError], str]] = {
    errno.EACCES: (StoragePermissionError, "check that you may write to that folder, or save elsewhere"),
    errno.EPERM: (StoragePermissionError, "check that you may write to that folder, or save elsewhere"),
    errno.EROFS: (StoragePermissionError, "the filesystem is mounted read-only; save to another location"),
    errno.ENOSPC: (StorageFullError, "the disk is full; free some space or save to another disk"),
    errno.EDQUOT: (StorageFullError, "your disk quota is used up; free some space or save to another disk"),
    errno.EFBIG: (StorageFullError, "the file is over the size limit (ulimit -f) or the filesystem's; save elsewhere"),
    errno.ELOOP: (SymlinkLoopError, "remove or correct the symbolic link that points back into its own folder"),
}


def storage_error(exc: OSError, path: str, backend: str, doing: str) -> StorageError:
    """The polystore error for ``exc``, raised while ``doing`` (e.g. ``"save"``) ``path``.

    Permission, read-only, disk-full and symlink-loop errors get their own
    class (each also the builtin a caller may catch); the rest become
    :class:`ImageSaveError`. The ``errno`` is kept on the builtin kinds.
    """
    cls, fix = _FIXES.get(exc.errno or 0, (ImageSaveError, ""))
    reason = exc.strerror or str(exc)
    where = f" ({exc.filename!r})" if exc.filename and exc.filename != path else ""
    message = f"{backend}: could not {doing} {path!r}: {reason}{where}"
    error = cls(f"{message}; {fix}" if fix else message)
    if isinstance(error, OSError):
        error.errno = exc.errno  # no filename: OSError would then format its own message
    return error
