"""Backends known by name, imported only when first used.

Like fsspec's ``known_implementations``: the built-in table maps a name to
``"module:Class"`` and the pip extra that provides its runtime. A
:class:`~polystore.base.StorageBackend` subclass with ``_backend_type = "x"``
joins the registry when its class is defined.
"""

from __future__ import annotations

import enum
import importlib
import importlib.util
import weakref
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

from polystore.exceptions import BackendNotFoundError, MissingDependencyError

if TYPE_CHECKING:
    from polystore.base import StorageBackend

__all__ = [
    "BackendRegistry",
    "create_storage_registry",
    "KnownBackend",
    "KNOWN_BACKENDS",
    "register_backend_class",
    "normalize_backend_name",
    "is_installed",
    "STORAGE_BACKENDS",
    "StorageBackendClasses",
]

#: Names this module also offers for the existing package, defined in
#: :mod:`polystore.shared_registry` (which owns the process-wide instances).
_SHARED_NAMES = frozenset(
    {"get_backend_instance", "cleanup_backend_connections", "cleanup_all_backends", "register_cleanup_callback"}
)


class KnownBackend(NamedTuple):
    """Where a built-in backend lives and what it needs."""

    target: str  # "module:Class"
    extra: str | None  # pip extra providing its runtime, None for core
    requires: tuple[str, ...]  # importable top-level modules it needs


#: The built-in backends: name -> where the class lives, its pip extra, the modules it needs.
KNOWN_BACKENDS: dict[str, KnownBackend] = {
    "disk": KnownBackend("polystore.disk:DiskBackend", None, ()),
    "memory": KnownBackend("polystore.memory:MemoryBackend", None, ()),
    "zarr": KnownBackend("polystore.zarr:ZarrBackend", "zarr", ("zarr",)),
    "streaming": KnownBackend(
        "polystore.streaming:StreamingBackend", "streaming", ("zmq",)
    ),
    "napari": KnownBackend(
        "polystore.streaming.napari:NapariStreamingBackend", "streaming", ("zmq",)
    ),
    "fiji": KnownBackend("polystore.streaming.fiji:FijiStreamingBackend", "fiji", ("zmq",)),
}

_registered_classes: dict[str, type[StorageBackend]] = {}


def normalize_backend_name(name: Any) -> str:
    """Turn ``"Disk"``, ``Backend.DISK`` or ``"disk"`` into ``"disk"``."""
    if isinstance(name, enum.Enum):
        name = name.value
    if not isinstance(name, str):
        raise TypeError(f"backend must be a name (str or enum), not {type(name).__name__}")
    return name.lower()


def register_backend_class(name: str, cls: type[StorageBackend]) -> None:
    """Make ``cls`` known under ``name`` to every registry (called by subclassing)."""
    _registered_classes[normalize_backend_name(name)] = cls


def is_installed(module: str) -> bool:
    """True if the top-level ``module`` can be imported (without importing it)."""
    try:
        return importlib.util.find_spec(module) is not None
    except (ValueError, ImportError):  # e.g. sys.modules[module] is None: import blocked
        return False


def _import_target(name: str, known: KnownBackend) -> type[StorageBackend]:
    module_name, _, class_name = known.target.partition(":")
    for module in known.requires:
        if not is_installed(module):
            raise MissingDependencyError(module, known.extra or name, f"the {name!r} backend")
    module_obj = importlib.import_module(module_name)
    cls: type[StorageBackend] = getattr(module_obj, class_name)
    return cls


def backend_class(name: str) -> type[StorageBackend]:
    """Return the class registered (or built in) under ``name``, importing it if needed."""
    key = normalize_backend_name(name)
    cls = _registered_classes.get(key)
    if cls is not None:
        return cls
    known = KNOWN_BACKENDS.get(key)
    if known is None:
        raise BackendNotFoundError(
            f"backend {name!r} not found in registry; available: {', '.join(available_backend_names())}"
        )
    return _import_target(key, known)


def available_backend_names() -> list[str]:
    """Names of every registered backend and every built-in one whose runtime is installed."""
    names = set(_registered_classes)
    for key, known in KNOWN_BACKENDS.items():
        if all(is_installed(m) for m in known.requires):
            names.add(key)
    return sorted(names)


class StorageBackendClasses(Mapping[str, "type[StorageBackend]"]):
    """Backend classes by name: the existing package's ``STORAGE_BACKENDS``.

    Lists every registered backend class and every built-in one whose runtime
    is installed; ``STORAGE_BACKENDS["zarr"]`` imports the class then. The same
    object is :attr:`polystore.base.BackendBase.__registry__`. Read-only: a
    class joins by subclassing with ``_backend_type`` (or
    :func:`register_backend_class`).
    """

    def __getitem__(self, name: str) -> type[StorageBackend]:
        try:
            return backend_class(name)
        except (BackendNotFoundError, TypeError) as exc:
            raise KeyError(name) from exc

    def __contains__(self, name: object) -> bool:
        try:
            return normalize_backend_name(name) in available_backend_names()
        except TypeError:
            return False

    def __iter__(self) -> Iterator[str]:
        return iter(available_backend_names())

    def __len__(self) -> int:
        return len(available_backend_names())

    def __repr__(self) -> str:
        return f"STORAGE_BACKENDS({available_backend_names()})"


