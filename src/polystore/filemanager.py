"""FileManager: the one call for every backend.

``fm.save(data, path, backend="x", **kw)`` resolves the backend by name and
calls ``backend.save(data, path, **kw)``. Nothing else happens on that path;
batch calls are the same with one resolution and an optional progress bar.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from polystore import _tree
from polystore.backend_registry import BackendRegistry, normalize_backend_name
from polystore.batch_progress import PROGRESS_THRESHOLD, chunks_with_progress, one_call_with_progress, wants_progress
from polystore.base import PathLike, StorageBackend, require_capability
from polystore.exceptions import PathExistsError, StorageError, UnsupportedOperationError
from polystore.formats import IMAGE_EXTENSIONS
from polystore.utils import natural_sort

if TYPE_CHECKING:
    from polystore.tree_copy import CopyResult

__all__ = ["FileManager", "PROGRESS_THRESHOLD"]

class FileManager:
    """Save, load and list through any backend, chosen per call by name.

    Parameters
    ----------
    registry:
        A :class:`BackendRegistry`, or a plain dict of name -> backend
        instance. Names are case-insensitive; an enum value works too.

    A FileManager is cheap; use one per thread (backends may be shared when
    they are thread-safe).

    Example::

        fm = FileManager(BackendRegistry())
        fm.save(np.zeros((2, 2)), "out.npy", backend="disk")
        data = fm.load("out.npy", backend="disk")
    """

    def __init__(self, registry: BackendRegistry | Mapping[str, StorageBackend] | None = None) -> None:
        if registry is None:
            registry = BackendRegistry()
        elif not isinstance(registry, BackendRegistry):
            registry = BackendRegistry(dict(registry))
        self.registry: BackendRegistry = registry
        self._resolved: dict[Any, StorageBackend] = {}
        # backend name -> its bound save / load: one dict lookup per call on the hot path
        self._savers: dict[Any, Callable[..., None]] = {}
        self._loaders: dict[Any, Callable[..., Any]] = {}
        registry.watch(self._forget_backends)

    def _forget_backends(self) -> None:
        """Drop resolved backends: a name was registered again (see :meth:`BackendRegistry.register`)."""
        self._resolved.clear()
        self._savers.clear()
        self._loaders.clear()

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self.registry.watch(self._forget_backends)

    def get_backend(self, backend: Any) -> StorageBackend:
        """The backend instance for a name (``"disk"``, ``"Zarr"``, ``Backend.MEMORY``)."""
        instance = self._resolved.get(backend)
        if instance is None:
            instance = self.registry.get_backend(normalize_backend_name(backend))
            self._resolved[backend] = instance
        return instance

    #: The existing package's name for :meth:`get_backend`.
    _get_backend = get_backend

    def _backend_for(self, backend: Any, flag: str, operation: str) -> StorageBackend:
        instance = self.get_backend(backend)
        require_capability(instance, flag, operation)
        return instance

    # -- data -------------------------------------------------------------
    def save(self, data: Any, output_path: PathLike, backend: Any, **kwargs: Any) -> None:
        """Save ``data`` at ``output_path`` through ``backend``; kwargs go to the backend.

        ``backend`` may also be several: ``("zarr", "napari")``, or a dict of
        backend -> its own keywords (``{"zarr": {}, "napari": {"layer": "live"}}``);
        each saves in order (docs/frame-index.md, "One call, several backends").
        """
        try:
            save = self._savers[backend]
        except (KeyError, TypeError):  # first use of this name, or a list or dict of backends
            if isinstance(backend, (tuple, list, dict)):
                from polystore._fanout import save_to_each

                return save_to_each(self, data, output_path, backend, kwargs)
            save = self._savers[backend] = self.get_backend(backend).save
        if kwargs:
            save(data, output_path, **kwargs)
        else:  # a plain call skips packing an empty kwargs dict (memory saves are ~0.2 us)
            save(data, output_path)

    def load(self, file_path: PathLike, backend: Any, **kwargs: Any) -> Any:
        """Load and return the data at ``file_path`` (``framework="torch"`` etc. converts)."""
        try:
            load = self._loaders[backend]
        except KeyError:
            load = self._loaders[backend] = self.get_backend(backend).load
        return load(file_path, **kwargs) if kwargs else load(file_path)

    def save_batch(
        self,
        data_list: Sequence[Any],
        output_paths: Sequence[PathLike],
        backend: Any,
        progress: bool | None = None,
        **kwargs: Any,
    ) -> None:
        """Save ``data_list[i]`` at ``output_paths[i]`` for every i, in order.

        Raises ``ValueError`` before writing anything if the lengths differ.
        ``progress=True`` shows a tqdm bar; ``None`` shows one only for long
        batches when stderr is a terminal.
        """
        if len(data_list) != len(output_paths):
            raise ValueError(
                f"save_batch: {len(data_list)} data items but {len(output_paths)} output paths"
            )
        instance = self.get_backend(backend)
        if not wants_progress(len(data_list), progress):
            instance.save_batch(data_list, output_paths, **kwargs)
            return
        if not instance.splits_batches:
            with one_call_with_progress(len(data_list), f"save {instance.backend_name}"):
                instance.save_batch(data_list, output_paths, **kwargs)
            return
        pairs = list(zip(data_list, output_paths))
        for chunk in chunks_with_progress(pairs, f"save {instance.backend_name}"):
            instance.save_batch([d for d, _ in chunk], [p for _, p in chunk], **kwargs)

    def load_batch(
        self,
        file_paths: Sequence[PathLike],
        backend: Any,
        progress: bool | None = None,
        **kwargs: Any,
    ) -> list[Any]:
        """Load every path and return the results in the same order."""
        instance = self.get_backend(backend)
        if not wants_progress(len(file_paths), progress):
            return instance.load_batch(file_paths, **kwargs)
        out: list[Any] = []
        for chunk in chunks_with_progress(file_paths, f"load {instance.backend_name}"):
            out.extend(instance.load_batch(chunk, **kwargs))
        return out

    def save_array(self, array: Any, output_path: PathLike, backend: Any, **kwargs: Any) -> None:
        """Save one array (NumPy, torch, JAX, ...) - the same as :meth:`save`."""
        self.save(array, output_path, backend, **kwargs)

    def load_array(self, file_path: PathLike, backend: Any, **kwargs: Any) -> Any:
        """Load one array - the same as :meth:`load` (``framework=`` picks the array type)."""
        return self.load(file_path, backend, **kwargs)

    def load_metadata(self, file_path: PathLike, backend: Any) -> dict[str, Any] | None:
        """The ``metadata=`` saved with a file, or None (disk and zarr backends)."""
        instance = self.get_backend(backend)
        reader = getattr(instance, "load_metadata", None)
        if reader is None:
            raise UnsupportedOperationError(
                f"backend {instance.backend_name!r} does not store metadata; use disk or zarr"
            )
        result: dict[str, Any] | None = reader(file_path)
        return result

    # -- listing ----------------------------------------------------------
    def list_files(
        self,
        directory: PathLike,
        backend: Any,
        pattern: str | None = None,
        extensions: Iterable[str] | None = None,
        recursive: bool = False,
        **kwargs: Any,
    ) -> list[str]:
        """Paths of the files in ``directory`` (glob ``pattern``, ``extensions`` set), natural order.

        Natural order sorts ``img2`` before ``img10``, as the existing polystore
        package did. Raises ``NotADirectoryError`` (a polystore error) when
        ``directory`` is a file and ``FileNotFoundError`` when it is missing.
        Other keyword arguments go to the backend (a virtual backend's
        context, e.g. ``plate_id=``).
        """
        instance = self._backend_for(backend, "supports_listing", "listing")
        return natural_sort(
            instance.list_files(  # type: ignore[call-arg]
                directory, pattern=pattern, extensions=extensions, recursive=recursive, **kwargs
            )
        )

    def list_image_files(
        self,
        directory: PathLike,
        backend: Any,
        pattern: str | None = None,
        extensions: Iterable[str] | None = None,
        recursive: bool = False,
    ) -> list[str]:
        """Like :meth:`list_files`, defaulting to image extensions (.tif, .tiff, .npy, .png, .jpg)."""
        return self.list_files(
            directory,
            backend,
            pattern=pattern,
            extensions=IMAGE_EXTENSIONS if extensions is None else extensions,
            recursive=recursive,
        )

    def list_dir(self, path: PathLike, backend: Any) -> list[str]:
        """Names of the entries directly inside ``path``, in natural order."""
        return natural_sort(self._backend_for(backend, "supports_listing", "listing").list_dir(path))

    def exists(self, path: PathLike, backend: Any) -> bool:
        """True if ``path`` exists in the backend."""
        return self._backend_for(backend, "supports_listing", "exists").exists(path)

    def is_file(self, path: PathLike, backend: Any) -> bool:
        """True if ``path`` holds data."""
        return self._backend_for(backend, "supports_listing", "is_file").is_file(path)

    def is_dir(self, path: PathLike, backend: Any) -> bool:
        """True if ``path`` is a directory (or zarr group)."""
        return self._backend_for(backend, "supports_listing", "is_dir").is_dir(path)

    # -- directories ------------------------------------------------------
    def ensure_directory(self, directory: PathLike, backend: Any) -> str:
        """Create ``directory`` if missing; return the path as ``str``."""
        instance = self._backend_for(backend, "supports_directories", "directories")
        return instance.ensure_directory(directory)

    def delete(self, path: PathLike, backend: Any, recursive: bool = False) -> None:
        """Delete a file, or a directory (``recursive=True`` when it is not empty)."""
        self._backend_for(backend, "supports_directories", "delete").delete(path, recursive=recursive)

    def delete_all(self, path: PathLike, backend: Any) -> bool:
        """Delete a file, a symlink or a whole directory tree; return True."""
        self._backend_for(backend, "supports_directories", "delete_all").delete_all(path)
        return True

    def copy(
        self, source: PathLike, destination: PathLike, backend: Any, dest_backend: Any = None
    ) -> None:
        """Copy a file or tree; with ``dest_backend`` copy a file across backends.

        Never overwrites: an existing ``destination`` raises ``FileExistsError``
        (a :class:`PathExistsError`) and nothing is written.
        """
        if dest_backend is None or self.get_backend(dest_backend) is self.get_backend(backend):
            self._backend_for(backend, "supports_directories", "copy").copy(source, destination)
            return
        self._refuse_existing(destination, dest_backend)
        self.save(self.load(source, backend), destination, dest_backend)

    def move(
        self,
        source: PathLike,
        destination: PathLike,
        backend: Any,
        dest_backend: Any = None,
        replace_symlinks: bool = False,
    ) -> None:
        """Move a file or tree; with ``dest_backend`` move a file across backends.

        Never overwrites: an existing ``destination`` raises ``FileExistsError``
        (a :class:`PathExistsError`), except that ``replace_symlinks=True``
        replaces a symlink found there.
        """
        target_name = backend if dest_backend is None else dest_backend
        if replace_symlinks and self.is_symlink(destination, target_name):
            self.delete(destination, target_name)
        if dest_backend is None or self.get_backend(dest_backend) is self.get_backend(backend):
            self._backend_for(backend, "supports_directories", "move").move(source, destination)
            return
        self.copy(source, destination, backend, dest_backend)
        self.delete(source, backend)

    def _refuse_existing(self, path: PathLike, backend: Any) -> None:
        instance = self.get_backend(backend)
        if instance.supports_listing and instance.exists(path):
            raise PathExistsError(
                f"{instance.backend_name}: destination {os.fspath(path)!r} already exists; "
                "delete it first to replace it",
                os.fspath(path),
                instance.backend_name,
            )

    # -- symlinks ---------------------------------------------------------
    def create_symlink(
        self,
        source_path: PathLike,
        symlink_path: PathLike,
        backend: Any,
        overwrite_symlinks_only: bool = False,
    ) -> bool:
        """Make ``symlink_path`` a link to ``source_path``; return True.

        An existing entry at ``symlink_path`` raises ``FileExistsError`` (a
        :class:`PathExistsError`), unless ``overwrite_symlinks_only=True`` and
        that entry is itself a symlink, which is then replaced.
        """
        instance = self._backend_for(backend, "supports_symlinks", "symlinks")
        overwrite = overwrite_symlinks_only and instance.is_symlink(symlink_path)
        instance.create_symlink(source_path, symlink_path, overwrite=overwrite)
        return True

    def is_symlink(self, path: PathLike, backend: Any) -> bool:
        """True if ``path`` is a symbolic link (False where the backend has no links)."""
        return self.get_backend(backend).is_symlink(path)

    def stat(self, path: PathLike, backend: Any) -> dict[str, Any]:
        """``{"type", "path", "exists"}`` (+ ``"target"``) describing ``path``; see the backend's ``stat``."""
        return self.get_backend(backend).stat(path)

    # -- trees ------------------------------------------------------------
    def find_file_recursive(self, directory: PathLike, filename: str, backend: Any) -> str | None:
        """The first file (natural order) named ``filename`` under ``directory``, or None."""
        for path in self.list_files(directory, backend, recursive=True):
            if _tree.basename(path) == filename:
                return path
        return None

    def collect_dirs_and_files(
        self, base_dir: PathLike, backend: Any, recursive: bool = True
    ) -> tuple[list[str], list[str]]:
        """``(dirs, files)`` under ``base_dir`` (itself included in ``dirs``), natural order.

        Symlinks count as files and are not followed, so a link loop cannot
        recurse forever. A missing ``base_dir`` raises ``FileNotFoundError``.
        """
        instance = self._backend_for(backend, "supports_listing", "listing")
        dirs, files = _tree.collect_dirs_and_files(instance, os.fspath(base_dir), recursive)
        return natural_sort(dirs), natural_sort(files)

    def mirror_directory_with_symlinks(
        self,
        source_dir: PathLike,
        target_dir: PathLike,
        backend: Any,
        recursive: bool = True,
        overwrite_symlinks_only: bool = False,
    ) -> int:
        """Recreate ``source_dir``'s files in ``target_dir`` as symlinks; return how many.

        Every target is checked before any link is made: if one exists (and is
        not a symlink that ``overwrite_symlinks_only=True`` may replace),
        ``FileExistsError`` is raised and nothing is created.
        """
        instance = self._backend_for(backend, "supports_symlinks", "symlinks")
        _, files = self.collect_dirs_and_files(source_dir, backend, recursive=recursive)
        pairs = _tree.mirror_pairs(os.fspath(source_dir), os.fspath(target_dir), files)
        overwrite = _tree.check_link_targets(instance, pairs, overwrite_symlinks_only)
        instance.ensure_directory(target_dir)
        for (source, link), replace in zip(pairs, overwrite):
            instance.create_symlink(source, link, overwrite=replace)
        return len(pairs)

    def mirror_directory_structure(
        self,
        source_dir: PathLike,
        target_dir: PathLike,
        backend: Any,
        recursive: bool = True,
        target_backend: Any = None,
    ) -> list[str]:
        """Create in ``target_dir`` the folders found in ``source_dir``; return the created paths.

        ``target_backend`` (default: the same backend) lets the tree be mirrored
        into another backend, e.g. from disk into memory.
        """
        source = self._backend_for(backend, "supports_listing", "listing")
        target_name = backend if target_backend is None else target_backend
        target = self._backend_for(target_name, "supports_directories", "directories")
        src_root = os.fspath(source_dir)
        dst_root = os.fspath(target_dir)
        created = [target.ensure_directory(dst_root)]
        pending = [""]
        while pending:
            relative = pending.pop()
            here = os.path.join(src_root, relative) if relative else src_root
            for name in source.list_dir(here):
                child = os.path.join(relative, name) if relative else name
                if source.is_dir(os.path.join(src_root, child)):
                    created.append(target.ensure_directory(os.path.join(dst_root, child)))
                    if recursive:
                        pending.append(child)
        return created

    def copy_tree(
        self,
        source: PathLike,
        destination: PathLike,
        to: str | None = None,
        fmt: str | None = None,
        compressor: str | None = None,
        axes: str | None = None,
        progress: bool | None = False,
        plate: bool | None = None,
        client: Any = None,
    ) -> CopyResult:
        """Copy a file, folder or zarr store to ``destination`` as ``polystore cp`` does; return its counts.

        Converts between disk and zarr (``to="zarr"``/``"disk"``, default from
        ``destination``'s name), resumably: finished items are journaled and
        skipped on the next call when source and target are unchanged, and a
        new destination appears only when complete. Returns a ``CopyResult``
        (``copied``, ``skipped``, ``destination``). Options and rules:
        docs/cli.md (``cp``) and :mod:`polystore.tree_copy`. Bad arguments
        raise :class:`StorageError`; an interrupted or failed copy keeps its
        finished part, which the same call continues. A folder of ImageXpress
        or Opera/Operetta files copied to zarr becomes one HCS plate
        (docs/plates.md) unless ``plate=False``; ``plate=True`` requires one.
        With ``client`` (a ``distributed.Client``) every item is a task on its
        workers (docs/distributed.md).
        """
        from polystore.tree_copy import copy_tree

        return copy_tree(self, os.fspath(source), os.fspath(destination), to=to, fmt=fmt,
                         compressor=compressor, axes=axes, progress=progress, plate=plate, client=client)

    def get_available_backends(self) -> list[str]:
        """Names of the backends usable through this FileManager."""
        return self.registry.get_available_backends()

    def __repr__(self) -> str:
        return f"FileManager({self.registry!r})"

