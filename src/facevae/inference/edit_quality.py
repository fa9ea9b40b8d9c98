"""What a model cannot draw: its per-attribute edit quality, stored for registry models, and
the notes the CLI, GUI and API show for weak attributes.

    weak_attributes(model)     # {"Eyeglasses": "Eyeglasses: this model barely draws it ...", ...}

The figures are package data, src/facevae/hub/edit_quality/NAME.json (NAME: the registry name
in the bundle's provenance), written by scripts/measure_edit_quality.py: per attribute the
success (change of the judging classifier's P(attribute) from strength -2 to +2, linear, on
real faces) and the worst leak (the other attribute the edit moves most, by how much). An
attribute is weak when its success is under WEAK_SUCCESS; its note says which attribute the
edit moves more than its own, if one does.
Models without stored figures have no weak attributes (nothing is claimed about them).
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

QUALITY_DIR = Path(__file__).resolve().parents[1] / "hub" / "edit_quality"
WEAK_SUCCESS = 0.25


def stored_quality(model: Any) -> dict[str, Any]:
    """The stored record of a model ({} when it has none): judge, faces and per-attribute figures."""
    name = (getattr(model, "provenance", None) or {}).get("registry_name")
    return _read_record(QUALITY_DIR / f"{name}.json") if name else {}


@functools.lru_cache(maxsize=16)
def _read_record(path: Path) -> dict[str, Any]:
    """A record file, read once per process: package data, and the GUI asks on every rerun."""
    return json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}


def weak_attributes(model: Any) -> dict[str, str]:
    """{attribute: a sentence saying what its edit does instead} for the model's weak attributes."""
    record = stored_quality(model)
    weak = {}
    for name, figures in record.get("attributes", {}).items():
        success, leak, other = figures["success"], figures["leak_worst"], figures["leak_worst_attribute"]
        if success >= WEAK_SUCCESS:
            continue
        instead = f"; it changes {other.replace('_', ' ')} more (by {leak:.2f})" if leak > success else ""
        weak[name] = (f"{name}: this model barely draws it (an edit from -2 to +2 moves a classifier's "
                      f"P({name}) by only {success:.2f} on real faces){instead}")
    return weak


def weak_notes(model: Any, names: list[str]) -> list[str]:
    """The weak-attribute sentences of the edited names, in their order."""
    weak = weak_attributes(model)
    return [weak[name] for name in dict.fromkeys(names) if name in weak]
