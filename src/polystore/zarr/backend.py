"""ZarrBackend: the zarr / OME-Zarr storage backend, a facade over the modules of this package.

The public methods are here; what they do lives in modules named for it:
``_locate`` (paths, stores, node metadata), ``_save`` and ``_write``
(saving), ``_batch`` (the batch layout), ``_load``, ``_read`` and
``_pins`` (loading, one version per load), ``_listing`` (listings,
``info``), ``_tree`` (delete, copy, move), ``_frames`` (frames saved by
``index=`` into a declared image), ``_fs`` (the store-access seam).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, ClassVar

from polystore.annotations import Labels, Points, Shapes
from polystore.base import PathLike, StorageBackend
from polystore.config import ZarrConfig
from polystore.exceptions import ImageLoadError, PathNotFoundError
from polystore.zarr._save import _SAVE_KWARGS as _SAVE_KWARGS
from polystore.zarr._frames import _FrameSaver


class ZarrBackend(StorageBackend, _FrameSaver):
    """Chunked, compressed array storage in zarr v3 / OME-Zarr, local or on object storage.

    Args:
        root: optional base for every path: a local directory or a URL such as
            ``"s3://bucket/prefix"``. Without it, paths are local filesystem
            paths (or URLs).
        storage_options: options for fsspec (e.g. s3fs ``key``, ``secret``,
            ``client_kwargs={"endpoint_url": ...}``) used for URL paths.
        config: :class:`~polystore.config.ZarrConfig` (compressor, level,
            chunk strategy). Defaults: Blosc LZ4 level 1 with shuffle, ADAPTIVE.

    Save keywords: ``chunks``, ``axes`` ("tczyx", "zyx", "yx", ...),
    ``pyramid_levels``, ``channel_names``, ``channel_colors``, ``scale``,
    ``compressor``, ``compression_level``, ``attrs``, ``metadata``,
    ``overwrite``. NumPy arrays, framework tensors and dask arrays (written
    slab by slab) are accepted.
    Load keywords: ``lazy`` (dask array, reads nothing yet), ``level``
    (pyramid level of an OME-Zarr image), ``framework`` ("torch", "jax", ...).
    """

    _backend_type = "zarr"
    #: save_batch lays a batch out as one N-D array: never split it into pieces.
    splits_batches: ClassVar[bool] = False

    def __init__(
        self,
        root: PathLike | None = None,
        storage_options: Mapping[str, Any] | None = None,
        config: ZarrConfig | None = None,
    ) -> None:
        self.config = config or ZarrConfig()
        self.storage_options = dict(storage_options or {})
        if root is None:
            self.root: str | None = None
        else:
            text = os.fspath(root)
            # a local root is fixed now, so a later chdir does not move it
            self.root = (text if "://" in text else os.path.abspath(text)).rstrip("/")
        self._init_stores()

    def __getstate__(self) -> dict[str, Any]:
        """Picklable (for process pools): settings only; connections are re-made."""
        return {"root": self.root, "storage_options": self.storage_options, "config": self.config}

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__init__(state["root"], state["storage_options"], state["config"])  # type: ignore[misc]

    def __repr__(self) -> str:
        return f"ZarrBackend(root={self.root!r}, config={self.config!r})"

    # ------------------------------------------------------------------ save and load

    def save(self, data: Any, file_path: PathLike, **kwargs: Any) -> None:
        """Write ``data`` as a chunked array (or OME-Zarr image when ``axes=`` is given).

        Keywords: ``chunks`` (tuple/int; clipped to the array), ``axes``
        ("tczyx" subset in that order; writes OME-NGFF 0.5 multiscales),
        ``pyramid_levels`` (extra 2x-downsampled levels, y/x only),
        ``channel_names`` / ``channel_colors`` (hex "RRGGBB"), ``scale``
        (physical size per axis), ``compressor`` / ``compression_level``
        (override the config), ``attrs`` (user attributes), ``overwrite``
        (default True; False raises if the path exists), ``metadata`` (a
        JSON-able dict, read back by :meth:`load_metadata`). ``client`` (a
        ``distributed.Client``; default: the current one, if any; ``False``:
        none): a dask array is then written by the cluster's workers, chunk
        by chunk, and the metadata last by this process
        (``docs/distributed.md``). ``kind="labels"``
        at ``<image>/labels/<name>`` writes an OME-NGFF label image
        (:mod:`polystore.zarr._labels`). An OME image saved at
        ``<plate>/<row>/<col>/<field>`` joins that HCS plate (``acquisition=``
        its acquisition id; see :meth:`declare_plate`). ``index={"t": 3, "c": 1, "z": 7}``
        saves one frame into an image made by :meth:`declare_image` (see
        there; ``axes=`` may accompany it and must equal the image's axes).
        """
        if "index" in kwargs:
            index = kwargs.pop("index")
            return self._save_frame(data, file_path, index, kwargs)
        if kwargs.get("kind", "image") != "image" or isinstance(data, (Labels, Points, Shapes)):
            from polystore.zarr._labels import save_labels

            return save_labels(self, data, file_path, kwargs)
        kwargs.pop("kind", None)
        self._save(data, file_path, kwargs)

    def declare_image(
        self,
        file_path: PathLike,
        shape: Sequence[int | None],
        dtype: Any,
        axes: str = "tczyx",
        *,
        chunks: Any = None,
        channel_names: Sequence[str] | None = None,
        channel_colors: Sequence[str] | None = None,
        scale: Sequence[float] | None = None,
        compressor: Any = None,
        compression_level: int | None = None,
        overwrite: bool = True,
        acquisition: int | None = None,
        pyramid_levels: int = 0,
    ) -> None:
        """Create an empty OME-Zarr image at ``file_path`` that frames are then saved into by ``index=``.

        ``shape`` has one entry per letter of ``axes`` (``tczyx`` order, at
        least one axis before the frame's own); ``None`` for ``t`` makes it
        unlimited (it grows as frames arrive). ``chunks``, ``channel_names``,
        ``channel_colors``, ``scale``, ``compressor``, ``compression_level``
        and ``overwrite`` mean what they mean for :meth:`save`. Then, in any
        order::

            backend.save(frame, path, index={"t": 3, "c": 1, "z": 7})

        A frame is the image's trailing axes (``yx``, or ``zyx`` with an
        index of ``t``/``c``); index keys are the other axes, missing ones
        mean 0. Frames sharing a chunk are buffered until their chunk row is
        complete, :meth:`flush`, :meth:`close` or interpreter exit (at most
        ``ZarrConfig.frame_buffer_bytes`` per image). The rules are in
        ``docs/zarr-layout.md`` ("Frames in acquisition order"); a frame
        that does not fit raises :class:`~polystore.exceptions.ImageSaveError`
        and writes nothing. Declaring again replaces the image (frames
        already buffered for it are dropped); to resume an image, save frames
        into it without declaring it again. At ``<plate>/<row>/<col>/<field>``
        the image joins the plate (see :meth:`declare_plate`; ``acquisition``
        is its plate acquisition id). ``pyramid_levels=N``: :meth:`close`
        builds N halved levels once the frames are in (see :meth:`build_pyramid`).
        """
        self._declare_image(
            file_path, shape, dtype, axes, chunks, channel_names, channel_colors, scale, compressor,
            compression_level, overwrite, acquisition, pyramid_levels,
        )

    def build_pyramid(self, file_path: PathLike, levels: int) -> None:
        """Add ``levels`` 2x2-halved levels to the (frame-written) OME image at ``file_path``.

        Buffered frames of the image are flushed first; level 0 is then read
        one chunk row at a time (one frame with the default chunks), so memory
        stays at one chunk row whatever the image's size. Existing levels are
        replaced. Afterwards the image takes no more frames (build it when the
        image is complete). The rules are in ``docs/zarr-layout.md``.
        """
        self.flush(file_path)
        loc = self._locate(file_path)
        self._build_pyramid(loc, int(levels))
        self._frames_state().pop(loc.full, None)  # later frames read the image again: and are refused

    def declare_plate(
        self,
        path: PathLike,
        rows: Sequence[str],
        columns: Sequence[str],
        *,
        name: str | None = None,
        acquisitions: Sequence[Mapping[str, Any]] | None = None,
    ) -> None:
        """Make the group at ``path`` an OME-NGFF HCS plate with these ``rows`` and ``columns``.

        OME images saved (or declared) afterwards at ``<path>/<row>/<col>/<field>``
        join it: the well's and plate's metadata list them (``docs/plates.md``).
        Without declaring, a store root whose images are at ``<letters>/<digits>/<field>``
        (``plate.zarr/B/3/0``) becomes a plate by itself. ``acquisitions`` are
        OME-NGFF acquisition objects (``{"id": 0, "name": ...}``; default one
        with id 0). Declaring again adds rows, columns and acquisitions.
        """
        loc = self._locate(path)
        with self._plate_lock(loc, (loc.key,)):
            self._ensure_groups(loc.fs, loc.store, loc.key, parents_only=False, zarr_format=self._format_for(loc, None))
        self._declare_plate(loc, rows, columns, name, acquisitions)

    def load(self, file_path: PathLike, **kwargs: Any) -> Any:
        """Read the array (or member of a batch, or level 0 of an OME image) at ``file_path``.

        ``lazy=True`` returns a dask array that reads nothing until computed
        (and then only the chunks its slices touch). ``level=k`` picks a
        pyramid level of an OME-Zarr image. ``kind="labels"`` returns a
        :class:`~polystore.annotations.Labels` with the image's axes.
        """
        if "kind" in kwargs and kwargs["kind"] != "image":
            from polystore.zarr._labels import load_labels

            return load_labels(self, file_path, kwargs)
        kwargs.pop("kind", None)
        return self._load(file_path, kwargs)

    def save_batch(
        self, data_list: Sequence[Any], identifiers: Sequence[PathLike], **kwargs: Any
    ) -> None:
        """Save N images; same-shape images with one parent become ONE N-D array.

        ``"s.zarr/f0"``, ``"s.zarr/f1"``, ... (same parent, same shape and
        dtype) are written as one array at the parent (``"s.zarr"``) with axis 0
        of length N and chunk size 1 along it, and the names in its attributes;
        ``load("s.zarr/f1")`` reads only that image's chunks and
        ``load("s.zarr")`` returns the whole stack. With ``axes=`` (one letter
        more than an image has, e.g. "zyx" for a batch of yx planes) the
        parent is written as an OME-Zarr image instead. A lone image, and
        images whose parent or shape differ, are saved one by one. Into an
        existing batch, images are replaced or appended (see
        ``docs/zarr-layout.md``).
        """
        self._save_batch(data_list, identifiers, kwargs)

    def load_batch(self, file_paths: Sequence[PathLike], **kwargs: Any) -> list[Any]:
        """Read every path in order; members of one batch array are read in one pass."""
        if kwargs.get("lazy") or not file_paths:
            return [self.load(path, **kwargs) for path in file_paths]
        return self._load_batch(file_paths, kwargs)

    # ------------------------------------------------------------------ listing and the tree

    def list_dir(self, path: PathLike) -> list[str]:
        """Names of the groups, arrays, images and batch members directly inside ``path``."""
        loc = self._locate(path)
        node = self._node(loc)
        if node is None and not loc.fs.isdir(loc.full):
            raise PathNotFoundError(loc.display, "zarr")
        if node is not None and node.is_file:
            raise self._not_a_group(loc)
        return [name for name, f, d in self._children(loc, node) if f or d]

    def list_files(
        self,
        directory: PathLike,
        pattern: str | None = None,
        extensions: Iterable[str] | None = None,
        recursive: bool = False,
    ) -> list[str]:
        """Arrays, OME images and batch members under ``directory`` (paths, sorted)."""
        return self._list_files(directory, pattern, extensions, recursive)

    def exists(self, path: PathLike) -> bool:
        """True for an array, image, batch member, group or directory at ``path``."""
        loc = self._locate(path)
        try:
            if self._node(loc) is not None:
                return True
        except ImageLoadError:
            return True  # a node is there, with metadata load() will report as invalid
        return loc.fs.isdir(loc.full) and not self._is_junk(loc)

    def is_file(self, path: PathLike) -> bool:
        """True for an array, an OME image or a member of a batch."""
        node = self._node(self._locate(path))
        return node is not None and node.is_file

    def is_dir(self, path: PathLike) -> bool:
        """True for a group, a batch array (it lists its members) or a plain directory."""
        loc = self._locate(path)
        node = self._node(loc)
        if node is not None:
            return not node.is_file
        return loc.fs.isdir(loc.full) and not self._is_junk(loc)

    def ensure_directory(self, directory: PathLike) -> str:
        """Create the store and the groups on the way to ``directory``."""
        loc = self._locate(directory)
        loc.fs.makedirs(os.path.dirname(loc.store))
        self._ensure_groups(loc.fs, loc.store, loc.key, parents_only=False)
        return os.fspath(directory)

    def delete(self, path: PathLike, recursive: bool = False) -> None:
        """Remove an array, image or group (non-empty groups need ``recursive=True``).

        Deleting a member of a batch removes its name from the batch index;
        its pixels stay in the batch array until the batch is rewritten.
        """
        self._delete(path, recursive)

    def copy(self, source: PathLike, destination: PathLike) -> None:
        """Copy an array, image, group or batch member to ``destination`` (never over anything)."""
        self._copy(source, destination)

    def move(self, source: PathLike, destination: PathLike) -> None:
        """Move an array, image or group to ``destination`` (a rename on local disk; never over anything)."""
        self._move(source, destination)

    # ------------------------------------------------------------------ extras

    def cleanup(self, directory: PathLike) -> list[str]:
        """Remove what killed writers left under ``directory``; return it.

        What each kind of interrupted write leaves (hidden ``.polystore-tmp-*``
        and ``-old-*`` folders, staged batch members, metadata temp files, a
        dead cluster client's staging prefix or unnamed ``gen-*`` generation)
        is listed in docs/zarr-layout.md and docs/distributed.md. Reads and
        listings ignore them; this deletes them. Do not run it while another
        process is saving there.
        """
        loc = self._locate(directory)
        return loc.fs.cleanup(loc.full)

    def load_metadata(self, file_path: PathLike) -> dict[str, Any] | None:
        """The ``metadata=`` dict saved with the array/image (or its batch), or None."""
        loc = self._locate(file_path)
        node = self._node(loc)
        if node is None:
            raise PathNotFoundError(loc.display, "zarr")
        holder = node.member_of if node.kind == "member" and node.member_of else node
        value = holder.attrs.get("polystore_metadata")
        return dict(value) if isinstance(value, dict) else None

    def info(self, path: PathLike) -> dict[str, Any]:
        """Shape, dtype, chunks, axes and kind of what is stored at ``path``.

        Always: ``kind`` ("array", "group", "image" or "member") and
        ``zarr_format``; for arrays, images and members also ``shape``,
        ``dtype`` and ``chunks``. An OME-Zarr image (and a member of a batch
        saved as one, whose axes and scale lose the batch axis) also reports
        what a viewer needs to show it:

        - ``axes`` (axis names joined, e.g. "czyx"), ``axis_names`` (list) and
          ``levels`` (pyramid levels; ``load(path, level=k)`` reads level k);
        - ``scale``: physical size per axis of level 0, when the image has one;
        - ``channel_axis``: position of the channel axis, when there is one;
        - ``channel_names`` (OMERO labels, None where missing),
          ``channel_colors`` (hex "RRGGBB") and ``contrast_limits`` (OMERO
          ``window`` start/end per channel), each only when every channel has
          a valid entry.
        """
        return self._info(path)


#: Alias used by the application polystore was extracted from (seed 004).
ZarrStorageBackend = ZarrBackend
