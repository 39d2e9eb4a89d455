"""Disk codecs load on first use of their extension; the registry sees every one of them."""

from __future__ import annotations

import importlib
import subprocess
import sys
from pathlib import Path

import numpy as np

from polystore.disk import DiskBackend, FileFormatRegistry
from polystore.formats import CODECS, KIND_EXTENSIONS, KNOWN_CODECS, SUPPORTED_EXTENSIONS, codec_for

#: Codec modules (and what they import) that a .npy save and load never needs.
OTHER_CODECS = (
    "polystore.formats.tiff", "polystore.formats.npz", "polystore.formats.torch_file",
    "polystore.formats.csv_file", "polystore.formats.json_file", "polystore.formats.text",
    "polystore.formats.roi_file", "polystore.formats.geojson_file", "polystore.annotations",
    "tifffile", "torch",
)


def run_python(code: str) -> str:
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_table_matches_each_codec_class() -> None:
    kinds: dict[str, list[str]] = {}
    for ext, spec in KNOWN_CODECS.items():
        module, name = spec.split(":")
        cls = getattr(importlib.import_module(module), name)
        assert ext in cls.extensions, (ext, spec)
        assert isinstance(codec_for("a" + ext), cls)
        assert CODECS[ext] is codec_for("A" + ext.upper())
        for kind in cls.kinds:
            kinds.setdefault(kind, []).append(ext)
    assert {kind: sorted(exts) for kind, exts in kinds.items()} == KIND_EXTENSIONS
    assert SUPPORTED_EXTENSIONS == tuple(sorted(KNOWN_CODECS))
    assert set(CODECS) == set(KNOWN_CODECS) and len(CODECS) == len(KNOWN_CODECS)


def test_npy_save_and_load_import_no_other_codec(tmp_path: Path) -> None:
    target = str(tmp_path / "a.npy")
    imported = run_python(
        "import sys, numpy as np\n"
        "from polystore import FileManager\n"
        "from polystore.disk import FileFormatRegistry\n"
        f"fm = FileManager(); fm.save(np.arange(3), {target!r}, 'disk')\n"
        f"fm.save_batch([np.arange(2)], [{target!r}], 'disk'); fm.load({target!r}, 'disk')\n"
        "registry = FileFormatRegistry()\n"
        "assert registry.is_registered('.tif') and registry.is_registered('.roi.zip')\n"
        f"print(','.join(m for m in {OTHER_CODECS!r} if m in sys.modules))"
    )
    assert imported == ""


def test_tif_save_loads_its_codec_on_first_use(tmp_path: Path) -> None:
    target = str(tmp_path / "a.tif")
    imported = run_python(
        "import sys, numpy as np\n"
        "from polystore import FileManager\n"
        f"fm = FileManager(); fm.save(np.ones((4, 4), np.uint8), {target!r}, 'disk')\n"
        f"assert fm.load({target!r}, 'disk').sum() == 16\n"
        f"print(','.join(m for m in {OTHER_CODECS!r} if m in sys.modules))"
    )
    assert set(imported.split(",")) >= {"polystore.formats.tiff", "tifffile"}
    assert "polystore.formats.csv_file" not in imported and "torch" not in imported


def test_registry_writer_and_reader_of_a_builtin_format(tmp_path: Path) -> None:
    registry = FileFormatRegistry()
    registry.get_writer(".TIF")(tmp_path / "a.tif", np.arange(6, dtype=np.uint16).reshape(2, 3))
    assert registry.get_reader("tif")(tmp_path / "a.tif").tolist() == [[0, 1, 2], [3, 4, 5]]
    assert not registry.is_registered(".xyz")
    disk = DiskBackend()
    disk.save("text", tmp_path / "a.txt")
    assert disk.load(tmp_path / "a.txt") == "text"
