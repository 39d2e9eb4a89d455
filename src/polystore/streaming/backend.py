"""``StreamingBackend``: ``save`` sends over ZeroMQ (push), ``load`` receives (pull)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar, Literal

import numpy as np

from polystore.annotations import Labels, Points, Shapes
from polystore.base import PathLike, StorageBackend
from polystore.streaming.annotation_wire import send_annotation
from polystore.streaming.endpoints import tcp_endpoint
from polystore.streaming.errors import StreamingError
from polystore.streaming.protocol import DEFAULT_MAX_FRAME_BYTES, Header
from polystore.streaming.receiver import DEFAULT_MAX_QUEUED_BYTES, DEFAULT_MAX_QUEUED_FRAMES, Frame, StreamReceiver
from polystore.streaming.rejections import RejectionPolicy
from polystore.streaming.sender import DEFAULT_SEND_TIMEOUT, StreamSender

__all__ = ["StreamingBackend", "SAVE_OPTIONS"]

#: Keyword arguments ``save`` understands (everything else is a TypeError).
SAVE_OPTIONS = (
    "layer",
    "index",
    "axes",
    "colormap",
    "contrast_limits",
    "scale",
    "metadata",
    "display",
    "kind",
    "auto_contrast",
)


def _display_options(options: Mapping[str, Any]) -> dict[str, Any]:
    display: dict[str, Any] = dict(options.get("display") or {})
    if options.get("colormap") is not None:
        display["colormap"] = str(options["colormap"])
    if options.get("contrast_limits") is not None:
        lo, hi = options["contrast_limits"]
        display["contrast_limits"] = [float(lo), float(hi)]
    if options.get("scale") is not None:
        display["scale"] = [float(s) for s in options["scale"]]
    if options.get("auto_contrast") is not None:
        display["auto_contrast"] = bool(options["auto_contrast"])
    return display


class StreamingBackend(StorageBackend):
    """Stream arrays between processes with ZeroMQ PUSH/PULL.

    ``mode="push"`` (default): :meth:`save` sends each array to a receiver that
    listens at the endpoint. ``mode="pull"``: this object binds the endpoint and
    :meth:`load` returns arrays as they arrive.

    The endpoint is ``endpoint=`` (``tcp://...`` or ``ipc://...``) or else
    ``tcp://{host}:{port}`` (loopback by default). Binding a non-loopback
    address needs ``allow_remote=True``; CURVE keys encrypt and authenticate.
    A pull queue holds at most ``max_queued_bytes`` (payloads and headers) and
    ``max_queued_frames`` frames. ``flow_control=True`` (push) sends live
    frames through a newest-only slot paced by a viewer's feedback (see
    :class:`~polystore.streaming.sender.StreamSender`).

    ``save`` options (all optional): ``layer`` (target layer name), ``index``
    (``{"t": 3, "c": 1}``: place the frame into an N-D stack), ``axes``
    (``"tczyx"``), ``colormap``, ``contrast_limits``, ``scale``,
    ``auto_contrast`` (napari: rescale the contrast on every update),
    ``metadata`` (JSON-able dict).

    ``on_rejected`` (``"warn"``, ``"raise"``, ``"ignore"``): what the next
    ``save`` does when the receiver reported frames it could not place
    (:mod:`polystore.streaming.rejections`).

    Example::

        sender = StreamingBackend(mode="push", port=5555)
        sender.save(np.arange(3), "stream")
        receiver = StreamingBackend(mode="pull", port=5555)
        receiver.load("stream")
    """

    _backend_type: ClassVar[str] = "streaming"
    supports_listing: ClassVar[bool] = False
    supports_directories: ClassVar[bool] = False

    #: Appended to the no-receiver error: how to start a receiver.
    receiver_hint: ClassVar[str] = (
        'Start one with StreamingBackend(mode="pull", endpoint=...) in the receiving process.'
    )

    def __init__(
        self,
        mode: Literal["push", "pull"] = "push",
        port: int = 5555,
        host: str = "127.0.0.1",
        endpoint: str | None = None,
        *,
        send_timeout: float = DEFAULT_SEND_TIMEOUT,
        copy: bool = False,
        allow_remote: bool = False,
        max_queued_bytes: int = DEFAULT_MAX_QUEUED_BYTES,
        max_queued_frames: int = DEFAULT_MAX_QUEUED_FRAMES,
        max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES,
        curve_server_key: bytes | str | None = None,
        curve_public_key: bytes | str | None = None,
        curve_secret_key: bytes | str | None = None,
        on_rejected: RejectionPolicy = "warn",
        flow_control: bool = False,
    ) -> None:
        if mode not in ("push", "pull"):
            raise ValueError(f"mode must be 'push' or 'pull', not {mode!r}")
        self.mode = mode
        self.endpoint = endpoint or tcp_endpoint(port, host)
        self.send_timeout = send_timeout
        self._sender: StreamSender | None = None
        self._receiver: StreamReceiver | None = None
        if mode == "push":
            self._sender = StreamSender(
                self.endpoint,
                send_timeout=send_timeout,
                copy=copy,
                hint=self.receiver_hint,
                curve_server_key=curve_server_key,
                curve_public_key=curve_public_key,
                curve_secret_key=curve_secret_key,
                on_rejected=on_rejected,
                flow_control=flow_control,
            )
        else:
            self._receiver = StreamReceiver(
                self.endpoint,
                coalesce=False,
                threaded=False,
                max_queued_bytes=max_queued_bytes,
                max_queued_frames=max_queued_frames,
                max_frame_bytes=max_frame_bytes,
                allow_remote=allow_remote,
                curve_secret_key=curve_secret_key,
                curve_public_key=curve_public_key,
            ).start()
            self.endpoint = self._receiver.endpoint

    @property
    def sender(self) -> StreamSender:
        """The PUSH sender (push mode only)."""
        if self._sender is None:
            raise StreamingError(f"{self.backend_name} backend at {self.endpoint} is in pull mode: use load()")
        return self._sender

    @property
    def receiver(self) -> StreamReceiver:
        """The PULL receiver (pull mode only)."""
        if self._receiver is None:
            raise StreamingError(f"{self.backend_name} backend at {self.endpoint} is in push mode: use save()")
        return self._receiver

    def _options(self, kwargs: Mapping[str, Any]) -> dict[str, Any]:
        if not kwargs:  # the common save(data, path): no set arithmetic per call
            return {"layer": None, "axes": None, "index": None, "display": {}, "meta": None}
        unknown = sorted(set(kwargs) - set(SAVE_OPTIONS))
        if unknown:
            raise TypeError(
                f"{self.backend_name}.save() got unexpected options {unknown}; "
                f"it understands {', '.join(SAVE_OPTIONS)}"
            )
        return {
            "layer": kwargs.get("layer"),
            "axes": kwargs.get("axes"),
            "index": kwargs.get("index"),
            "display": _display_options(kwargs),
            "meta": kwargs.get("metadata"),
        }

    def save(self, data: Any, file_path: PathLike, **kwargs: Any) -> None:
        """Send ``data`` as one message for ``file_path``; see the class docstring for options.

        Raises :class:`~polystore.streaming.errors.NoReceiverError` (a
        ``StorageError``) when no receiver takes it within ``send_timeout``.
        """
        self.send(data, file_path, **kwargs)

    def send(self, data: Any, file_path: PathLike, **kwargs: Any) -> Header:
        """Like :meth:`save` but returns the header that was sent.

        Labels, points and shapes (objects of :mod:`polystore.annotations`,
        or plain data with ``kind="labels"``/``"points"``/``"shapes"``) go as
        version-2 messages (:mod:`polystore.streaming.annotation_wire`).
        """
        kind = kwargs.get("kind", "image")
        if kind != "image" or isinstance(data, (Labels, Points, Shapes)):
            options = self._options(kwargs)
            return send_annotation(self.sender, data, str(file_path), None if kind == "image" else kind, **options)
        return self.sender.send(data, str(file_path), **self._options(kwargs))

    def save_batch(self, data_list: Sequence[Any], identifiers: Sequence[PathLike], **kwargs: Any) -> None:
        """Send every item back to back without waiting for the receiver between them.

        Options apply to every item; ``index`` may also be a list with one
        mapping per item (``[{"t": 0}, {"t": 1}, ...]``) to fill a stack.
        Labels, points and shapes in the batch go as one annotation message each.
        """
        if len(data_list) != len(identifiers):
            raise ValueError(f"save_batch: {len(data_list)} data items but {len(identifiers)} paths")
        index = kwargs.get("index")
        if kwargs.get("kind", "image") != "image" or any(isinstance(d, (Labels, Points, Shapes)) for d in data_list):
            # labels, points and shapes: one version-2 message each (images in the batch stay version 1)
            per_item = list(index) if isinstance(index, (list, tuple)) else [index] * len(data_list)
            if len(per_item) != len(data_list):
                raise ValueError(f"save_batch: {len(data_list)} data items but {len(per_item)} indices")
            for data, path, where in zip(data_list, identifiers, per_item):
                self.send(data, path, **{**kwargs, "index": where})
            return
        if isinstance(index, (list, tuple)):
            if len(index) != len(data_list):
                raise ValueError(f"save_batch: {len(data_list)} data items but {len(index)} indices")
            options = self._options({k: v for k, v in kwargs.items() if k != "index"})
            sender = self.sender
            with sender._lock:
                for data, path, where in zip(data_list, identifiers, index):
                    header, array = sender.build(data, str(path), **{**options, "index": where})
                    sender._send_locked(header, array)
            return
        self.sender.send_many(list(data_list), [str(p) for p in identifiers], **self._options(kwargs))

    def receive(self, file_path: PathLike | None = None, timeout: float | None = 10.0) -> Frame:
        """The next received frame (header + array) for ``file_path`` (any if None)."""
        path = None if file_path is None or str(file_path) == "*" else str(file_path)
        return self.receiver.get(path, timeout)

    def load(self, file_path: PathLike, **kwargs: Any) -> Any:
        """The next array (or labels, points, shapes object) received for ``file_path`` (``"*"``: any path).

        ``timeout=`` seconds (default 10) bounds the wait; then
        :class:`~polystore.streaming.errors.ReceiveTimeoutError`.
        """
        timeout = kwargs.pop("timeout", 10.0)
        if kwargs:
            raise TypeError(f"load() got unexpected options {sorted(kwargs)}")
        frame = self.receive(file_path, timeout)
        return frame.data if frame.annotation is None else frame.annotation

    def exists(self, path: PathLike) -> bool:
        """Streams hold no stored files: always False."""
        return False

    def close(self) -> None:
        """Close the socket (push: flush queued messages first; pull: stop listening)."""
        if self._sender is not None:
            self._sender.close()
        if self._receiver is not None:
            self._receiver.stop()

    def __enter__(self) -> StreamingBackend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}(mode={self.mode!r}, endpoint={self.endpoint!r})"
