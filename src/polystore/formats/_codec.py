"""The interface of a file format codec used by the disk backend."""

from __future__ import annotations

from typing import Any, ClassVar

from polystore.exceptions import UnsupportedFormatError


class Codec:
    """Reads and writes one file format. Subclasses set ``name`` and ``extensions``.

    ``write`` writes to a temporary path that the disk backend then swaps into
    place of the target, so a codec never has to care about atomicity. The
    temporary path is new: the codec creates it.
    """

    name: ClassVar[str] = ""
    extensions: ClassVar[tuple[str, ...]] = ()
    #: True when ``metadata=`` is stored inside the file (else: a JSON sidecar).
    embeds_metadata: ClassVar[bool] = False
    #: Annotation kinds (``"labels"``, ``"points"``, ``"shapes"``) the format holds.
    kinds: ClassVar[frozenset[str]] = frozenset()
    #: True when :meth:`write_fd` is implemented (the disk backend then writes an unnamed file).
    writes_fd: ClassVar[bool] = False

    def write(self, data: Any, path: str, metadata: dict[str, Any] | None, **kwargs: Any) -> None:
        """Write ``data`` to ``path`` (a new temporary file)."""
        raise NotImplementedError

    def write_fd(self, data: Any, fd: int, **kwargs: Any) -> None:
        """Write ``data`` to the open, empty file ``fd`` (only for ``writes_fd`` codecs)."""
        raise NotImplementedError

    def read(self, path: str, **kwargs: Any) -> Any:
        """Read and return the data stored in ``path``."""
        raise NotImplementedError

    def read_metadata(self, path: str) -> dict[str, Any] | None:
        """Return metadata embedded in the file (only for ``embeds_metadata`` codecs)."""
        return None


def data_type_error(codec: Codec, expected: str, data: Any) -> TypeError:
    """A TypeError naming what the codec accepts and what it got."""
    return TypeError(
        f"{codec.name} files ({', '.join(codec.extensions)}) hold {expected}, "
        f"not {type(data).__module__}.{type(data).__qualname__}"
    )


def take_kind(codec: Codec, kwargs: dict[str, Any], path: str, extensions_by_kind: dict[str, list[str]]) -> None:
    """Check a ``kind=`` keyword against what ``codec`` holds; drop ``kind="image"`` (the default).

    A kind the codec holds stays in ``kwargs`` for it; any other raises
    :class:`~polystore.exceptions.UnsupportedFormatError` naming the
    extensions that hold that kind.
    """
    kind = kwargs.get("kind")
    if kind is None:
        return
    if kind == "image":
        del kwargs["kind"]
        return
    if kind in codec.kinds:
        return
    known = ", ".join(["image", *sorted(extensions_by_kind)])
    if kind not in extensions_by_kind:
        raise UnsupportedFormatError(f"disk: unknown kind={kind!r} for {path!r}; known kinds: {known}")
    raise UnsupportedFormatError(
        f"disk: {codec.name} files ({', '.join(codec.extensions)}) cannot hold {kind}, as asked for {path!r}; "
        f"use {', '.join(extensions_by_kind[kind])}"
    )
