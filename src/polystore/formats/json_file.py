"""``.json``: dicts, lists and other JSON values."""

from __future__ import annotations

from typing import Any

from polystore.formats._codec import Codec, data_type_error


class JsonCodec(Codec):
    """JSON documents (``indent=`` passes to json.dump)."""

    name = "JSON"
    extensions = (".json",)

    def write(self, data: Any, path: str, metadata: dict[str, Any] | None, **kwargs: Any) -> None:
        """Write a JSON-serialisable value."""
        try:
            import json
            text = json.dumps(data, indent=kwargs.get("indent", 2))
        except TypeError as exc:
            raise data_type_error(self, "JSON values (dict, list, str, numbers)", data) from exc
        with open(path, "w", encoding="utf-8") as handle:
            handle.write(text)

    def read(self, path: str, **kwargs: Any) -> Any:
        """Parse the file."""
        with open(path, encoding="utf-8") as handle:
            import json
            return json.load(handle)
