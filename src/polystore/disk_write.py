"""How the disk backend writes a file: a new file put in place, never a rewrite.

See :meth:`DiskWrites._write` and docs/formats.md ("Atomic saves") for the
order of steps and what a crash or a failure leaves.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable
from typing import Any, TypeVar

from polystore._oserror import storage_error
from polystore._unnamed import link_unnamed, open_unnamed
from polystore.atomic import fsync_dir, place_new, replace_atomically, temp_name_beside
from polystore.disk_paths import SIDECAR_SUFFIX
from polystore.exceptions import ImageSaveError, StorageError, UnsupportedFormatError
from polystore.formats import Codec, check_kind

__all__ = ["DiskWrites"]

T = TypeVar("T")


class DiskWrites:
    """The write steps of :class:`~polystore.disk.DiskBackend` (a mixin; ``durable`` is its flag)."""

    durable: bool = False

    def _write(
        self,
        codec: Codec,
        data: Any,
        path: str,
        metadata: dict[str, Any] | None,
        kwargs: dict[str, Any],
    ) -> None:
        """Write a new file and put it in place of ``path``; nothing is written in place.

        A new file is written unnamed (Linux ``O_TMPFILE``, for codecs that
        write to a file descriptor) and linked at ``path``, or written to a
        temp file renamed to ``path``. The replaced file is unlinked, never
        rewritten: a reader that still has it open (or memory-mapped) keeps
        the old bytes. The metadata sidecar is written only after the data is
        in place, and the previous one is removed just before the swap, so a
        sidecar never describes data that is not there; a kill in between
        leaves the data without metadata.
        """
        if kwargs:
            check_kind(codec, kwargs, path)
        sidecar_text = _sidecar_text(metadata, codec, path)
        try:
            if not (codec.writes_fd and self._write_unnamed(codec, data, path, kwargs)):
                self._write_named(codec, data, path, metadata, kwargs)
        except BaseException as exc:
            raise self._save_error(exc, path, codec) from exc
        if sidecar_text is not None:
            try:
                _write_text_atomically(path + SIDECAR_SUFFIX, sidecar_text)
            except Exception as exc:
                raise self._save_error(exc, path + SIDECAR_SUFFIX, codec) from exc

    def _write_unnamed(self, codec: Codec, data: Any, path: str, kwargs: dict[str, Any]) -> bool:
        """Write ``data`` to an unnamed file and link it at ``path``; False if unsupported here."""
        folder = os.path.dirname(path)
        fd = _creating_folder(lambda: open_unnamed(folder), path)
        if fd is None:
            return False
        try:
            codec.write_fd(data, fd, **kwargs)
            if self.durable:
                os.fsync(fd)
            if link_unnamed(fd, path):  # a new file: one link, done
                if self.durable:
                    fsync_dir(folder or ".")
                return True
            tmp = temp_name_beside(path)  # replacing: named as a temp file, then swapped in
            link_unnamed(fd, tmp)
        finally:
            os.close(fd)
        self._swap_in(tmp, path, codec)
        return True

    def _write_named(self, codec: Codec, data: Any, path: str, metadata: Any, kwargs: dict[str, Any]) -> None:
        """Write ``data`` to a new temp file beside ``path`` and rename it to ``path``."""
        tmp = temp_name_beside(path)
        try:
            _creating_folder(lambda: codec.write(data, tmp, metadata, **kwargs), path)
            if self.durable:
                _fsync_file(tmp)
            if place_new(tmp, path, durable=self.durable):  # a new file: one rename, done
                return
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
        self._swap_in(tmp, path, codec)

    def _swap_in(self, tmp: str, path: str, codec: Codec) -> None:
        """Put the complete file ``tmp`` in place of the existing ``path`` (removed on failure)."""
        try:
            if not codec.embeds_metadata:
                _unlink_if_present(path + SIDECAR_SUFFIX)
            replace_atomically(tmp, path, durable=self.durable)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise

    @staticmethod
    def _save_error(exc: BaseException, path: str, codec: Codec) -> BaseException:
        if isinstance(exc, TypeError):
            return UnsupportedFormatError(f"disk: cannot save to {path!r}: {exc}")
        if isinstance(exc, StorageError) or not isinstance(exc, Exception):
            return exc
        if isinstance(exc, OSError):
            return storage_error(exc, path, "disk", f"save ({codec.name})")
        return ImageSaveError(
            f"disk: could not save {path!r} as {codec.name}: {type(exc).__name__}: {exc}"
        )


def _creating_folder(call: Callable[[], T], path: str) -> T:
    """``call()``, retried once after creating the folder of ``path`` if that was missing."""
    try:
        return call()
    except FileNotFoundError:
        folder = os.path.dirname(path)
        if not folder or os.path.isdir(folder):
            raise
        os.makedirs(folder, exist_ok=True)
        return call()


def _sidecar_text(metadata: dict[str, Any] | None, codec: Codec, path: str) -> str | None:
    """The JSON of a ``<file>.meta.json`` sidecar, checked before anything is written."""
    if not metadata or codec.embeds_metadata:
        return None
    try:
        import json
        return json.dumps(metadata)
    except (TypeError, ValueError) as exc:
        raise UnsupportedFormatError(
            f"disk: metadata for {path!r} must be JSON-serialisable: {exc}"
        ) from None


def _write_text_atomically(path: str, text: str) -> None:
    tmp = temp_name_beside(path)
    try:
        with open(tmp, "x", encoding="utf-8") as handle:
            handle.write(text)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _unlink_if_present(path: str) -> None:
    with contextlib.suppress(FileNotFoundError):
        os.unlink(path)


def _fsync_file(path: str) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
