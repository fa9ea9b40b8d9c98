"""Every facevae name the benchmarks and scripts import exists (their imports run only when a
measurement runs, often inside functions, so a renamed module would otherwise go unnoticed)."""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FILES = sorted([*ROOT.glob("benchmarks/*.py"), *ROOT.glob("scripts/*.py")])


def _facevae_imports(path: Path) -> list[tuple[str, list[str]]]:
    """(module, names) for every `import facevae...` / `from facevae... import names`, nested ones too."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and not node.level and (node.module or "").split(".")[0] == "facevae":
            found.append((node.module, [alias.name for alias in node.names]))
        elif isinstance(node, ast.Import):
            found += [(alias.name, []) for alias in node.names if alias.name.split(".")[0] == "facevae"]
    return found


@pytest.mark.parametrize("path", FILES, ids=lambda p: f"{p.parent.name}/{p.name}")
def test_every_facevae_import_resolves(path: Path):
    for module_name, names in _facevae_imports(path):
        module = importlib.import_module(module_name)
        for name in names:
            assert hasattr(module, name) or importlib.util.find_spec(f"{module_name}.{name}") is not None, \
                f"{path.name}: from {module_name} import {name}"


def test_the_check_sees_nested_imports():
    assert ("facevae.model", ["classifier"]) in _facevae_imports(ROOT / "benchmarks" / "photos.py")
