"""The package surface: version, exports, light import, lazy optional backends."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

import polystore

HEAVY = ("zarr", "zmq", "torch", "jax", "qtpy", "PyQt5", "napari", "tifffile", "dask")


def run_python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


def test_version_and_exports() -> None:
    assert polystore.__version__ == "0.1.0"
    for name in (
        "FileManager", "BackendRegistry", "StorageBackend", "DataSink", "DataSource",
        "DiskBackend", "MemoryBackend", "atomic_write", "atomic_write_json",
        "StorageError", "StorageResolutionError", "BackendNotFoundError",
        "UnsupportedFormatError", "ImageLoadError", "ImageSaveError",
    ):
        assert hasattr(polystore, name), name
    assert {"ZarrBackend", "StreamingBackend"} <= set(dir(polystore))


def test_import_pulls_in_no_heavy_runtime() -> None:
    result = run_python(
        "import sys, polystore; print(','.join(m for m in %r if m in sys.modules))" % (HEAVY,)
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""


def test_import_polystore_loads_only_itself() -> None:
    # Every public name is imported on first access; `import polystore` itself is two modules.
    result = run_python(
        "import sys; before = set(sys.modules); import polystore\n"
        "print(','.join(sorted(set(sys.modules) - before)))"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().split(",") == ["polystore", "polystore._version"]


def test_submodules_are_attributes_after_a_bare_import() -> None:
    # Code written against the existing package reaches modules through the package object.
    result = run_python(
        "import polystore\n"
        "print(polystore.disk.DiskBackend.__name__, polystore.formats.FileFormat.__name__,"
        " polystore.config.Backend.DISK.value)\n"
        "try:\n    polystore.nosuchmodule\nexcept AttributeError as exc:\n    print('ERR', exc)"
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == "DiskBackend FileFormat disk"
    assert lines[1] == "ERR module 'polystore' has no attribute 'nosuchmodule'"


#: Modules a disk save and load of a .npy never needs (stdlib ones that cost import time,
#: the other backends, the CLI, the optional runtimes).
NOT_FOR_NPY = (
    "csv", "json", "logging", "threading", "shutil", "dataclasses", "multiprocessing",
    "portalocker", "click", "polystore.memory", "polystore.shared_registry", "polystore.cli",
    "polystore.zarr", "polystore.streaming", *HEAVY,
)


def test_first_npy_save_and_load_import_only_what_they_use(tmp_path: Path) -> None:
    target = str(tmp_path / "a.npy")
    result = run_python(
        "import sys, numpy as np\n"
        "from polystore import FileManager\n"
        f"fm = FileManager(); fm.save(np.arange(3), {target!r}, 'disk'); fm.load({target!r}, 'disk')\n"
        f"print(','.join(m for m in {NOT_FOR_NPY!r} if m in sys.modules))"
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == ""


def test_seed_aliases() -> None:
    from polystore.disk import DiskStorageBackend
    from polystore.memory import MemoryStorageBackend

    assert DiskStorageBackend is polystore.DiskBackend
    assert MemoryStorageBackend is polystore.MemoryBackend


@pytest.mark.parametrize(
    ("name", "module", "extra"),
    [("ZarrBackend", "zarr", "zarr"), ("StreamingBackend", "zmq", "streaming")],
)
def test_missing_runtime_names_the_extra(name: str, module: str, extra: str) -> None:
    # sys.modules[name] = None is how Python itself marks a module as unimportable.
    code = (
        f"import sys; sys.modules[{module!r}] = None\n"
        "import polystore\n"
        "try:\n"
        f"    polystore.{name}\n"
        "except polystore.MissingDependencyError as exc:\n"
        "    print('ERR', exc)\n"
    )
    result = run_python(code)
    assert result.returncode == 0, result.stderr
    assert f'pip install "polystore[{extra}]"' in result.stdout


def test_registry_names_extra_for_uninstalled_backend() -> None:
    code = (
        "import sys; sys.modules['zarr'] = None\n"
        "from polystore import BackendRegistry, MissingDependencyError\n"
        "try:\n"
        "    BackendRegistry().get_backend('zarr')\n"
        "except MissingDependencyError as exc:\n"
        "    print('ERR', exc)\n"
        "print('zarr' in BackendRegistry().get_available_backends())\n"
    )
    result = run_python(code)
    assert result.returncode == 0, result.stderr
    assert 'pip install "polystore[zarr]"' in result.stdout
    assert result.stdout.strip().endswith("False")


def test_py_typed_ships() -> None:
    from importlib.resources import files

    assert files("polystore").joinpath("py.typed").is_file()
