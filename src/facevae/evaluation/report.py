"""Writing an evaluation: metrics.json, reconstruction.csv, edits.csv, report.md and plots.

    write_report(folder, results, context)

results: one dict per model, {"model": label, "path": ..., "reconstruction": {...},
"edits": [EditScore.as_dict(), ...] or None}; context: what was evaluated on (data, split,
classifier, notes). Everything goes into `folder`, which evaluate.py publishes atomically.
"""

from __future__ import annotations

import csv
import io
import json
import math
import re
from pathlib import Path
from typing import Any

from ..imaging import encode_png
from . import plots

REPORT_FORMAT = "facevae-evaluation"
RECONSTRUCTION_COLUMNS = ("model", "method", "images", "mse", "psnr", "ssim", "kl", "encode_images_per_s",
                          "decode_images_per_s")
EDIT_COLUMNS = ("model", "attribute", "success", "leak_mean", "leak_worst", "leak_worst_attribute",
                "outside_change", "inside_change")


def json_bytes(values: Any) -> bytes:
    """JSON with non-finite numbers as strings ("inf"), which strict JSON readers accept."""
    def clean(value: Any) -> Any:
        if isinstance(value, float) and not math.isfinite(value):
            return str(value)
        if isinstance(value, dict):
            return {key: clean(item) for key, item in value.items()}
        if isinstance(value, (list, tuple)):
            return [clean(item) for item in value]
        return value

    return (json.dumps(clean(values), indent=2) + "\n").encode("utf-8")


def slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("_") or "model"


def _csv(rows: list[dict[str, Any]], columns: tuple[str, ...]) -> bytes:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue().encode("utf-8")


def _number(value: Any, digits: int = 4) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, float) and math.isinf(value):
        return "inf"
    return f"{value:.{digits}g}" if isinstance(value, float) else str(value)


def _table(header: list[str], rows: list[list[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def markdown(results: list[dict[str, Any]], context: dict[str, Any], pictures: list[str]) -> str:
    lines = ["# facevae evaluate", "", f"Data: `{context['data']}`, {context['split']} split, "
             f"{results[0]['reconstruction']['images']} images per model.", ""]
    lines += ["## Reconstruction", ""]
    lines += _table(["model", "MSE", "PSNR (dB)", "SSIM", "KL (nats)", "encode (img/s)", "decode (img/s)"],
                    [[r["model"]] + [_number(r["reconstruction"][key]) for key in RECONSTRUCTION_COLUMNS[3:]]
                     for r in results])
    lines.append("")
    lines += [f"- {r['model']}: {r['reconstruction']['method']}" for r in results]
    if context.get("classifier"):
        lines += ["", "## Attribute edits", "", f"Classifier: `{context['classifier']}`; {context['edit_images']} "
                  "codes per model edited from strength -2 to +2. Success: change of the target's probability; "
                  "leak: |change| of the other attributes (mean, and the worst one named); outside: mean pixel "
                  "change outside the central face box, in 1/255 steps.", ""]
        rows = [[r["model"], e["attribute"], _number(e["success"], 3), _number(e["leak_mean"], 3),
                 f"{_number(e['leak_worst'], 3)} ({e['leak_worst_attribute']})", _number(e["outside_change"], 3),
                 _number(e["inside_change"], 3)] for r in results for e in r["edits"] or []]
        header = ["model", "attribute", "success", "leak (mean)", "leak (worst)", "outside face", "inside face"]
        lines += _table(header, rows) if rows else ["No attribute is known to both a model and the classifier."]
    lines += [""] + [f"- {note}" for note in context.get("notes", [])]
    lines += [""] + [f"![{name}]({name})" for name in pictures]
    return "\n".join(lines).rstrip() + "\n"


def write_report(folder: Path, results: list[dict[str, Any]], context: dict[str, Any]) -> list[Path]:
    """Write every output file into `folder`; returns their paths."""
    files: dict[str, bytes] = {"metrics.json": json_bytes({"format": REPORT_FORMAT, **context, "models": results}),
                               "reconstruction.csv": _csv([{"model": r["model"], **r["reconstruction"]}
                                                           for r in results], RECONSTRUCTION_COLUMNS)}
    pictures: list[str] = []
    edited = [r for r in results if r["edits"]]
    if context.get("classifier"):
        files["edits.csv"] = _csv([{"model": r["model"], **e} for r in edited for e in r["edits"]], EDIT_COLUMNS)
    if edited:
        points = [(r["model"], e["attribute"], e["leak_mean"], e["success"]) for r in edited for e in r["edits"]]
        files["success_vs_leak.png"] = encode_png(plots.success_vs_leak(points, "Edit success vs off-target leak"))
        pictures.append("success_vs_leak.png")
        for r in edited:
            name = f"strength_{slug(r['model'])}.png"
            curves = {e["attribute"]: (e["strengths"], e["curve"]) for e in r["edits"]}
            files[name] = encode_png(plots.probability_curves(curves, f"{r['model']}: P(attribute) vs strength"))
            pictures.append(name)
    files["report.md"] = markdown(results, context, pictures).encode("utf-8")
    paths = []
    for name, data in files.items():
        (folder / name).write_bytes(data)
        paths.append(folder / name)
    return paths