#: Backend classes by name (``"disk"`` -> ``DiskBackend``), as the existing package's
#: ``polystore.backend_registry.STORAGE_BACKENDS``; also ``BackendBase.__registry__``.
STORAGE_BACKENDS: StorageBackendClasses = StorageBackendClasses()


class BackendRegistry(Mapping[str, "StorageBackend"]):
    """Backend instances by name, created on first use.

    ``BackendRegistry()`` knows every registered backend and every built-in
    one; ``registry["zarr"]`` or ``registry.get_backend("zarr")`` imports and
    instantiates it then. Pass instances to use configured backends::

        BackendRegistry(memory=MemoryBackend(shared_dict=shared))
    """

    def __init__(
        self, backends: Mapping[str, StorageBackend] | None = None, **named: StorageBackend
    ) -> None:
        self._instances: dict[str, StorageBackend] = {}
        self._watchers: list[weakref.WeakMethod[Callable[[], None]]] = []
        self._prune_at = 64
        for name, backend in {**(backends or {}), **named}.items():
            self.register(name, backend)

    def register(self, name: Any, backend: StorageBackend) -> None:
        """Use ``backend`` (an instance) for ``name`` in this registry, from the next call on.

        FileManagers built on this registry drop the instances they resolved
        before, so a name registered again reaches the new instance.
        """
        self._instances[normalize_backend_name(name)] = backend
        alive = []
        for watcher in self._watchers:
            forget = watcher()
            if forget is not None:
                forget()
                alive.append(watcher)
        self._watchers = alive

    def watch(self, forget: Callable[[], None]) -> None:
        """Call ``forget`` after every :meth:`register`; it is a bound method, held weakly.

        This is how a :class:`FileManager` learns to drop the backends it
        cached (its hot path keeps one dict lookup per call instead of asking
        the registry each time).
        """
        self._watchers.append(weakref.WeakMethod(forget))
        if len(self._watchers) >= self._prune_at:  # drop FileManagers gone since (amortised O(1))
            self._watchers = [w for w in self._watchers if w() is not None]
            self._prune_at = max(64, 2 * len(self._watchers))

    def __getstate__(self) -> dict[str, Any]:
        # weak references cannot be pickled, and watchers are per process anyway
        return {**self.__dict__, "_watchers": []}

    def get_backend(self, name: Any) -> StorageBackend:
        """Return the backend instance for ``name``, creating it on first use.

        Raises :class:`BackendNotFoundError` for an unknown name (listing the
        available ones) and :class:`MissingDependencyError` naming the pip extra
        when the backend's runtime is not installed.
        """
        key = normalize_backend_name(name)
        instance = self._instances.get(key)
        if instance is None:
            instance = backend_class(key)()
            self._instances[key] = instance
        return instance

    def get_available_backends(self) -> list[str]:
        """Sorted names usable here: instances given plus installed built-ins and subclasses."""
        return sorted(set(available_backend_names()) | set(self._instances))

    def __getitem__(self, name: str) -> StorageBackend:
        try:
            return self.get_backend(name)
        except BackendNotFoundError as exc:
            raise KeyError(name) from exc

    def __setitem__(self, name: str, backend: StorageBackend) -> None:
        """``registry["memory"] = backend`` is :meth:`register` (the existing package's registry was a dict)."""
        self.register(name, backend)

    def __contains__(self, name: object) -> bool:
        try:
            key = normalize_backend_name(name)
        except TypeError:
            return False
        return key in self._instances or key in self.get_available_backends()

    def __iter__(self) -> Iterator[str]:
        return iter(self.get_available_backends())

    def __len__(self) -> int:
        return len(self.get_available_backends())

    def __repr__(self) -> str:
        loaded = ", ".join(sorted(self._instances)) or "none"
        return f"BackendRegistry(available={self.get_available_backends()}, loaded={loaded})"


def create_storage_registry() -> BackendRegistry:
    """A registry of every available backend (the existing package's spelling of ``BackendRegistry()``).

    Backends are created on first use, not all at once: asking for ``"zarr"``
    imports zarr only then, and streaming backends open no socket until used.
    """
    return BackendRegistry()


def __getattr__(name: str) -> Any:
    """The existing package's cleanup names, kept in :mod:`polystore.shared_registry`."""
    if name in _SHARED_NAMES:
        from polystore import shared_registry

        return getattr(shared_registry, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
