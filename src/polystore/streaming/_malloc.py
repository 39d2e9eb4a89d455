"""Keep glibc from returning a receiver's message buffers to the kernel after every few messages.

libzmq's I/O thread allocates each received message larger than its 8 KiB
batch with ``malloc`` (a 128 KiB frame: one 128 KiB + 40 bytes block in that
thread's malloc arena); the thread that reads the message frees it. glibc
then gives the top of that arena back to the kernel (``MADV_DONTNEED``) as
soon as more than its trim threshold is free there. In a fresh process that
threshold is ~256 KiB: twice the largest block freed so far (glibc raises its
mmap threshold to the size of the largest freed mmapped block, up to 32 MiB,
and the trim threshold to twice that). A receiver that falls a few messages
behind frees them in a row, the arena's top passes 256 KiB, the pages go
back, and the next messages fault in fresh zeroed pages: measured over tcp
with 128 KiB frames, 4-9 page faults and ~35 us more CPU in the I/O thread
per message, for the rest of the process's life (docs/performance.md,
"stream"). Which process falls into that state was a matter of timing: the
cause of the bench's unsteady small-frame ratio.

:func:`settle_malloc_thresholds` puts the process in the state it reaches
anyway after it has freed one 8 MiB block (one 2048x2048 uint16 frame): it
mallocs and frees 8 MiB once, so glibc's own adaptive thresholds become 8 MiB
(blocks up to that size come from the arenas) and 16 MiB (the most a heap
keeps free at its top). Nothing is set that glibc would not set itself; no
other C library is touched.

A threshold the user set (``MALLOC_TRIM_THRESHOLD_``, ``MALLOC_MMAP_THRESHOLD_``
or ``GLIBC_TUNABLES`` in the environment) turns glibc's adaptive thresholds
off, and then this changes nothing: the user's setting wins. Note that
dask.distributed's nanny sets ``MALLOC_TRIM_THRESHOLD_=65536`` in the
environment of the process that starts a ``LocalCluster`` of worker
processes, so receivers started from that process afterwards inherit it.
"""

from __future__ import annotations

import ctypes
import os

__all__ = ["settle_malloc_thresholds", "WARM_BYTES"]

#: The block malloced and freed once: one 2048x2048 uint16 frame.
WARM_BYTES = 8 * 1024**2

_settled_pid = [0]


def settle_malloc_thresholds(nbytes: int = WARM_BYTES) -> bool:
    """Raise glibc's adaptive mmap/trim thresholds as freeing one ``nbytes`` block does (once per process).

    Returns True when it did so now, False when already done in this process
    or when the C library is not glibc (then nothing is done).
    """
    pid = os.getpid()
    if _settled_pid[0] == pid:
        return False
    _settled_pid[0] = pid
    try:
        if not os.confstr("CS_GNU_LIBC_VERSION"):
            return False
        libc = ctypes.CDLL(None)
        malloc, free = libc.malloc, libc.free
    except (ValueError, OSError, AttributeError):  # not glibc, or no such names
        return False
    malloc.argtypes = [ctypes.c_size_t]
    malloc.restype = ctypes.c_void_p
    free.argtypes = [ctypes.c_void_p]
    free.restype = None
    block = malloc(nbytes)
    if not block:
        return False
    free(block)
    return True
