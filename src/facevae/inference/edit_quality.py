"""What a model cannot draw: its per-attribute edit quality, stored with the model, and the
notes the CLI, GUI and API show for weak attributes.

    weak_attributes(model)     # {"Eyeglasses": "Eyeglasses: this model barely draws it ...", ...}

A record holds, per attribute, the success (change of the judging classifier's P(attribute)
from strength -2 to +2, linear, on real faces) and the worst leak (the other attribute the
edit moves most, by how much). It is read from the bundle folder's edit_quality.json, which
`facevae evaluate --record-quality` writes for any model, or else, for registry models, from
package data: src/facevae/hub/edit_quality/NAME.json (NAME: the registry name in the bundle's
provenance), written by scripts/measure_edit_quality.py. An attribute is weak when its
success is under WEAK_SUCCESS; its note says which attribute the edit moves more than its
own, if one does. Models without a record have no weak attributes (nothing is claimed).
"""

from __future__ import annotations

import functools
import json
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from ..imaging import write_atomic

QUALITY_DIR = Path(__file__).resolve().parents[1] / "hub" / "edit_quality"
QUALITY_FILE = "edit_quality.json"  # in a bundle folder
WEAK_SUCCESS = 0.25


def stored_quality(model: Any) -> dict[str, Any]:
    """The model's record ({} when it has none): its bundle's own, else its registry entry's."""
    folder = getattr(model, "path", None)
    own = Path(folder) / QUALITY_FILE if folder is not None else None
    if own is not None and own.is_file():
        return _read_record(own, own.stat().st_mtime_ns)
    name = (getattr(model, "provenance", None) or {}).get("registry_name")
    return _read_record(QUALITY_DIR / f"{name}.json", 0) if name else {}


@functools.lru_cache(maxsize=16)
def _read_record(path: Path, modified: int) -> dict[str, Any]:
    """A record file, read once per process and version (the GUI asks on every rerun)."""
    try:
        record = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {}
    except (OSError, ValueError):
        return {}  # an unreadable record claims nothing
    return record if isinstance(record, dict) else {}


def quality_record(model_name: str, scores: Iterable[Mapping[str, Any]], faces: int, judge: str,
                   codes: str) -> dict[str, Any]:
    """A record from linear edit scores (facevae.evaluation.edits.EditScore.as_dict(): attribute,
    success, leak_worst, leak_worst_attribute, ...), as stored for the model."""
    attributes = {score["attribute"]: {"success": round(score["success"], 3),
                                       "leak_worst": round(score["leak_worst"], 3),
                                       "leak_worst_attribute": score["leak_worst_attribute"]} for score in scores}
    return {"model": model_name, "faces": faces, "strengths": "-2 to +2, linear", "judge": judge, "codes": codes,
            "attributes": attributes}


def write_quality(folder: str | Path, record: dict[str, Any]) -> Path:
    """Store a record with a bundle (FOLDER/edit_quality.json, written atomically)."""
    return write_atomic(Path(folder) / QUALITY_FILE, (json.dumps(record, indent=2) + "\n").encode())


def weak_attributes(model: Any) -> dict[str, str]:
    """{attribute: a sentence saying what its edit does instead} for the model's weak attributes."""
    record = stored_quality(model)
    weak = {}
    for name, figures in record.get("attributes", {}).items():
        try:
            success, leak = float(figures["success"]), float(figures["leak_worst"])
            other = str(figures["leak_worst_attribute"])
        except (KeyError, TypeError, ValueError):
            continue  # a damaged entry claims nothing
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
