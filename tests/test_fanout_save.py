"""One fm.save call to several backends (issue 13): a tuple of backends, or a dict of per-backend keywords."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest

pytest.importorskip("zarr")

from polystore import BackendRegistry, FileManager  # noqa: E402
from polystore.exceptions import ImageSaveError  # noqa: E402
from polystore.zarr import ZarrBackend  # noqa: E402


def test_a_tuple_of_backends_saves_to_each(tmp_path: Path) -> None:
    fm = FileManager(BackendRegistry())
    image = np.arange(12, dtype=np.uint16).reshape(3, 4)
    target = str(tmp_path / "out" / "img.npy")
    os.makedirs(tmp_path / "out")
    fm.save(image, target, backend=("disk", "memory"))
    np.testing.assert_array_equal(fm.load(target, "disk"), image)
    np.testing.assert_array_equal(fm.load(target, "memory"), image)
    fm.save(image + 1, target, backend=["memory"])  # a list works too
    np.testing.assert_array_equal(fm.load(target, "memory"), image + 1)
    with pytest.raises(ValueError, match="no backend"):
        fm.save(image, target, backend=())


def test_a_dict_gives_each_backend_its_keywords_and_a_failure_names_what_saved(tmp_path: Path) -> None:
    fm = FileManager(BackendRegistry(zarr=ZarrBackend(root=tmp_path)))
    zb: Any = fm.get_backend("zarr")
    zb.declare_image("run.zarr/A/1/0", (None, 2, 8, 8), "uint16", axes="tcyx")
    frame = np.full((8, 8), 5, np.uint16)
    fm.save(frame, "run.zarr/A/1/0", backend={"memory": {}, "zarr": {"index": {"t": 1, "c": 1}}})
    zb.flush()
    assert int(fm.load("run.zarr/A/1/0", "zarr")[1, 1, 0, 0]) == 5
    np.testing.assert_array_equal(fm.load("run.zarr/A/1/0", "memory"), frame)
    with pytest.raises(ImageSaveError, match=r"index .* out of range") as caught:
        fm.save(frame, "run.zarr/A/1/0", backend={"memory": {}, "zarr": {"index": {"c": 2}}, "disk": {}})
    notes = " ".join(getattr(caught.value, "__notes__", []))
    assert "'zarr' failed; already saved: ['memory']; not tried: ['disk']" in notes


SENDER = textwrap.dedent(
    """
    import sys
    import numpy as np
    from polystore import BackendRegistry, FileManager
    from polystore.zarr import ZarrBackend

    fm = FileManager(BackendRegistry(zarr=ZarrBackend(root=sys.argv[1])))
    fm.get_backend("zarr").declare_image("run.zarr/A/1/0", (None, 2, 32, 40), "uint16", axes="tcyx")
    both = {"zarr": {}, "napari": {"layer": "live"}}
    for t in range(3):
        for c in range(2):
            frame = np.full((32, 40), 10 * t + c, np.uint16)
            fm.save(frame, "run.zarr/A/1/0", backend=both, index={"t": t, "c": c}, axes="tcyx")
    fm.get_backend("zarr").close()
    """
)


@pytest.mark.gui
def test_one_call_feeds_a_zarr_image_and_a_napari_viewer(tmp_path: Path, make_napari_viewer: Any, qtbot: Any) -> None:
    pytest.importorskip("napari")
    pytest.importorskip("zmq")
    os.environ.setdefault("QT_QPA_PLATFORM", "xcb")
    from polystore_napari._widgets import StreamReceiverWidget

    viewer = make_napari_viewer(show=True)
    widget = StreamReceiverWidget(viewer, endpoint="tcp://127.0.0.1:0")
    viewer.window.add_dock_widget(widget, name="Stream receiver")
    widget.start()
    try:
        env = {**os.environ, "POLYSTORE_NAPARI_ENDPOINT": widget.controller.endpoint}
        result = subprocess.run([sys.executable, "-c", SENDER, str(tmp_path)], env=env, capture_output=True,
                                text=True, timeout=90)
        assert result.returncode == 0, result.stderr

        def arrived() -> None:
            assert "live" in viewer.layers
            data = np.asarray(viewer.layers["live"].data)
            assert data.shape == (3, 2, 32, 40) and int(data[2, 1, 0, 0]) == 21

        qtbot.waitUntil(arrived, timeout=30000)
    finally:
        widget.stop()
    stored = ZarrBackend(root=tmp_path).load("run.zarr/A/1/0")
    assert stored.shape == (3, 2, 32, 40)
    np.testing.assert_array_equal(stored, np.asarray(viewer.layers["live"].data))
