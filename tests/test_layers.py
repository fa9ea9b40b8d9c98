"""The import graph of src/facevae runs downward only: a room imports its own level or lower.

    cli/, app/  ->  evaluation/, training/  ->  inference/, interop/  ->  hub/  ->  model/, data/,
    imaging.py  ->  the other top-level modules (config, runtime, errors, atomic, extras)

(imaging.py, every picture <-> tensor conversion, crops with data/decode.py's one definition.)

Every import counts, those inside functions too (lazy imports are still arrows).
"""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "src" / "facevae"
LEVELS = {"cli": 5, "app": 5, "__main__": 5, "evaluation": 4, "training": 4, "inference": 3, "interop": 3,
          "hub": 2, "model": 1, "data": 1, "imaging": 1, "testing": 1}
TOP_LEVEL = 0  # config.py, runtime.py, errors.py, atomic.py, imaging.py, extras.py, the package itself


def room(module: str) -> str:
    """facevae.hub.install -> 'hub'; facevae.config -> 'config'."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def level(module: str) -> int:
    return LEVELS.get(room(module), TOP_LEVEL)


def imports_of(file: Path) -> set[str]:
    """The facevae modules a file imports, relative imports resolved."""
    module = "facevae." + ".".join(file.relative_to(PACKAGE).with_suffix("").parts)
    package = module.rsplit(".", 1)[0] if file.name != "__init__.py" else module.removesuffix(".__init__")
    found = set()
    for node in ast.walk(ast.parse(file.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if alias.name.startswith("facevae")}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.startswith("facevae"):
                # `from . import install` names a module: count it as one
                found |= {f"{target}.{alias.name}" if not node.module else target for alias in node.names}
    return found


def test_imports_only_run_downward():
    upward = []
    for file in sorted(PACKAGE.rglob("*.py")):
        importer = "facevae." + ".".join(file.relative_to(PACKAGE).with_suffix("").parts)
        for imported in imports_of(file):
            if room(imported) != room(importer) and level(imported) > level(importer):
                upward.append(f"{importer} -> {imported}")
    assert upward == []


def test_the_checker_sees_relative_and_lazy_imports(tmp_path: Path):
    found = imports_of(PACKAGE / "interop" / "loading.py")
    assert "facevae.hub.install" in found  # imported inside a function
    assert "facevae.model.bundle" in found and "facevae.interop.keras" in found
    assert level("facevae.hub.install") < level("facevae.interop.loading")
