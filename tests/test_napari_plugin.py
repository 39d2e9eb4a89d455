"""The npe2 plugin: manifest, Store browser (model and widget), zarr reader, launched viewer."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "xcb")

pytest.importorskip("napari")
zarr = pytest.importorskip("zarr")
psutil = pytest.importorskip("psutil")

from polystore_napari._reader import get_reader  # noqa: E402
from polystore_napari._store import StoreBrowserModel  # noqa: E402

pytestmark = pytest.mark.gui


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    """A folder with an image file, a sub-folder, a plain zarr store and an OME-Zarr store."""
    root = tmp_path / "exp"
    (root / "A01").mkdir(parents=True)
    np.save(root / "A01" / "site1.npy", np.arange(20, dtype=np.uint16).reshape(4, 5))
    (root / "notes.md").write_text("not an image")
    plain = zarr.open_group(str(root / "plain.zarr"), mode="w")
    plain.create_group("well").create_array("raw", data=np.arange(24, dtype=np.float32).reshape(2, 3, 4))
    ome = zarr.open_group(str(root / "img.ome.zarr"), mode="w")
    level0 = np.arange(2 * 8 * 8, dtype=np.uint8).reshape(2, 8, 8)
    ome.create_array("0", data=level0)
    ome.create_array("1", data=level0[:, ::2, ::2])
    ome.attrs["ome"] = {
        "version": "0.5",
        "multiscales": [
            {
                "name": "img",
                "axes": [{"name": "c", "type": "channel"}, {"name": "y"}, {"name": "x"}],
                "datasets": [
                    {"path": "0", "coordinateTransformations": [{"type": "scale", "scale": [1, 0.5, 0.5]}]},
                    {"path": "1", "coordinateTransformations": [{"type": "scale", "scale": [1, 1, 1]}]},
                ],
            }
        ],
        "omero": {
            "channels": [
                {"label": "mem", "color": "FF00FF", "window": {"start": 0, "end": 100}},
                {"label": "nuc", "color": "00FF00", "window": {"start": 5, "end": 120}},
            ]
        },
    }
    return root


def test_manifest_contributes_widgets_and_reader() -> None:
    import npe2

    pm = npe2.PluginManager.instance()
    pm.discover()
    manifest = pm.get_manifest("polystore")
    widgets = {w.display_name for w in manifest.contributions.widgets or []}
    assert widgets == {"Stream receiver", "Store browser"}
    readers = manifest.contributions.readers or []
    assert readers and readers[0].accepts_directories


def test_store_browser_model_walks_folders_and_zarr(tree: Path) -> None:
    model = StoreBrowserModel(tree)
    root = model.root_node()
    assert root.kind == "folder"
    children = {n.name: n for n in model.children(root)}
    assert set(children) == {"A01", "plain.zarr", "img.ome.zarr"}  # notes.md is not an image
    assert children["img.ome.zarr"].kind == "ome-image"
    (site,) = model.children(children["A01"])
    data, kwargs = model.open(site)
    np.testing.assert_array_equal(data, np.arange(20, dtype=np.uint16).reshape(4, 5))
    assert kwargs["name"] == "site1"
    (well,) = model.children(children["plain.zarr"])
    (raw,) = model.children(well)
    assert raw.kind == "zarr-array"
    lazy, _ = model.open(raw)
    assert type(lazy).__module__.startswith("dask")  # opened lazily
    np.testing.assert_array_equal(np.asarray(lazy), np.arange(24, dtype=np.float32).reshape(2, 3, 4))
    levels, kwargs = model.open(children["img.ome.zarr"])
    assert [level.shape for level in levels] == [(2, 8, 8), (2, 4, 4)]
    assert kwargs["multiscale"] and kwargs["channel_axis"] == 0  # OME channels become layers
    assert kwargs["name"] == ["mem", "nuc"]
    assert kwargs["axis_labels"] == [("y", "x")] * 2 and kwargs["scale"] == [[0.5, 0.5]] * 2
    assert [c.name for c in kwargs["colormap"]] == ["#FF00FF", "#00FF00"]
    assert kwargs["contrast_limits"] == [[0, 100], [5, 120]]


def test_reader_opens_stores_in_a_viewer(tree: Path, make_napari_viewer: Any) -> None:
    assert get_reader(str(tree / "A01")) is None
    assert get_reader(str(tree / "img.ome.zarr")) is not None
    viewer = make_napari_viewer(show=False)
    mem, nuc = viewer.open(str(tree / "img.ome.zarr"), plugin="polystore")
    assert mem.multiscale and (mem.name, nuc.name) == ("mem", "nuc")
    level0 = np.arange(128, dtype=np.uint8).reshape(2, 8, 8)
    np.testing.assert_array_equal(np.asarray(mem.data[0]), level0[0])
    np.testing.assert_array_equal(np.asarray(nuc.data[0]), level0[1])
    assert list(nuc.contrast_limits) == [5, 120] and list(mem.scale) == [0.5, 0.5]
    assert np.allclose(mem.colormap.colors[-1], [1, 0, 1, 1])
    (raw,) = viewer.open(str(tree / "plain.zarr"), plugin="polystore")
    assert raw.data.shape == (2, 3, 4)


def test_store_browser_widget_opens_items(tree: Path, make_napari_viewer: Any, qtbot: Any) -> None:
    from polystore_napari._widgets import StoreBrowserWidget

    viewer = make_napari_viewer(show=False)
    widget = StoreBrowserWidget(viewer)
    qtbot.addWidget(widget)
    widget.set_root(str(tree))
    top = widget.tree.topLevelItem(0)
    names = [top.child(i).text(0) for i in range(top.childCount())]
    assert names == ["A01", "plain.zarr", "img.ome.zarr"]  # expandable entries first
    ome_item = top.child(2)
    layers = widget.open_item(ome_item)
    assert [layer.name for layer in layers] == ["mem", "nuc"] and "nuc" in viewer.layers
    folder = top.child(0)
    folder.setExpanded(True)
    assert folder.child(0).text(0) == "site1.npy"
    widget.open_item(folder.child(0))
    np.testing.assert_array_equal(viewer.layers["site1"].data, np.arange(20, dtype=np.uint16).reshape(4, 5))


def test_launch_true_starts_a_viewer_and_stops_it_by_pid(tmp_path: Path) -> None:
    from polystore.streaming.napari import NapariStreamingBackend

    backend = NapariStreamingBackend(endpoint=f"ipc://{tmp_path}/launched.sock", launch=True, send_timeout=5)
    pid = backend.viewer_pid
    try:
        assert pid is not None and psutil.pid_exists(pid)
        assert "polystore_napari" in " ".join(psutil.Process(pid).cmdline())
        backend.save(np.ones((8, 8), np.uint8), "launched.tif")  # raises if nobody listens
        log = backend.viewer_log
        assert log is not None and "listening on" in log.read_text()
    finally:
        backend.stop_viewer()
    assert not psutil.pid_exists(pid) or psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    assert backend.viewer_pid is None
    assert not log.parent.exists()  # the viewer's runtime folder goes with it
    with pytest.raises(Exception, match="no receiver"):
        NapariStreamingBackend(endpoint=f"ipc://{tmp_path}/launched.sock", send_timeout=0.3).save(
            np.ones(2), "after-stop"
        )


def test_store_browser_lists_zarr_through_file_manager(tree: Path) -> None:
    """Virtual entries the zarr backend reports (batch members) appear and open through it."""
    from polystore import BackendRegistry, FileManager, StorageBackend

    store = str(tree / "plain.zarr")
    member = np.full((3, 3), 5, np.uint8)

    class ZarrLike(StorageBackend):  # what the zarr backend answers for a batch array
        def save(self, data: Any, file_path: Any, **kwargs: Any) -> None:
            raise NotImplementedError

        def list_dir(self, path: Any) -> list[str]:
            return {store: ["well", "batch"], f"{store}/batch": ["s0.tif", "s1.tif"]}[str(path)]

        def is_dir(self, path: Any) -> bool:
            return str(path) in (f"{store}/well", f"{store}/batch")

        def is_file(self, path: Any) -> bool:
            return str(path).endswith(".tif")

        def load(self, file_path: Any, **kwargs: Any) -> Any:
            assert kwargs == {"lazy": True} and str(file_path) == f"{store}/batch/s1.tif"
            return member

    model = StoreBrowserModel(tree, FileManager(BackendRegistry(zarr=ZarrLike())))
    plain = next(n for n in model.children() if n.name == "plain.zarr")
    children = {n.name: n for n in model.children(plain)}
    assert {n: c.kind for n, c in children.items()} == {"well": "zarr-group", "batch": "zarr-group"}
    members = model.children(children["batch"])
    assert [(m.name, m.kind) for m in members] == [("s0.tif", "zarr-item"), ("s1.tif", "zarr-item")]
    data, kwargs = model.open(members[1])
    assert data is member and kwargs == {"name": "s1"}


def test_store_browser_shows_and_opens_batch_members(tmp_path: Path) -> None:
    """A save_batch into plate.zarr/A01/img0..img4 is ONE array at A01; its members are in the tree."""
    from polystore import FileManager
    from polystore_napari._store import open_zarr_layers

    fm = FileManager()
    store = tmp_path / "plate.zarr"
    planes = [np.full((6, 7), i, np.uint16) + np.arange(42, dtype=np.uint16).reshape(6, 7) for i in range(5)]
    fm.save_batch(planes, [store / "A01" / f"img{i}" for i in range(5)], backend="zarr")
    fm.save(np.ones((3, 4), np.float32), store / "B01" / "raw", backend="zarr")

    model = StoreBrowserModel(tmp_path)
    (plate,) = model.children()
    assert plate.name == "plate.zarr" and plate.kind == "zarr-group"
    a01, b01 = model.children(plate)
    assert (a01.name, a01.kind, b01.kind) == ("A01", "zarr-batch", "zarr-group")
    assert a01.expandable and a01.openable  # lists its members, opens as the whole stack
    members = model.children(a01)
    assert [(m.name, m.kind) for m in members] == [(f"img{i}", "zarr-item") for i in range(5)]
    data, kwargs = model.open(members[3])
    assert type(data).__module__.startswith("dask") and kwargs == {"name": "img3"}
    np.testing.assert_array_equal(np.asarray(data), planes[3])
    stack, _ = model.open(a01)
    np.testing.assert_array_equal(np.asarray(stack), np.stack(planes))
    # the reader: a store opens one layer per array (the batch as one stack)
    layers = open_zarr_layers(str(store))
    assert [(kw["name"], d.shape) for d, kw, _ in layers] == [("A01", (5, 6, 7)), ("raw", (3, 4))]
    (member,) = open_zarr_layers(str(store / "A01" / "img1"))
    np.testing.assert_array_equal(np.asarray(member[0]), planes[1])


def test_batch_saved_as_ome_image_opens_members_as_planes(tmp_path: Path) -> None:
    """A batch with axes= is an OME image; a member loses the batch axis (axes, scale, channels)."""
    from polystore import FileManager

    fm = FileManager()
    store = tmp_path / "s.zarr"
    planes = [np.full((2, 8, 8), i, np.uint8) for i in range(3)]
    fm.save_batch(planes, [store / "well" / f"t{i}" for i in range(3)], backend="zarr", axes="tcyx",
                  scale=[2.0, 1.0, 0.5, 0.5], channel_names=["a", "b"], pyramid_levels=1)
    model = StoreBrowserModel(store)
    (well,) = model.children()
    assert well.kind == "zarr-batch"
    members = model.children(well)
    assert [m.name for m in members] == ["t0", "t1", "t2"]
    levels, kwargs = model.open(members[2])
    assert [level.shape for level in levels] == [(2, 8, 8), (2, 4, 4)] and kwargs["multiscale"]
    assert kwargs["channel_axis"] == 0 and kwargs["name"] == ["a", "b"]
    assert kwargs["scale"] == [[0.5, 0.5]] * 2 and kwargs["axis_labels"] == [("y", "x")] * 2
    np.testing.assert_array_equal(np.asarray(levels[0]), planes[2])


def test_store_browser_says_what_is_wrong_with_a_missing_path_or_a_file(
    tmp_path: Path, make_napari_viewer: Any, qtbot: Any
) -> None:
    """A missing path or a plain file is named as such, never shown as an empty folder."""
    from polystore_napari._widgets import StoreBrowserWidget

    viewer = make_napari_viewer(show=False)
    widget = StoreBrowserWidget(viewer)
    qtbot.addWidget(widget)
    missing = tmp_path / "nothing.zarr"
    widget.set_root(str(missing))
    assert widget.tree.topLevelItemCount() == 0
    assert "no such folder or zarr store" in widget.message.text() and str(missing) in widget.message.text()

    plain = tmp_path / "results.csv"
    plain.write_text("a,b\n1,2\n")
    widget.set_root(str(plain))
    assert widget.tree.topLevelItemCount() == 0
    assert "is a file, not a folder" in widget.message.text() and "File > Open" in widget.message.text()

    widget.set_root(str(tmp_path))  # a good root clears the message and shows the tree
    assert widget.tree.topLevelItemCount() == 1 and widget.message.text() == ""
