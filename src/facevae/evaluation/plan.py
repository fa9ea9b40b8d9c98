"""What `facevae evaluate` is about to do, and how long it will take, said before it starts.

    plan = ModelPlan(label, pipe, images=500, edited=40)
    seconds = estimate_seconds(plan, judge, edit_images, invert_steps)

The estimate times this machine: one decode of a batch, two inversion steps of a batch (for
decoder-only models) and one classifier pass, each after a warm-up, then multiplies by the
number of batches the evaluation will run. Preparing a raw data folder (once) comes on top.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch

from ..inference.pipeline import FacePipeline
from .edits import STRENGTHS
from .reconstruction import BATCH

# The sizes of an evaluation: the default fits minutes on a laptop's CPU, --quick about a minute.
DEFAULT_SIZES = {"max_images": 200, "edit_images": 50, "invert_steps": 60}
QUICK_SIZES = {"max_images": 64, "edit_images": 16, "invert_steps": 20}


@dataclass
class ModelPlan:
    label: str
    pipe: FacePipeline
    images: int  # reconstructed
    edited: int  # attribute vectors the classifier can judge (0 without a classifier)


def _seconds(work: Callable[[], object]) -> float:
    """The faster of two timed runs after a warm-up."""
    work()
    timings = []
    for _ in range(2):
        started = time.perf_counter()
        work()
        timings.append(time.perf_counter() - started)
    return min(timings)


def estimate_seconds(plan: ModelPlan, judge: torch.nn.Module | None, edit_images: int, invert_steps: int) -> float:
    """Seconds this machine will take for one model's reconstruction and edits."""
    pipe, batch = plan.pipe, min(BATCH, max(plan.images, 1))
    codes = torch.randn(batch, pipe.model.latent_dim, device=pipe.model.device)
    decode = _seconds(lambda: pipe.decode_tensor(codes))
    images = torch.rand(batch, 3, pipe.image_size, pipe.image_size)
    if pipe.model.has_encoder:
        encode = _seconds(lambda: pipe.model.encode(images))
    else:
        encode = _seconds(lambda: pipe.encode(images, refine_steps=2)) / 2 * invert_steps
    total = math.ceil(plan.images / batch) * (encode + decode)
    if judge is not None and plan.edited:
        size = judge.image_size
        classify = _seconds(lambda: judge.probabilities(torch.rand(batch, 3, size, size)))
        faces = min(edit_images, plan.images)  # decoded and classified per attribute and strength
        total += plan.edited * len(STRENGTHS) * faces / batch * (decode + classify)
    return total


def describe(plans: list[ModelPlan], seconds: list[float], edit_images: int, invert_steps: int) -> str:
    """The plan, one line per model, and the estimated total."""
    lines = ["plan:"]
    for plan, estimate in zip(plans, seconds):
        how = "encoder" if plan.pipe.model.has_encoder else f"inversion, {invert_steps} steps each"
        edits = (f"; {plan.edited} attribute edits x {len(STRENGTHS)} strengths on {min(edit_images, plan.images)} "
                 f"faces" if plan.edited else "")
        lines.append(f"  {plan.label}: reconstruct {plan.images} images ({how}){edits}: about {_duration(estimate)}")
    lines.append(f"  total: about {_duration(sum(seconds))} on this machine now (timed on a sample; preparing a raw "
                 f"data folder comes first, once). --quick for a rough comparison in less")
    return "\n".join(lines)


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{max(seconds, 1):.0f} s"
    return f"{seconds / 60:.0f} min" if seconds < 5400 else f"{seconds / 3600:.1f} h"
