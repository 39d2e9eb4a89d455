"""New arrays' chunks on S3 encoded and sent by tensorstore's zarr3 driver (issue 9's delegation rule).

On moto S3 polystore's own encoder with tensorstore's kvstore as transport was
not 1.3x tensorstore's whole write (docs/performance.md, "Issue 9, object-store
writes"), so the chunks of a *new* v3 array (a save's array or OME level, a
cluster task's block) are written by tensorstore. Only the chunks: tensorstore
opens the array with ``assume_metadata`` (it neither reads nor writes
``zarr.json``), from the very metadata document polystore writes itself after
every chunk was written, so the publish order, the staging and generation
layout and the failure rules stay polystore's. Batch members, appends,
replaces and v2 arrays keep the own encoder (their PUTs still go through the
kvstore, ``_puts.KvStorePuts``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from polystore.zarr._codec import _Codec
from polystore.zarr._fs import _FS

__all__ = ["write_new_chunks"]


def write_new_chunks(
    fs: _FS,
    dest: str,
    data: np.ndarray,
    chunks: tuple[int, ...],
    codec: _Codec,
    origin: Sequence[int],
    skip_empty: bool,
) -> bool:
    """Write every chunk of ``data`` (placed at element ``origin``, chunk-aligned) of the v3 array at ``dest``.

    Returns False, having written nothing, where tensorstore does not serve
    ``fs`` (not installed, switched off, options that do not translate) or
    cannot take this array; then the caller writes the chunks itself. A
    failed PUT raises :class:`OSError` naming ``dest`` after tensorstore's
    other writes of this call stopped. ``skip_empty``: chunks holding only
    the fill value are not stored (as the own path).
    """
    from polystore.zarr._meta import _array_metadata

    kv = getattr(fs, "kv_puts", None)
    if kv is None or data.ndim == 0 or data.size == 0 or any(o % c for o, c in zip(origin, chunks)):
        return False
    bucket, _, prefix = dest.partition("/")
    got = kv.spec_and_context(bucket)
    if got is None:
        return False
    plain, context = got
    import tensorstore as ts

    end = tuple(o + s for o, s in zip(origin, data.shape))
    meta = _array_metadata(end, np.dtype(data.dtype), chunks, codec, {}, None)
    spec = {
        "driver": "zarr3",
        "kvstore": {**plain, "path": prefix.rstrip("/") + "/"},
        "metadata": {k: v for k, v in meta.items() if k != "attributes"},
        "store_data_equal_to_fill_value": not skip_empty,
        "recheck_cached_data": False,
    }
    try:
        # assume_metadata: neither read nor write zarr.json (polystore writes it, last)
        array = ts.open(spec, context=context, open=True, assume_metadata=True).result()
    except Exception:  # noqa: BLE001 - e.g. a dtype or codec tensorstore does not take: the own path
        return False
    region = tuple(slice(o, e) for o, e in zip(origin, end))
    try:
        array[region].write(data).result()
    except Exception as exc:  # tensorstore reports HTTP failures as ValueError
        raise OSError(f"writing the chunks of {fs.url(dest)} through tensorstore failed: {exc}") from exc
    return True
