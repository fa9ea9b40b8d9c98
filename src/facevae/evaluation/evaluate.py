"""`facevae evaluate`: reconstruction and (with a classifier) edit quality of several models
on one split, side by side.

    evaluate_models(["celeba64-original", "runs/mine"], "~/data/celeba", "eval/",
                    classifier="runs/classifier", split="test", max_images=200)

First the plan and its time estimate (plan.py) are said. Per model: the split is read from a
cache at the model's image size and crop (a raw folder is prepared once per size),
reconstructed (reconstruction.py), and, when a classifier is given, its attribute edits are
scored on the first `edit_images` codes (edits.py). The output folder (report.md, metrics.json,
CSV, PNG) is built in a temporary sibling and renamed into place, so it is never half-written.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from ..atomic import staged_dir
from ..errors import UserError
from ..imaging import encode_png, make_grid, to_uint8
from ..inference.pipeline import FacePipeline
from .classifier import load as load_classifier
from .data import open_cache
from .edits import score_edits, shared_attributes
from .output import check_replaceable, check_writable, writing
from .plan import DEFAULT_SIZES, ModelPlan, describe, estimate_seconds
from .reconstruction import reconstruct, split_images
from .report import REPORT_FORMAT, slug, write_report

GRID_FACES = 8  # originals and reconstructions shown per model


def _labels(models: list[str]) -> list[str]:
    """Table names for the models: as typed, made unique."""
    labels: list[str] = []
    for model in models:
        label = Path(model).name if Path(model).exists() else model
        labels.append(label if label not in labels else f"{label}-{len(labels) + 1}")
    return labels


def evaluate_models(models: list[str], data: str | Path, out: str | Path, classifier: str | Path | None = None,
                    split: str = "test", max_images: int | None = DEFAULT_SIZES["max_images"],
                    edit_images: int = DEFAULT_SIZES["edit_images"], invert_steps: int = DEFAULT_SIZES["invert_steps"],
                    progress: bool = True, say: Callable[[str], None] | None = None) -> Path:
    """Evaluate each model; write the report folder `out` and return it. `say` gets the plan and its
    time estimate before the work starts (default: printed to stderr when progress is on)."""
    if not models:
        raise UserError("give at least one model to evaluate")
    out = Path(out).expanduser()
    check_replaceable(out, is_report_folder, "the report", "facevae evaluate")
    check_writable(out)
    if max_images is not None and max_images < 1 or edit_images < 1:
        raise UserError("--max-images and --edit-images must be at least 1")
    judge = load_classifier(classifier) if classifier else None
    runs = []
    for label, name in zip(_labels(models), models):
        pipe = FacePipeline.load(name)
        pre = pipe.model.preprocessing
        cache = open_cache(data, pipe.image_size, pre.crop, pre.crop_size)
        images = split_images(cache, split, max_images)
        edited = len(shared_attributes(pipe, judge)) if judge is not None else 0
        runs.append((ModelPlan(label, pipe, len(images), edited), cache, images))
    plans = [plan for plan, _, _ in runs]
    estimates = [estimate_seconds(plan, judge, edit_images, invert_steps) for plan in plans]
    plan_text = describe(plans, estimates, edit_images, invert_steps)
    if say is not None:
        say(plan_text)
    elif progress:
        print(plan_text, file=sys.stderr, flush=True)
    results, notes, grids = [], [], {}
    for plan, cache, images in runs:
        result, grid = _evaluate_one(plan, cache, images, judge, edit_images, invert_steps, progress)
        results.append(result)
        grids[f"reconstructions_{slug(plan.label)}.png"] = grid
        notes += _edit_notes(plan.label, plan.pipe, judge) if judge is not None else []
    context = {"data": str(Path(data).expanduser()), "split": split, "max_images": max_images,
               "classifier": str(classifier) if classifier else None, "edit_images": edit_images,
               "invert_steps": invert_steps, "notes": notes}
    with writing(out), staged_dir(out) as folder:
        write_report(folder, results, context)
        for name, grid in grids.items():
            (folder / name).write_bytes(encode_png(grid))
        with open(folder / "report.md", "a", encoding="utf-8") as report:
            report.write("".join(f"\n![{name}]({name})\n" for name in grids))
    return out


def _evaluate_one(plan: ModelPlan, cache: Any, images: torch.Tensor, judge: Any, edit_images: int,
                  invert_steps: int, progress: bool) -> tuple[dict[str, Any], Any]:
    """One model's result row and its grid of originals over reconstructions."""
    pipe, label = plan.pipe, plan.label
    recon = reconstruct(pipe, images, invert_steps, label, progress)
    result: dict[str, Any] = {"model": label, "path": str(pipe.model.path), "data": str(cache.path),
                              "reconstruction": recon.metrics, "edits": None}
    if judge is not None:
        result["edits"] = [score.as_dict() for score in
                           score_edits(pipe, judge, recon.latents[:edit_images], label=label, progress=progress)]
    shown = torch.cat([recon.originals[:GRID_FACES], recon.reconstructions[:GRID_FACES]])
    grid = make_grid(to_uint8(shown), min(GRID_FACES, len(recon.originals)), scale=2,
                     row_labels=["original", "reconstruction"])
    return result, grid


def is_report_folder(folder: Path) -> bool:
    """Whether `folder` holds an earlier `facevae evaluate` report (its metrics.json)."""
    earlier = folder / "metrics.json"
    try:
        return earlier.is_file() and REPORT_FORMAT in earlier.read_text(encoding="utf-8")[:200]
    except (OSError, UnicodeDecodeError):
        return False


def _edit_notes(label: str, pipe: FacePipeline, judge: Any) -> list[str]:
    notes = []
    if not shared_attributes(pipe, judge):
        notes.append(f"{label}: no attribute vector matches a classifier attribute, so its edits are not scored")
    if pipe.image_size != judge.image_size:
        notes.append(f"{label}: {pipe.image_size}px faces are resized to the classifier's {judge.image_size}px")
    return notes
