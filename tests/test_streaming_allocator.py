"""A receiver keeps its message buffers' pages: real ZeroMQ sockets over tcp, in a fresh process.

libzmq mallocs every received message in its I/O thread; a fresh glibc
process gave the top of that arena back to the kernel whenever ~256 KiB
were free there, so a receiver that let go of a few 128 KiB messages in a
row faulted fresh pages in for the next ones (19-26 page faults per message
in the script below before the fix, ~0.01-0.1 after). See
``polystore.streaming._malloc`` and docs/performance.md ("stream").
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

pytest.importorskip("zmq")

from polystore.streaming._malloc import settle_malloc_thresholds  # noqa: E402

_GLIBC = bool(getattr(os, "confstr", None) and os.confstr("CS_GNU_LIBC_VERSION"))

# Runs in a fresh interpreter: the test process's allocator has been shaped by other tests.
_SCRIPT = textwrap.dedent(
    """
    import resource
    import numpy as np
    from polystore.streaming import StreamingBackend

    pull = StreamingBackend(mode="pull", endpoint="tcp://127.0.0.1:0")
    push = StreamingBackend(mode="push", endpoint=pull.endpoint, send_timeout=10)
    frame = np.ones((256, 256), np.uint16)  # 128 KiB
    burst, counted, start = 64, 0, 0
    for round_ in range(16):
        if round_ == 4:  # the first rounds set the arena up
            start = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
        for _ in range(burst):
            push.save(frame, "f")
        held = [pull.load("*", timeout=10) for _ in range(burst)]
        assert all(a.nbytes == frame.nbytes and int(a[0, 0]) == 1 for a in held)
        del held  # let go of the burst's messages in a row, as a receiver that fell behind does
        if round_ >= 4:
            counted += burst
    print(counted, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - start)
    push.close()
    pull.close()
    """
)


@pytest.mark.skipif(not _GLIBC, reason="the page-return behaviour fixed here is glibc's")
def test_received_128k_messages_do_not_fault_in_fresh_pages_each_time() -> None:
    # Without the user's malloc settings: they switch glibc's adaptive thresholds off (and
    # dask.distributed's nanny leaves MALLOC_TRIM_THRESHOLD_ set in this process's environment).
    env = {k: v for k, v in os.environ.items() if not k.startswith("MALLOC_") and k != "GLIBC_TUNABLES"}
    out = subprocess.run([sys.executable, "-c", _SCRIPT], capture_output=True, text=True, timeout=120, env=env)
    assert out.returncode == 0, out.stderr
    messages, faults = (int(x) for x in out.stdout.split())
    assert messages == 12 * 64
    # A 128 KiB message spans 32 pages; before the fix 19-26 of them were faulted in per message.
    assert faults / messages < 4, f"{faults / messages:.1f} page faults per received message"


def test_settle_runs_once_per_process() -> None:
    code = textwrap.dedent(
        """
        import os
        from polystore.streaming._malloc import settle_malloc_thresholds
        first, second = settle_malloc_thresholds(), settle_malloc_thresholds()
        pid = os.fork()
        if pid == 0:
            os._exit(0 if settle_malloc_thresholds() else 3)  # a forked child is a new process
        _, status = os.waitpid(pid, 0)
        print(first, second, os.waitstatus_to_exitcode(status))
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ([str(_GLIBC), "False", "0" if _GLIBC else "3"])


def test_settle_is_safe_to_call_in_any_process() -> None:
    settle_malloc_thresholds()
    assert settle_malloc_thresholds() is False
