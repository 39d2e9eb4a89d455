"""One ``FileManager.save`` call to several backends: ``backend=("zarr", "napari")`` or a dict of per-backend keywords.

Written down in ``docs/frame-index.md`` ("One call, several backends").
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from polystore.base import PathLike


def save_to_each(fm: Any, data: Any, path: PathLike, backends: Sequence[Any] | Mapping[Any, Any], kwargs: dict[str, Any]) -> None:
    """``fm.save(data, path, b, **kwargs)`` for every backend ``b``, in order.

    ``backends`` is a sequence of backend names (or instances), or a mapping
    of backend name -> keywords for that backend alone (added to the shared
    ``kwargs``, winning over them). The first failure stops the fan-out and
    is raised as it is, with a note naming the backends that had already
    saved (their saves stand) and those not tried.
    """
    if isinstance(backends, Mapping):
        plan = [(b, {**kwargs, **dict(own or {})}) for b, own in backends.items()]
    else:
        plan = [(b, kwargs) for b in backends]
    if not plan:
        raise ValueError("save: backend= names no backend (an empty tuple, list or dict)")
    done: list[str] = []
    for n, (backend, own) in enumerate(plan):
        try:
            fm.save(data, path, backend, **own)
        except BaseException as exc:
            rest = [_name(b) for b, _ in plan[n + 1 :]]
            exc.add_note(
                f"save to several backends: {_name(backend)!r} failed; "
                f"already saved: {done or 'none'}; not tried: {rest or 'none'}"
            )
            raise
        done.append(_name(backend))


def _name(backend: Any) -> str:
    return backend if isinstance(backend, str) else str(getattr(backend, "backend_name", backend))
