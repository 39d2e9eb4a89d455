"""``.npz``: several named arrays in one zip archive (``np.savez_compressed``)."""

from __future__ import annotations

from typing import Any

import numpy as np

from polystore.formats._codec import Codec, data_type_error


class NpzCodec(Codec):
    """A dict of name -> array (or one array, stored as ``arr_0``)."""

    name = "NumPy archive"
    extensions = (".npz",)

    def write(self, data: Any, path: str, metadata: dict[str, Any] | None, **kwargs: Any) -> None:
        """Write arrays; ``compress=False`` stores them uncompressed."""
        if isinstance(data, np.ndarray):
            arrays = {"arr_0": data}
        elif isinstance(data, dict) and all(isinstance(v, np.ndarray) for v in data.values()):
            arrays = data
        else:
            raise data_type_error(self, "an array or a dict of arrays", data)
        save = np.savez_compressed if kwargs.get("compress", True) else np.savez
        with open(path, "wb") as handle:
            save(handle, allow_pickle=False, **arrays)

    def read(self, path: str, **kwargs: Any) -> Any:
        """Return a dict of arrays, or the single array for a one-array archive."""
        with np.load(path, allow_pickle=False) as archive:
            arrays = {name: archive[name] for name in archive.files}
        if list(arrays) == ["arr_0"]:
            return arrays["arr_0"]
        return arrays
