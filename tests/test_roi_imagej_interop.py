"""ImageJ ROI zips: polystore's open in ImageJ's RoiDecoder, ImageJ's (RoiEncoder) load in polystore.

One JVM (ImageJ's ij.jar, as the Fiji bridge uses) reads the zip polystore
wrote and writes one of its own (tests/java/RoiInterop.java).
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from polystore import FileManager
from polystore.annotations import Shapes

IJ_JAR = Path("/usr/share/java/ij.jar")
SOURCE = Path(__file__).parent / "java" / "RoiInterop.java"

pytestmark = pytest.mark.java


def test_roi_zip_interop_with_imagej(tmp_path: Path) -> None:
    pytest.importorskip("roifile")
    if shutil.which("java") is None or not IJ_JAR.exists():
        pytest.skip("needs java and ImageJ's ij.jar (apt-get install openjdk-17-jdk-headless imagej)")
    fm = FileManager()
    cells = Shapes(
        [[[0, 0, 0], [0, 0, 20], [0, 20.5, 20]], [[2, 5, 5], [2, 5, 9], [2, 9, 9], [2, 9, 5]], [[1, 1, 1], [1, 4, 6]]],
        shape_type=["polygon", "rectangle", "path"],
        properties={"name": ["c1", "box", "p"]},
        axes="zyx",
    )
    ours, theirs = tmp_path / "polystore.roi.zip", tmp_path / "imagej.roi.zip"
    fm.save(cells, str(ours), backend="disk")
    result = subprocess.run(["java", "-cp", str(IJ_JAR), str(SOURCE), str(ours), str(theirs)],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    # ImageJ's view: type, name, c/z/t (1-based), x,y vertices
    assert result.stdout.splitlines() == [
        "Polygon|c1|0|1|0|0.0,0.0;20.0,0.0;20.0,20.5;",
        "Rectangle|box|0|3|0|5.0,5.0;9.0,5.0;9.0,9.0;5.0,9.0;",
        "Polyline|p|0|2|0|1.0,1.0;6.0,4.0;",
    ]
    made_by_imagej = fm.load(str(theirs), backend="disk")
    assert made_by_imagej.shape_types == ["polygon", "rectangle"]
    assert made_by_imagej.axes == ("z", "y", "x")
    np.testing.assert_array_equal(made_by_imagej.data[0], [[2, 2, 1.5], [2, 2, 6], [2, 9.25, 6]])
    np.testing.assert_array_equal(made_by_imagej.data[1], [[0, 3, 2], [0, 3, 6], [0, 8, 6], [0, 8, 2]])
    assert made_by_imagej.properties["name"].tolist() == ["cell", "box"]
