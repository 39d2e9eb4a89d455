"""``AutoRegisterMeta``: classes that register themselves by a key attribute.

The existing polystore package exported this metaclass (from the
``metaclass-registry`` package). polystore's backends register through
:class:`~polystore.base.BackendBase` instead; this one is for your own class
families::

    class Plugin(metaclass=AutoRegisterMeta):
        __registry_key__ = "name"

    class Tiff(Plugin):
        name = "tiff"

    Plugin.__registry__["tiff"] is Tiff
"""

from __future__ import annotations

import abc
from typing import Any

__all__ = ["AutoRegisterMeta"]


class AutoRegisterMeta(abc.ABCMeta):
    """Adds each class whose body sets the ``__registry_key__`` attribute to ``__registry__``.

    The first class of a family (the one declaring ``__registry_key__``) gets
    an empty ``__registry__`` dict, shared by all its subclasses.
    """

    def __init__(cls, name: str, bases: tuple[type, ...], namespace: dict[str, Any], **kwargs: Any) -> None:
        super().__init__(name, bases, namespace, **kwargs)
        key_attr = getattr(cls, "__registry_key__", None)
        if key_attr is None:
            return
        if "__registry_key__" in namespace:
            cls.__registry__ = {}
        key = namespace.get(key_attr)
        if key:
            cls.__registry__[key] = cls  # type: ignore[attr-defined]
