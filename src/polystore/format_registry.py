"""FileFormatRegistry: the way to add a file format to the disk backend.

As in the existing polystore package, a format is an extension with a
``writer(path, data, **kwargs)`` and a ``reader(path, **kwargs)``; ``path`` is
a :class:`pathlib.Path`. Register it on a backend's registry::

    disk = DiskBackend()
    disk.format_registry.register(".xyz", write_xyz, read_xyz)
    fm = FileManager({"disk": disk})
    fm.save(data, "a.xyz", "disk")

Saves of a registered format stay atomic: the writer writes into a hidden
temporary folder beside the target (to a file with the right extension, so
``np.save``-style writers do not append another), and the result is swapped
into place. The built-in formats (``polystore.formats.SUPPORTED_EXTENSIONS``)
count as registered; registering one of their extensions replaces it for
that registry only.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

from polystore.formats import CODECS, Codec, codec_for

__all__ = ["FileFormatRegistry", "Writer", "Reader"]

#: ``writer(path, data, **kwargs)`` writes ``data`` to ``path``.
Writer = Callable[..., Any]
#: ``reader(path, **kwargs)`` returns the data stored at ``path``.
Reader = Callable[..., Any]


def _normalize(ext: str) -> str:
    ext = ext.lower()
    return ext if ext.startswith(".") else "." + ext


class _RegisteredCodec(Codec):
    """A codec made of a user's writer and reader functions."""

    name = "registered format"

    def __init__(self, ext: str, writer: Writer, reader: Reader) -> None:
        self.ext = ext
        self.writer = writer
        self.reader = reader

    def write(self, data: Any, path: str, metadata: dict[str, Any] | None, **kwargs: Any) -> None:
        """Call the writer on ``<hidden folder>/data<ext>``, then move the result to ``path``."""
        folder = path + ".d.tmp"  # hidden (starts with "."), named like every temp file
        os.mkdir(folder)
        try:
            produced = os.path.join(folder, "data" + self.ext)
            self.writer(Path(produced), data, **kwargs)
            os.replace(produced, path)
        finally:
            import shutil
            shutil.rmtree(folder, ignore_errors=True)

    def read(self, path: str, **kwargs: Any) -> Any:
        """Call the reader on ``Path(path)``."""
        return self.reader(Path(path), **kwargs)


class _BuiltinWriter:
    """A built-in codec seen as a ``writer(path, data, **kwargs)`` function."""

    def __init__(self, codec: Codec) -> None:
        self.codec = codec

    def __call__(self, path: Any, data: Any, **kwargs: Any) -> None:
        self.codec.write(data, os.fspath(path), kwargs.pop("metadata", None), **kwargs)


class _BuiltinReader:
    """A built-in codec seen as a ``reader(path, **kwargs)`` function."""

    def __init__(self, codec: Codec) -> None:
        self.codec = codec

    def __call__(self, path: Any, **kwargs: Any) -> Any:
        return self.codec.read(os.fspath(path), **kwargs)


class FileFormatRegistry:
    """Extension -> writer and reader, consulted by :class:`~polystore.disk.DiskBackend`."""

    def __init__(self) -> None:
        self._codecs: dict[str, Codec] = {}

    def register(self, ext: str, writer: Writer, reader: Reader) -> None:
        """Use ``writer``/``reader`` for files ending in ``ext`` (``".xyz"``, ``".roi.zip"``)."""
        key = _normalize(ext)
        self._codecs[key] = _RegisteredCodec(key, writer, reader)

    def _codec(self, ext: str) -> Codec:
        key = _normalize(ext)
        codec = self._codecs.get(key) or CODECS.get(key)
        if codec is None:
            raise KeyError(ext)
        return codec

    def get_writer(self, ext: str) -> Writer:
        """The ``writer(path, data, **kwargs)`` for ``ext``; ``KeyError`` if none."""
        codec = self._codec(ext)
        return codec.writer if isinstance(codec, _RegisteredCodec) else _BuiltinWriter(codec)

    def get_reader(self, ext: str) -> Reader:
        """The ``reader(path, **kwargs)`` for ``ext``; ``KeyError`` if none."""
        codec = self._codec(ext)
        return codec.reader if isinstance(codec, _RegisteredCodec) else _BuiltinReader(codec)

    def is_registered(self, ext: str) -> bool:
        """True if ``ext`` has a writer and a reader (built-in or registered)."""
        key = _normalize(ext)
        return key in self._codecs or key in CODECS

    def batch_codec(self, path: str, cache: dict[str, Codec]) -> Codec:
        """:meth:`codec_for` through ``cache``, a dict kept by the caller for one batch.

        The key is the file name from its first dot, lower-cased (``x.roi.zip`` ->
        ``.roi.zip``): every extension a codec can match lies in it, so two names
        with the same key get the same codec, and a name that only shares the last
        extension (``y.zip``) does not.
        """
        name = os.path.basename(path).lower()
        dot = name.find(".")
        key = name[dot:] if dot > 0 else "/" + name  # a hidden or dotless name: only itself
        codec = cache.get(key)
        if codec is None:
            codec = cache[key] = self.codec_for(path)
        return codec

    def codec_for(self, path: str) -> Codec:
        """The codec for ``path``: a registered double (``.roi.zip``) or single extension first."""
        if self._codecs:
            name = os.path.basename(path).lower()
            for ext in sorted(self._codecs, key=len, reverse=True):
                if name.endswith(ext):
                    return self._codecs[ext]
        return codec_for(path)
