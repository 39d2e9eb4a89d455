"""Where the bridge jar and its classpath (ImageJ, JeroMQ, gson) are found."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

from polystore.base import PathLike
from polystore.streaming.fiji.control import FijiBridgeError

__all__ = ["find_bridge_jar", "bridge_classpath", "JAR_ENV", "CLASSPATH_ENV", "BRIDGE_MAIN_CLASS", "DEBIAN_JARS"]

#: Java class the launcher runs.
BRIDGE_MAIN_CLASS = "polystore.fiji.BridgePlugin"
#: Environment variables: the bridge jar, and extra classpath entries (ImageJ, JeroMQ, gson jars).
JAR_ENV = "POLYSTORE_FIJI_JAR"
CLASSPATH_ENV = "POLYSTORE_FIJI_CLASSPATH"
#: The jars the bridge runs with on Debian/Ubuntu (imagej, libjeromq-java, libgoogle-gson-java).
DEBIAN_JARS = ("/usr/share/java/ij.jar", "/usr/share/java/jeromq.jar", "/usr/share/java/gson.jar")


def _source_build_dir() -> Path:
    return Path(__file__).resolve().parents[4] / "fiji_bridge" / "build"


def find_bridge_jar(jar: PathLike | None = None) -> Path:
    """Locate ``polystore_bridge.jar``: ``jar``, ``$POLYSTORE_FIJI_JAR``, or the source tree's build.

    Raises :class:`FijiBridgeError` explaining how to build it.
    """
    candidates = [Path(p) for p in (jar, os.environ.get(JAR_ENV)) if p]
    candidates.append(_source_build_dir() / "polystore_bridge.jar")
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise FijiBridgeError(
        f"the Fiji bridge jar was not found (looked at {', '.join(map(str, candidates))}); "
        f"build it with fiji_bridge/build.sh or set {JAR_ENV}"
    )


def bridge_classpath(jar: PathLike | None = None, extra: Sequence[PathLike] = ()) -> list[str]:
    """The classpath to run the bridge: its jar, then ImageJ, JeroMQ and gson.

    Those come from ``extra``, ``$POLYSTORE_FIJI_CLASSPATH``, the
    ``classpath.txt`` the build script wrote next to the jar, or the Debian
    locations (``/usr/share/java``), in that order.
    """
    bridge = find_bridge_jar(jar)
    entries = [str(p) for p in extra]
    env = os.environ.get(CLASSPATH_ENV)
    if not entries and env:
        entries = [p for p in env.split(os.pathsep) if p]
    recorded = bridge.parent / "classpath.txt"
    if not entries and recorded.is_file():
        entries = [line.strip() for line in recorded.read_text().splitlines() if line.strip()]
    if not entries:
        entries = list(DEBIAN_JARS)
    missing = [p for p in entries if not Path(p).exists()]
    if missing:
        raise FijiBridgeError(
            f"classpath entries for the Fiji bridge are missing: {missing}; install ImageJ, JeroMQ "
            "and gson (Debian: apt-get install imagej libjeromq-java libgoogle-gson-java) or set "
            + CLASSPATH_ENV
        )
    return [str(bridge), *entries]
