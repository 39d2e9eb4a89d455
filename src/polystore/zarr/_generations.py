"""Cluster saves of OME images on object stores: every save writes its levels under a generation of its own.

An object store cannot rename a tree, so a cluster save cannot build aside
and swap in like a local one. Instead (zarr layout 2, ``docs/zarr-layout.md``)
the levels of each save go to a *generation* inside the image group,
``<image>/gen-<12 hex digits>/<level>``, straight at their final keys:

1. the workers write every chunk of every level under the new generation,
   which no metadata names yet (the old image stays as it was, readable);
2. only when every task succeeded, the client writes the levels' array
   metadata and then the image group's metadata, whose OME ``datasets``
   paths name the new generation: that one PUT is the switch from the old
   image to the new one (readers follow the ``datasets`` paths);
3. then the client deletes everything else inside the image group (the old
   generation, the levels of an image saved otherwise, generations of
   killed clients), metadata first.

A failed save deletes its generation and leaves the old image. A killed
client never writes the group metadata, so its tasks (which the scheduler
may still run) only write into a generation nothing names; the next save
of the image or :func:`cleanup_under` removes it. A reader that read the old
group metadata and then finds the old generation gone starts over
(``_pins``) instead of reading fill values.
"""

from __future__ import annotations

import contextlib
import re
import uuid
from typing import Any

from polystore.exceptions import ImageLoadError
from polystore.zarr._codec import _Codec
from polystore.zarr._fs import _NODE_DOCS, _TMP_MARK, _FS, _FsspecFS
from polystore.zarr._nodes import _Image
from polystore.zarr._write import _ChunkWriter

__all__ = ["GENERATION_PREFIX", "is_generation", "new_generation", "publish_generation", "cleanup_under"]

#: The name of a generation folder inside an image group: this prefix and 12 hex digits.
GENERATION_PREFIX = "gen-"
_GENERATION = re.compile(r"gen-[0-9a-f]{12}")


def new_generation() -> str:
    """A fresh generation name (``gen-`` and 12 random hex digits)."""
    return GENERATION_PREFIX + uuid.uuid4().hex[:12]


def is_generation(name: str) -> bool:
    """True for a generation folder name (:func:`new_generation`)."""
    return _GENERATION.fullmatch(name) is not None


def publish_generation(
    writer: _ChunkWriter,
    client: Any,
    fs: _FS,
    target: str,
    image: _Image,
    codec: _Codec,
    name: str,
    guard: contextlib.AbstractContextManager[Any] = contextlib.nullcontext(),
) -> None:
    """Save the OME image ``image`` at ``target`` on the cluster: a new generation, switched in by one PUT.

    Raises :class:`~polystore.exceptions.ImageSaveError` when a task failed
    (its generation is deleted, the old image is untouched).
    """
    from polystore.zarr._distributed import remove_staging, write_blocks

    generation = new_generation()
    built = fs.join(target, generation)
    try:
        write_meta = write_blocks(writer, client, fs, target, image, codec, name, prefix=generation + "/")
    except BaseException:
        with contextlib.suppress(OSError):  # every task has stopped: nothing writes there any more
            fs.rmtree(built)
        raise
    # From here on the generation is left in place on a failure: whether the group metadata
    # naming it was written is not known, and the next save or cleanup removes it if not.
    with guard:
        if image.zarr_format == 2 and fs.read(fs.join(target, ".zarray")) is not None:
            # a v2 array cannot become a group in one write: it goes first (the path shows nothing briefly)
            fs.rmtree(fs.join(target, ".zarray"))
        write_meta(target)  # the levels' metadata, then the group's: the switch
    remove_other_entries(fs, target, generation, image.zarr_format)
    remove_staging(fs, target)  # staging prefixes of cluster saves from before generations existed


def remove_other_entries(fs: _FS, target: str, keep: str, zarr_format: int) -> list[str]:
    """Delete everything inside the image group ``target`` but its metadata and generation ``keep``.

    Each entry is deleted metadata first (:meth:`~polystore.zarr._fs._FS.rmtree`),
    so no level is ever left with metadata pointing at deleted chunks.
    """
    docs = {"zarr.json"} if zarr_format == 3 else {".zgroup", ".zattrs"}
    removed = []
    for entry in fs.listdir(target) or []:
        if entry == keep or entry in docs:
            continue
        path = fs.join(target, entry)
        with contextlib.suppress(OSError):
            fs.rmtree(path)
            removed.append(path)
    return removed


def _named_generations(fs: _FS, folder: str) -> set[str] | None:
    """The generations the image group at ``folder`` names; None: not an image, leave it alone.

    A folder without metadata (a new image whose save never published)
    names none. Any other node (a plain group or array, invalid metadata)
    is not ours to judge: None.
    """
    from polystore.zarr._locate import read_node_meta
    from polystore.zarr._model import GroupMeta

    try:
        got = read_node_meta(fs, folder)
    except ImageLoadError:
        return None
    if got is None:
        return set()
    ms = got.multiscale if isinstance(got, GroupMeta) else None
    if ms is None:
        return None
    return {d.path.split("/")[0] for d in ms.datasets}


def cleanup_under(fs: _FsspecFS, path: str) -> list[str]:
    """Delete what killed cluster saves left anywhere under ``path`` on an object store; return it.

    That is every staging prefix (``.<name>.polystore-tmp-*``, plain arrays'
    cluster saves) and every generation (``gen-*``) that the metadata of its
    image group does not name. What ``ZarrBackend.cleanup`` does on object
    stores; do not run it while a cluster save is running there (its
    unpublished generation would go).
    """
    fs.fs.invalidate_cache(path)
    try:
        keys = [str(k) for k in fs.fs.find(path)]
    except FileNotFoundError:
        return []
    base = path.rstrip("/") + "/"
    staging: set[str] = set()
    generations: dict[str, set[str]] = {}  # folder -> generation names found in it
    nodes: set[str] = set()  # "generations" that are zarr nodes themselves: not ours (ours have no metadata)
    for key in keys:
        parts = key[len(base) :].split("/") if key.startswith(base) else []
        for i, part in enumerate(parts[:-1]):
            if part.startswith(".") and _TMP_MARK in part:
                staging.add(base + "/".join(parts[: i + 1]))
                break
            if is_generation(part):
                folder = base + "/".join(parts[:i]) if i else path.rstrip("/")
                generations.setdefault(folder, set()).add(part)
                if i == len(parts) - 2 and parts[-1] in _NODE_DOCS:
                    nodes.add(fs.join(folder, part))
                break
    found = set(staging)
    for folder, names in generations.items():
        named = _named_generations(fs, folder)
        if named is not None:
            found.update(p for p in (fs.join(folder, g) for g in names - named) if p not in nodes)
    for prefix in sorted(found):
        fs.rmtree(prefix)
    return sorted(found)
