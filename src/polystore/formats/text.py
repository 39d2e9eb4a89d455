"""``.txt``: plain UTF-8 text."""

from __future__ import annotations

from typing import Any

from polystore.formats._codec import Codec, data_type_error


class TextCodec(Codec):
    """A ``str`` in, a ``str`` out."""

    name = "text"
    extensions = (".txt",)

    def write(self, data: Any, path: str, metadata: dict[str, Any] | None, **kwargs: Any) -> None:
        """Write a string (``encoding=`` defaults to UTF-8)."""
        if not isinstance(data, str):
            raise data_type_error(self, "str", data)
        with open(path, "w", encoding=kwargs.get("encoding", "utf-8")) as handle:
            handle.write(data)

    def read(self, path: str, **kwargs: Any) -> Any:
        """Return the file's text."""
        with open(path, encoding=kwargs.get("encoding", "utf-8")) as handle:
            return handle.read()
