"""`facevae evaluate` says its plan and a time estimate first, has a quick mode, and its plots show
every attribute without overlapping labels (issue 19, item 11)."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from PIL import Image, ImageDraw

import facevae.evaluation.evaluate as evaluate_module
from facevae.cli.main import main
from facevae.data.cache import ImageCache
from facevae.data.labels import CELEBA_ATTRIBUTES
from facevae.evaluation import plots
from facevae.evaluation.plan import DEFAULT_SIZES, QUICK_SIZES


def test_the_plan_and_estimate_come_before_the_work(tiny_bundle: Path, planted_cache: ImageCache,
                                                    planted_classifier: Path, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    said: list[str] = []
    real = evaluate_module.reconstruct

    def reconstruct(*args, **kwargs):
        assert said, "reconstruction started before the plan was said"
        return real(*args, **kwargs)

    monkeypatch.setattr(evaluate_module, "reconstruct", reconstruct)
    evaluate_module.evaluate_models([str(tiny_bundle)], planted_cache.path, tmp_path / "e",
                                    classifier=planted_classifier, max_images=10, edit_images=4, invert_steps=3,
                                    progress=False, say=said.append)
    plan = said[0]
    assert "tiny-bundle: reconstruct 10 images (encoder)" in plan
    assert "attribute edits x 5 strengths on 4 faces" in plan and "total: about" in plan


@pytest.mark.parametrize("argv, expected", [
    ([], DEFAULT_SIZES),
    (["--quick"], QUICK_SIZES),
    (["--quick", "--max-images", "7"], {**QUICK_SIZES, "max_images": 7}),
])
def test_quick_mode_and_default_sizes(argv: list[str], expected: dict, tmp_path: Path,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    seen = {}

    def evaluate_models(models, data, out, **kwargs):
        seen.update(kwargs)
        raise evaluate_module.UserError("stop here")

    monkeypatch.setattr(evaluate_module, "evaluate_models", evaluate_models)
    assert main(["evaluate", "m", "--data", "d", "--out", str(tmp_path / "o"), *argv]) == 2
    assert {key: seen[key] for key in expected} == expected


def test_default_sizes_fit_minutes_not_half_an_hour() -> None:
    """The README's command ran 500 images x 100 inversion steps and 100 edited faces: 28 minutes."""
    work = DEFAULT_SIZES["max_images"] * DEFAULT_SIZES["invert_steps"]
    assert work <= 500 * 100 / 4 and DEFAULT_SIZES["edit_images"] <= 50
    assert QUICK_SIZES["max_images"] * QUICK_SIZES["invert_steps"] <= work / 8


def test_every_attribute_of_forty_is_in_the_curves_legend() -> None:
    random.seed(0)
    curves = {name: ([-2.0, 0.0, 2.0], [random.random() for _ in range(3)]) for name in CELEBA_ATTRIBUTES}
    image = plots.probability_curves(curves, "t")
    last_marker_y = plots.MARGIN_TOP + 6 + 39 * plots.LEGEND_ROW + 5
    assert image.height > last_marker_y + 5
    x = plots.WIDTH - plots.MARGIN_RIGHT + 12 + 5
    assert image.getpixel((x, last_marker_y)) == plots.colour(39)  # the 40th entry's marker is drawn


def test_dot_labels_do_not_overlap() -> None:
    random.seed(1)
    draw = ImageDraw.Draw(Image.new("RGB", (plots.WIDTH, 640), "white"))
    anchors = [(random.uniform(80, 520), random.uniform(70, 580)) for _ in CELEBA_ATTRIBUTES * 2]
    boxes = plots.place_labels(draw, anchors, list(CELEBA_ATTRIBUTES) * 2, (64, 52, 540, 588))
    assert len(boxes) == 80
    overlaps = [(i, j) for i in range(len(boxes)) for j in range(i) if plots._overlap(boxes[i], boxes[j]) > 0]
    assert overlaps == []
