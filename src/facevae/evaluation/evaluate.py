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
from ..inference.edit_quality import quality_record, write_quality
from ..inference.pipeline import FacePipeline
from ..model.classifier import load as load_classifier
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
                    progress: bool = True, say: Callable[[str], None] | None = None,
                    methods: tuple[str, ...] = ("linear",), guide: str | Path | None = None,
                    record_quality: bool = False) -> Path:
    """Evaluate each model; write the report folder `out` and return it. `say` gets the plan and its
    time estimate before the work starts (default: printed to stderr when progress is on). methods:
    "linear" and/or "guided" edits, side by side (guided ones steered by `guide`, default the shipped
    classifier). record_quality: also store each model's linear edit quality in its bundle folder
    (facevae.inference.edit_quality), so the CLI, GUI and API mark its weak attributes."""
    if not models:
        raise UserError("give at least one model to evaluate")
    out = Path(out).expanduser()
    check_replaceable(out, is_report_folder, "the report", "facevae evaluate")
    check_writable(out)
    if max_images is not None and max_images < 1 or edit_images < 1:
        raise UserError("--max-images and --edit-images must be at least 1")
    if record_quality and (classifier is None or "linear" not in methods):
        raise UserError("--record-quality stores the linear edits' scores: give --classifier and keep linear "
                        "in --methods")
    judge = _judge(classifier)
    steering = _guide(guide, methods, judge)
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
        result, grid = _evaluate_one(plan, cache, images, judge, edit_images, invert_steps, progress,
                                     methods, steering)
        results.append(result)
        grids[f"reconstructions_{slug(plan.label)}.png"] = grid
        notes += _edit_notes(plan.label, plan.pipe, judge) if judge is not None else []
        if record_quality:
            notes.append(_record_quality(plan, result, classifier, min(edit_images, plan.images),
                                         f"real faces: {cache.path}, split {split}, inverted"))
    context = {"data": str(Path(data).expanduser()), "split": split, "max_images": max_images,
               "classifier": str(classifier) if classifier else None, "edit_images": edit_images,
               "invert_steps": invert_steps, "methods": list(methods),
               "notes": notes + _guide_notes(judge, steering, classifier, guide)}
    with writing(out), staged_dir(out) as folder:
        write_report(folder, results, context)
        for name, grid in grids.items():
            (folder / name).write_bytes(encode_png(grid))
        with open(folder / "report.md", "a", encoding="utf-8") as report:
            report.write("".join(f"\n![{name}]({name})\n" for name in grids))
    return out


def _evaluate_one(plan: ModelPlan, cache: Any, images: torch.Tensor, judge: Any, edit_images: int,
                  invert_steps: int, progress: bool, methods: tuple[str, ...],
                  steering: Any) -> tuple[dict[str, Any], Any]:
    """One model's result row (each method's edit scores side by side) and its grid of originals
    over reconstructions."""
    pipe, label = plan.pipe, plan.label
    recon = reconstruct(pipe, images, invert_steps, label, progress)
    result: dict[str, Any] = {"model": label, "path": str(pipe.model.path), "data": str(cache.path),
                              "reconstruction": recon.metrics, "edits": None}
    if judge is not None:
        scored = {method: score_edits(pipe, judge, recon.latents[:edit_images], label=f"{label} {method}",
                                      progress=progress, method=method, guide=steering) for method in methods}
        result["edits"] = [score.as_dict() for score in _side_by_side(scored)]
    shown = torch.cat([recon.originals[:GRID_FACES], recon.reconstructions[:GRID_FACES]])
    grid = make_grid(to_uint8(shown), min(GRID_FACES, len(recon.originals)), scale=2,
                     row_labels=["original", "reconstruction"])
    return result, grid


def _record_quality(plan: ModelPlan, result: dict[str, Any], classifier: Any, faces: int, codes: str) -> str:
    """Store the model's linear edit quality in its bundle folder; a note saying where (or why not)."""
    folder = plan.pipe.model.path
    if folder is None or not Path(folder).is_dir():
        return f"{plan.label}: edit quality not recorded (it was not loaded from a bundle folder)"
    linear = [row for row in result["edits"] or [] if not row["attribute"].endswith(" (guided)")]
    record = quality_record(plan.label, linear, faces, str(classifier), codes)
    return f"{plan.label}: edit quality recorded in {write_quality(folder, record)}"


def is_report_folder(folder: Path) -> bool:
    """Whether `folder` holds an earlier `facevae evaluate` report (its metrics.json)."""
    earlier = folder / "metrics.json"
    try:
        return earlier.is_file() and REPORT_FORMAT in earlier.read_text(encoding="utf-8")[:200]
    except (OSError, UnicodeDecodeError):
        return False


def _judge(classifier: str | Path | None) -> Any:
    """The judging classifier: a folder, "shipped" (facevae's own, model.shipped) or None."""
    from ..model.shipped import load_shipped

    if classifier is None:
        return None
    return load_shipped() if str(classifier) == "shipped" else load_classifier(classifier)


def _guide(guide: str | Path | None, methods: tuple[str, ...], judge: Any) -> Any:
    """The classifier that steers guided edits (None without them); checks the methods."""
    from ..model.shipped import load_shipped

    unknown = [method for method in methods if method not in ("linear", "guided")]
    if unknown or not methods:
        raise UserError(f"--methods takes linear and/or guided, e.g. linear,guided; got {','.join(methods)}")
    if "guided" not in methods:
        return None
    if judge is None:
        raise UserError("guided edits are scored by the judging classifier: give --classifier too")
    return load_classifier(guide) if guide else load_shipped()


def _side_by_side(scored: dict[str, list[Any]]) -> list[Any]:
    """Each attribute's rows together: linear, then guided."""
    rows = [score for scores in scored.values() for score in scores]
    order = {score.attribute: index for index, score in enumerate(scored.get("linear", []))}
    return sorted(rows, key=lambda s: order.get(s.attribute.removesuffix(" (guided)"), len(order)))


def _guide_notes(judge: Any, steering: Any, classifier: Any, guide: Any) -> list[str]:
    """A warning when the classifier that judges guided edits is the one that steered them."""
    if steering is None or judge is None:
        return []
    same = all(torch.equal(a, b) for a, b in zip(judge.state_dict().values(), steering.state_dict().values())) and \
        judge.attribute_names == steering.attribute_names
    if not same:
        return [f"guided edits were steered by {guide or 'the shipped classifier'} and judged by {classifier}"]
    return [f"WARNING: the judging classifier ({classifier}) is the one that steered the guided edits: they look "
            f"better to it than they are. Judge with an independent classifier (another seed or architecture)"]


def _edit_notes(label: str, pipe: FacePipeline, judge: Any) -> list[str]:
    notes = []
    if not shared_attributes(pipe, judge):
        notes.append(f"{label}: no attribute vector matches a classifier attribute, so its edits are not scored")
    if pipe.image_size != judge.image_size:
        notes.append(f"{label}: {pipe.image_size}px faces are resized to the classifier's {judge.image_size}px")
    return notes
