"""``backend="fiji"``: stream images into Fiji / ImageJ 1 as hyperstacks.

The receiving side is the polystore Fiji bridge, an ImageJ 1 plugin
(``fiji_bridge/`` in the source tree, ``docs/fiji-bridge.md``) that binds a
PULL socket at ``tcp://127.0.0.1:5580`` and answers JSON requests on a control
socket at the next port (``ping``, ``status``, ``wait``, ``rejected``,
``save_tiff``, ``screenshot``, ``close``, ``quit``). This package only sends,
talks to the control socket and starts or stops a bridge JVM; it never
imports Java. One file per part:

* :mod:`~polystore.streaming.fiji.dtypes`: which dtypes ImageJ holds and how
  others are converted (:func:`to_imagej_dtype`, :class:`FijiConversionWarning`);
* :mod:`~polystore.streaming.fiji.control`: the control client :class:`FijiControl`;
* :mod:`~polystore.streaming.fiji.backend`: :class:`FijiStreamingBackend`
  (the shared :class:`~polystore.streaming.sender.StreamSender`, same wire
  format as napari);
* :mod:`~polystore.streaming.fiji.jars`: finding the bridge jar and its classpath;
* :mod:`~polystore.streaming.fiji.launcher`: :class:`FijiBridge`, which starts
  the JVM (headless, or the ImageJ window when ``$DISPLAY`` is set), waits
  until it answers ``ping`` and stops it by its PID only (through the shared
  :class:`~polystore.streaming.viewer_process.ViewerProcess`);
* :mod:`~polystore.streaming.fiji.cli`: ``python -m polystore.streaming.fiji
  start|stop|status|ping|save-tiff|run``.
"""

from __future__ import annotations

from polystore.streaming.fiji.backend import DEFAULT_FIJI_PORT, FijiStreamingBackend
from polystore.streaming.fiji.cli import main
from polystore.streaming.fiji.control import FijiBridgeError, FijiControl
from polystore.streaming.fiji.dtypes import IMAGEJ_DTYPES, FijiConversionWarning, to_imagej_dtype
from polystore.streaming.fiji.jars import BRIDGE_MAIN_CLASS, CLASSPATH_ENV, JAR_ENV, bridge_classpath, find_bridge_jar
from polystore.streaming.fiji.launcher import FijiBridge

__all__ = [
    "FijiStreamingBackend",
    "FijiBridge",
    "FijiControl",
    "FijiBridgeError",
    "FijiConversionWarning",
    "to_imagej_dtype",
    "find_bridge_jar",
    "bridge_classpath",
    "DEFAULT_FIJI_PORT",
    "BRIDGE_MAIN_CLASS",
    "IMAGEJ_DTYPES",
    "JAR_ENV",
    "CLASSPATH_ENV",
    "main",
]
