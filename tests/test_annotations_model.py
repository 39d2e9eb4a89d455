"""polystore.annotations: validation of Labels/Points/Shapes and round trips to napari data and ImageJ ROIs."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from polystore.annotations import (
    MAX_COORDINATES,
    InvalidAnnotationError,
    Labels,
    Points,
    Shapes,
    from_layer_data,
    from_rois,
    to_layer_data,
    to_rois,
)

FAST = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# --- validation: every rule of issue 12 gets a clear error --------------------------------


def test_points_refuse_non_finite_coordinates() -> None:
    with pytest.raises(InvalidAnnotationError, match="finite; row 1"):
        Points([[1.0, 2.0], [np.nan, 3.0]])
    with pytest.raises(InvalidAnnotationError, match="finite"):
        Shapes([[[0, 0], [1, np.inf], [2, 2]]])


def test_wrong_dimensionality_for_axes() -> None:
    with pytest.raises(InvalidAnnotationError, match="2 dimension"):
        Points(np.zeros((3, 2)), axes="zyx")
    with pytest.raises(InvalidAnnotationError, match="dimension"):
        Shapes([np.zeros((3, 3))], axes="yx")
    with pytest.raises(InvalidAnnotationError, match="dimension"):
        Labels(np.zeros((4, 4), np.uint8), axes="zyx")
    with pytest.raises(InvalidAnnotationError, match="2-D"):
        Points(np.zeros((2, 2, 2)))


def test_float_label_image_refused_with_fix() -> None:
    with pytest.raises(InvalidAnnotationError, match="integer dtype, not float32.*astype"):
        Labels(np.zeros((4, 4), np.float32))
    assert Labels(np.zeros((4, 4), np.uint16)).axes == ("y", "x")


@pytest.mark.parametrize(
    ("kind", "n", "rule"),
    [("polygon", 2, "at least 3"), ("path", 1, "at least 2"), ("line", 3, "exactly 2"),
     ("rectangle", 3, "exactly 4"), ("ellipse", 2, "exactly 4")],
)
def test_shapes_with_too_few_vertices(kind: str, n: int, rule: str) -> None:
    with pytest.raises(InvalidAnnotationError, match=f"shape 0 is a {kind} with {n} vertices.*{rule}"):
        Shapes([np.zeros((n, 2))], shape_type=kind)


def test_cap_of_points_and_vertices_per_object() -> None:
    # np.empty does not touch the pages: the cap is checked before any copy or scan.
    huge = np.empty((MAX_COORDINATES + 1, 2))
    with pytest.raises(InvalidAnnotationError, match=f"more than the limit of {MAX_COORDINATES}"):
        Points(huge)
    with pytest.raises(InvalidAnnotationError, match="vertices is more than the limit"):
        Shapes([huge], shape_type="path")


def test_property_lengths_must_match() -> None:
    with pytest.raises(InvalidAnnotationError, match="'score' has 2 value.*there are 3"):
        Points(np.zeros((3, 2)), properties={"score": [1.0, 2.0]})
    with pytest.raises(InvalidAnnotationError, match="name of an axis"):
        Points(np.zeros((1, 2)), properties={"x": [1]})
    with pytest.raises(InvalidAnnotationError, match="unknown type 'circle'"):
        Shapes([np.zeros((3, 2))], shape_type="circle")


# --- property-based round trips ---------------------------------------------------------------

# float32-exact values: ImageJ keeps sub-pixel coordinates as float32.
coord = st.integers(0, 4000).map(lambda v: v / 4)
names = st.sampled_from(["id", "score", "cls", "name"])


@st.composite
def properties(draw: Any, n: int) -> dict[str, Any]:
    cols: dict[str, Any] = {}
    for key in draw(st.lists(names, unique=True, max_size=3)):
        if key == "id":
            cols[key] = np.arange(n, dtype=np.int64)
        elif key == "score":
            cols[key] = np.array(draw(st.lists(coord, min_size=n, max_size=n)), dtype=np.float64)
        else:
            cols[key] = np.array(draw(st.lists(st.sampled_from(["a", "b", "nucleus"]), min_size=n, max_size=n)), dtype=str)
    return cols


@st.composite
def points(draw: Any) -> Points:
    axes = draw(st.sampled_from(["yx", "zyx", "tcyx"]))
    n = draw(st.integers(0, 30))
    data = np.array(draw(st.lists(st.lists(coord, min_size=len(axes), max_size=len(axes)), min_size=n, max_size=n)))
    data = data.reshape(n, len(axes))
    data[:, :-2] = np.floor(data[:, :-2])  # plane indices are whole numbers
    return Points(data, properties=draw(properties(n)), axes=axes)


@st.composite
def shapes(draw: Any) -> Shapes:
    axes = draw(st.sampled_from(["yx", "zyx", "czyx"]))
    n = draw(st.integers(0, 8))
    items, types = [], []
    for _ in range(n):
        kind = draw(st.sampled_from(["polygon", "path", "rectangle", "ellipse", "line"]))
        plane = [float(draw(st.integers(0, 5))) for _ in axes[:-2]]
        if kind in ("rectangle", "ellipse"):
            y0, x0 = draw(coord), draw(coord)
            y1, x1 = y0 + draw(st.integers(1, 40)), x0 + draw(st.integers(1, 40))
            yx = [[y0, x0], [y0, x1], [y1, x1], [y1, x0]]
        else:
            count = 2 if kind == "line" else draw(st.integers(3 if kind == "polygon" else 2, 12))
            yx = draw(st.lists(st.tuples(coord, coord).map(list), min_size=count, max_size=count))
        items.append(np.array([plane + list(v) for v in yx]))
        types.append(kind)
    return Shapes(items, shape_type=types, properties=draw(properties(n)), axes=axes)


@FAST
@given(points())
def test_points_round_trip_napari_and_roi(obj: Points) -> None:
    data, kwargs, layer_type = to_layer_data(obj)
    assert layer_type == "points"
    assert from_layer_data(data, kwargs, layer_type) == obj
    if len(obj):
        assert from_rois(to_rois(obj)) == obj


@FAST
@given(shapes())
def test_shapes_round_trip_napari_and_roi(obj: Shapes) -> None:
    data, kwargs, layer_type = to_layer_data(obj)
    assert from_layer_data(data, kwargs, layer_type) == obj
    if len(obj):
        assert from_rois(to_rois(obj)) == obj


def test_labels_round_trip_napari() -> None:
    labels = Labels(np.arange(12, dtype=np.uint16).reshape(3, 4))
    data, kwargs, layer_type = to_layer_data(labels)
    assert layer_type == "labels" and from_layer_data(data, kwargs, layer_type) == labels


def test_napari_unnamed_axes_and_dataframe_features() -> None:
    pandas = pytest.importorskip("pandas")
    obj = from_layer_data(np.zeros((2, 3)), {"axis_labels": ("-3", "-2", "-1"),
                                             "features": pandas.DataFrame({"s": [1.0, 2.0]})}, "points")
    assert isinstance(obj, Points) and obj.axes == ("z", "y", "x")
    assert obj.properties["s"].tolist() == [1.0, 2.0]


def test_rotated_box_and_foreign_axes_refused_for_roi() -> None:
    diamond = Shapes([[[0, 1], [1, 2], [2, 1], [1, 0]]], shape_type="rectangle")
    with pytest.raises(InvalidAnnotationError, match="axis-aligned"):
        to_rois(diamond)
    with pytest.raises(InvalidAnnotationError, match="constant over one shape"):
        to_rois(Shapes([[[0, 0, 0], [1, 1, 1], [1, 2, 0]]], axes="zyx"))


def test_rois_made_by_roifile_load_as_shapes() -> None:
    roifile = pytest.importorskip("roifile")
    roi = roifile.ImagejRoi.frompoints(np.array([[1.0, 2.0], [5.0, 2.0], [5.0, 8.0]]), name="cell", z=3)
    roi.roitype = roifile.ROI_TYPE.POLYGON
    obj = from_rois([roi])
    assert isinstance(obj, Shapes) and obj.axes == ("z", "y", "x") and obj.shape_types == ["polygon"]
    assert obj.data[0].tolist() == [[3, 2, 1], [3, 2, 5], [3, 8, 5]]
    assert obj.properties["name"].tolist() == ["cell"]


def test_missing_roifile_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "roifile", None)  # how Python marks a module unimportable
    with pytest.raises(ImportError, match=r'pip install "polystore\[roi\]"'):
        to_rois(Points([[1.0, 2.0]]))


def test_plane_stack_keeps_planes_adds_axes_and_starts_afresh_on_other_columns() -> None:
    from polystore.annotations.planes import PlaneStack

    stack = PlaneStack()
    stack.put(Points([[1.0, 2.0]], properties={"id": [1]}), {"t": 0})
    stack.put(Points([[3.0, 4.0], [5.0, 6.0]], properties={"id": [2, 3]}), {"t": 2})
    both = stack.put(Points([[7.0, 8.0]], properties={"id": [4]}), {"c": 1, "t": 2})  # a new axis: c
    assert both.axes == ("t", "c", "y", "x")
    np.testing.assert_array_equal(both.data, [[0, 0, 1, 2], [2, 0, 3, 4], [2, 0, 5, 6], [2, 1, 7, 8]])
    assert both.properties["id"].tolist() == [1, 2, 3, 4]
    again = stack.put(Points([[9.0, 9.0]], properties={"id": [5]}), {"t": 0})  # replaces plane t=0 only
    assert again.properties["id"].tolist() == [5, 2, 3, 4]
    fresh = stack.put(Points([[1.0, 1.0]], properties={"score": [0.5]}), {"t": 9})  # other columns
    assert fresh == Points([[9.0, 1.0, 1.0]], properties={"score": [0.5]}, axes="tyx")
    shapes = PlaneStack().put(Shapes([[[0, 0], [1, 1]]], shape_type="line"), {"z": 3})
    assert shapes.shape_types == ["line"] and shapes.data[0].tolist() == [[3, 0, 0], [3, 1, 1]]
    with pytest.raises(InvalidAnnotationError, match="also a coordinate axis"):
        PlaneStack().put(Points([[1.0, 2.0]]), {"y": 1})
