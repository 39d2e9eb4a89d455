"""A lazy load reads the version it opened, or raises: never a mix of two versions (issue 9).

``load(lazy=True)`` reads nothing until computed. If the array (or the
image of a batch it reads) is replaced in between, computing on must not
return parts of the old version next to parts of the new one: it raises
:class:`ImageLoadError` naming the path and saying to load it again.
Changes that leave the opened version whole (appends, other images of
its batch) do not disturb it.
"""

from __future__ import annotations

import gc
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("zarr")
pytest.importorskip("dask")

from polystore.exceptions import ImageLoadError  # noqa: E402
from polystore.zarr import ZarrBackend  # noqa: E402


def _frames(value: int, n: int = 3) -> list[np.ndarray]:
    return [np.full((32, 32), value + i, np.uint16) for i in range(n)]


@pytest.mark.parametrize("axes", [None, "zyx"])
def test_lazy_array_refuses_to_read_on_after_a_rewrite(tmp_path: Path, axes: str | None) -> None:
    backend = ZarrBackend(root=tmp_path)
    kwargs = {"axes": axes} if axes else {}
    backend.save(np.full((4, 32, 32), 1, np.uint16), "s.zarr/img", chunks=(1, 32, 32), **kwargs)
    lazy = backend.load("s.zarr/img", lazy=True)
    assert int(lazy[0].compute().max()) == 1  # read part of version 1
    backend.save(np.full((4, 32, 32), 2, np.uint16), "s.zarr/img", chunks=(1, 32, 32), **kwargs)
    with pytest.raises(ImageLoadError, match=r"'img'.*replaced after it was opened.*Load it again"):
        lazy[1].compute()  # the old code returned version 2 here: a mix with the part read above
    np.testing.assert_array_equal(backend.load("s.zarr/img", lazy=True).compute(), 2)  # reopened: fine


def test_lazy_batch_refuses_a_replaced_image_but_not_an_untouched_one(tmp_path: Path) -> None:
    backend = ZarrBackend(root=tmp_path)
    backend.save_batch(_frames(10), ["b.zarr/f0", "b.zarr/f1", "b.zarr/f2"])
    whole = backend.load("b.zarr", lazy=True)
    member2 = backend.load("b.zarr/f2", lazy=True)
    member1 = backend.load("b.zarr/f1", lazy=True)
    backend.save(np.full((32, 32), 99, np.uint16), "b.zarr/f1")  # swaps in image 1 only
    assert int(whole[0].compute().max()) == 10  # image 0 is as opened
    np.testing.assert_array_equal(member2.compute(), 12)  # another image of the batch: unaffected
    with pytest.raises(ImageLoadError, match="replaced after it was opened"):
        member1.compute()
    with pytest.raises(ImageLoadError, match="replaced after it was opened"):
        whole.compute()


def test_lazy_array_survives_an_append_and_a_member_delete(tmp_path: Path) -> None:
    backend = ZarrBackend(root=tmp_path)
    backend.save_batch(_frames(0), ["b.zarr/f0", "b.zarr/f1", "b.zarr/f2"])
    whole = backend.load("b.zarr", lazy=True)
    backend.save_batch([np.full((32, 32), 7, np.uint16)], ["b.zarr/f3"])  # append: metadata rewritten
    backend.delete("b.zarr/f0")  # the names change, the pixels stay
    np.testing.assert_array_equal(whole.compute(), np.stack(_frames(0)))  # the version it opened


def test_lazy_arrays_share_one_descriptor_per_folder_and_release_it(tmp_path: Path) -> None:
    from polystore.zarr import _pins

    backend = ZarrBackend(root=tmp_path)
    backend.save_batch(_frames(0, 50), [f"b.zarr/f{i}" for i in range(50)])
    gc.collect()
    before = set(_pins._SHARED)
    lazies = backend.load_batch([f"b.zarr/f{i}" for i in range(50)], lazy=True)
    held = {k: v for k, v in _pins._SHARED.items() if k not in before}
    assert 1 <= len(held) <= 2  # the batch folder and the store root, not 50 of each
    assert [int(a.compute()[0, 0]) for a in lazies[:3]] == [0, 1, 2]
    del lazies
    gc.collect()
    assert not set(_pins._SHARED) - before  # the last lazy array gone: its descriptors closed
