"""``FijiStreamingBackend``: ``fm.save(..., backend="fiji")`` sends images to the Fiji bridge."""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from polystore.annotations import Labels, Points, Shapes
from polystore.base import PathLike
from polystore.streaming.backend import StreamingBackend
from polystore.streaming.fiji.control import START_HINT, FijiControl, control_endpoint
from polystore.streaming.fiji.dtypes import as_imagej_array
from polystore.streaming.rejections import RejectedFrame, RejectionPolicy
from polystore.streaming.sender import DEFAULT_SEND_TIMEOUT

__all__ = ["FijiStreamingBackend", "DEFAULT_FIJI_PORT", "REJECTION_POLL_INTERVAL"]

#: Data (PULL) port of the bridge; its control (REP) port is this + 1.
DEFAULT_FIJI_PORT = 5580
#: Seconds between two asks for rejected frames while saving (flush always asks).
REJECTION_POLL_INTERVAL = 0.25


def _is_annotation(data: Any, kwargs: Mapping[str, Any]) -> bool:
    return kwargs.get("kind", "image") != "image" or isinstance(data, (Labels, Points, Shapes))


class FijiStreamingBackend(StreamingBackend):
    """Send images to Fiji/ImageJ running the polystore bridge.

    ``fm.save(img, "A01/site1.tif", backend="fiji")`` shows ``img`` in the
    image titled ``"A01/site1"`` (a later save to the same path replaces it).
    Frames with ``layer="series", index={"c": 1, "z": 4, "t": 0}`` land at that
    position of the hyperstack titled ``"series"``, which grows as needed; an
    N-D array with ``axes="tczyx"`` (or the default ``zyx``/``czyx``/``tczyx``)
    becomes a whole hyperstack. RGB/RGBA frames (``axes`` ending in ``c`` with
    3 or 4 channels, or a uint8 ``(H, W, 3|4)`` array) become ImageJ RGB images.
    ``contrast_limits`` sets ImageJ's display range. Labels, points and shapes
    (:mod:`polystore.annotations`) become a label image with a glasbey-style
    LUT and ImageJ ROIs (the ROI Manager, with a display); ``control.rois()``
    lists the ROIs the bridge holds (docs/fiji-bridge.md).

    ``save_batch(arrays, paths, layer=..., index=[{...}, ...])`` takes one
    index per array. With no bridge listening, ``save`` raises
    :class:`~polystore.streaming.errors.NoReceiverError` after ``send_timeout``.

    Frames the bridge refuses to place (another dtype or size than their
    hyperstack) are reported back: :meth:`flush` fetches the reports, and
    ``save`` asks for them at most every :data:`REJECTION_POLL_INTERVAL` s; the
    next ``save`` then warns (:class:`~polystore.streaming.rejections.RejectedFrameWarning`)
    or raises, per ``on_rejected``.

    Parameters
    ----------
    port, host:
        The bridge's data endpoint ``tcp://host:port`` (default 127.0.0.1:5580).
    control_port:
        The bridge's control port (default ``port + 1``).
    endpoint:
        A full ``tcp://`` endpoint instead of ``host``/``port``.
    send_timeout:
        Seconds one message may wait for the bridge before raising.
    copy:
        ``False`` sends the array's memory without a copy: do not modify it
        until the bridge has it (see :meth:`flush`).
    on_rejected:
        ``"warn"`` (default), ``"raise"`` or ``"ignore"``.
    """

    _backend_type: ClassVar[str] = "fiji"
    receiver_hint: ClassVar[str] = START_HINT

    def __init__(
        self,
        port: int = DEFAULT_FIJI_PORT,
        host: str = "127.0.0.1",
        endpoint: str | None = None,
        *,
        control_port: int | None = None,
        send_timeout: float = DEFAULT_SEND_TIMEOUT,
        control_timeout: float = 5.0,
        copy: bool = False,
        on_rejected: RejectionPolicy = "warn",
    ) -> None:
        super().__init__(
            "push",
            port=port,
            host=host,
            endpoint=endpoint,
            send_timeout=send_timeout,
            copy=copy,
            on_rejected=on_rejected,
        )
        self.control = FijiControl(control_endpoint(self.endpoint, control_port), control_timeout)
        self._rejections_seen = 0
        self._next_poll = 0.0

    def save(self, data: Any, file_path: PathLike, **kwargs: Any) -> None:
        """Send ``data`` to the bridge as the image for ``file_path`` (see the class docstring).

        Labels, points and shapes (:mod:`polystore.annotations`, or plain data
        with ``kind=``) go as protocol-2 messages: labels become an image with a
        glasbey-style LUT, points and shapes ImageJ ROIs (docs/fiji-bridge.md).
        """
        self._poll_rejections()
        if _is_annotation(data, kwargs):
            self.send(data, file_path, **kwargs)
            return
        self.sender.send(as_imagej_array(data), str(file_path), **self._options(kwargs))

    def save_batch(
        self, data_list: Sequence[Any], identifiers: Sequence[PathLike], **kwargs: Any
    ) -> None:
        """Send every array back to back; ``index`` may be a list with one mapping per array."""
        if len(data_list) != len(identifiers):
            raise ValueError(f"save_batch: {len(data_list)} data items but {len(identifiers)} paths")
        index = kwargs.pop("index", None)
        if index is None or isinstance(index, Mapping):
            indices: list[Any] = [index] * len(data_list)
        else:
            indices = list(index)
            if len(indices) != len(data_list):
                raise ValueError(f"save_batch: {len(data_list)} data items but {len(indices)} indices")
        options = self._options(kwargs)
        self._poll_rejections()
        sender = self.sender
        for data, path, idx in zip(data_list, identifiers, indices):
            if _is_annotation(data, kwargs):
                self.send(data, path, **{**kwargs, "index": idx})
                continue
            sender.send(as_imagej_array(data, stacklevel=3), str(path), **{**options, "index": idx})

    def load(self, file_path: PathLike, **kwargs: Any) -> np.ndarray[Any, Any]:
        """Not available: images go into Fiji. Use :meth:`save_tiff` to get pixels back."""
        raise self._unsupported("load (images go into Fiji; ask it for a TIFF with save_tiff)", "fiji")

    def _poll_rejections(self, force: bool = False, status: Mapping[str, Any] | None = None) -> None:
        """Fetch new reports of refused frames into ``sender.rejections`` (throttled unless ``force``)."""
        now = time.monotonic()
        if not force and now < self._next_poll:
            return
        self._next_poll = now + REJECTION_POLL_INTERVAL
        sender = self.sender
        if sender.next_seq == 0:
            return
        stream = sender.stream_id
        if status is not None:
            known = int(status.get("streams", {}).get(stream, {}).get("rejected", 0))
            if known <= self._rejections_seen:
                return
        try:
            reply = self.control.rejected(stream, self._rejections_seen, timeout=min(self.control.timeout, 2.0))
        except Exception:  # noqa: BLE001 - reports are best effort; the data path decides
            return
        self._rejections_seen = max(self._rejections_seen, int(reply.get("total", 0)))
        reports = [RejectedFrame.from_dict(r, "fiji") for r in reply.get("rejected", []) if isinstance(r, dict)]
        if reports:
            sender.rejections.report(reports)

    def flush(self, timeout: float = 10.0) -> dict[str, Any]:
        """Wait until the bridge has handled every image this backend sent; return its status.

        Also fetches reports of frames it refused; the next ``save`` surfaces them.
        """
        last = self.sender.next_seq - 1
        if last < 0:
            return self.control.status()
        status = self.control.wait_for_stream(self.sender.stream_id, last, timeout)
        self._poll_rejections(force=True, status=status)
        return status

    def ping(self) -> dict[str, Any]:
        """The bridge's ``ping`` reply (raises :class:`FijiBridgeError` if none)."""
        return self.control.ping()

    def status(self) -> dict[str, Any]:
        """The bridge's counters and images (see :meth:`FijiControl.status`)."""
        return self.control.status()

    def save_tiff(self, title: str, path: PathLike, timeout: float = 10.0, overwrite: bool = False) -> Path:
        """Flush, then have ImageJ save the image ``title`` as TIFF (see :meth:`FijiControl.save_tiff`)."""
        self.flush(timeout)
        return self.control.save_tiff(title, path, overwrite=overwrite)
