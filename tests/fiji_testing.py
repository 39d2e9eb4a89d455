"""Helpers shared by the Fiji bridge tests (not a test module)."""

from __future__ import annotations

import functools
import shutil
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
BUILD_SCRIPT = ROOT / "fiji_bridge" / "build.sh"
JAR = ROOT / "fiji_bridge" / "build" / "polystore_bridge.jar"
NEEDS = "openjdk-17-jdk-headless imagej libjeromq-java libgoogle-gson-java (apt-get install)"
JARS = ("/usr/share/java/ij.jar", "/usr/share/java/jeromq.jar", "/usr/share/java/gson.jar")


@functools.cache
def build_jar() -> Path:
    """Compile the bridge with fiji_bridge/build.sh once per test session (javac takes ~10-20 s);
    skip when Java or the jars are absent."""
    if shutil.which("javac") is None or not all(Path(jar).exists() for jar in JARS):
        pytest.skip(f"the Fiji bridge tests need {NEEDS}")
    result = subprocess.run(["sh", str(BUILD_SCRIPT)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert JAR.is_file()
    return JAR


def free_ports(n: int = 2) -> list[int]:
    """``n`` TCP ports that were free on 127.0.0.1 a moment ago."""
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def free_port_pair() -> int:
    """A TCP port ``p`` on 127.0.0.1 with ``p + 1`` free too (the bridge's control port)."""
    for _ in range(50):
        with socket.socket() as data:
            data.bind(("127.0.0.1", 0))
            port = data.getsockname()[1]
            with socket.socket() as control:
                try:
                    control.bind(("127.0.0.1", port + 1))
                except OSError:
                    continue
        return port
    raise RuntimeError("no pair of adjacent free TCP ports on 127.0.0.1")


def wait_until(predicate: Callable[[], Any], timeout: float = 10.0, what: str = "condition") -> Any:
    """Poll ``predicate`` until it returns something truthy; fail the test after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.02)
