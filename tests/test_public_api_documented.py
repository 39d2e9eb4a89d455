"""Every public name of the core has a docstring and type hints (seed 003 promises it)."""

from __future__ import annotations

import importlib
import inspect
from typing import Any

import pytest

CORE_MODULES = [
    "polystore", "polystore.base", "polystore.backend_registry", "polystore.disk",
    "polystore.memory", "polystore.filemanager", "polystore.atomic", "polystore.exceptions",
    "polystore.config", "polystore.frameworks", "polystore.formats", "polystore.constants",
    "polystore.registry", "polystore.utils", "polystore.format_registry", "polystore.disk_paths",
    "polystore.shared_store",
    "polystore.shared_registry", "polystore.lazy_imports", "polystore.tree_copy", "polystore.path_kinds",
    "polystore.hcs_names", "polystore.copy_journal",
    "polystore.annotations", "polystore.annotations.roi", "polystore.annotations.napari_data",
]


def public_members(module: Any) -> list[tuple[str, Any]]:
    names = getattr(module, "__all__", [n for n in vars(module) if not n.startswith("_")])
    return [(n, getattr(module, n)) for n in names if not n.startswith("__")]


def undocumented(obj: Any, where: str) -> list[str]:
    problems = []
    if not inspect.getdoc(obj):
        problems.append(f"{where}: no docstring")
    if inspect.isfunction(obj):
        hints = inspect.signature(obj)
        if hints.return_annotation is inspect.Signature.empty and obj.__name__ != "__init__":
            problems.append(f"{where}: no return annotation")
        for param in hints.parameters.values():
            if param.name not in ("self", "cls") and param.annotation is inspect.Parameter.empty:
                problems.append(f"{where}: parameter {param.name} has no annotation")
    return problems


@pytest.mark.parametrize("module_name", CORE_MODULES)
def test_public_names_documented_and_typed(module_name: str) -> None:
    module = importlib.import_module(module_name)
    problems: list[str] = []
    for name, obj in public_members(module):
        if not (inspect.isclass(obj) or inspect.isfunction(obj)):
            continue
        if getattr(obj, "__module__", "").split(".")[0] != "polystore":
            continue
        problems += undocumented(obj, f"{module_name}.{name}")
        if inspect.isclass(obj):
            for attr, member in vars(obj).items():
                if attr.startswith("_") or not inspect.isfunction(member):
                    continue
                problems += undocumented(member, f"{module_name}.{name}.{attr}")
    assert problems == []
