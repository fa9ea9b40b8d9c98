"""facevae.inference.adam computes what torch.optim.Adam computes, to the last bit, without
importing torch._dynamo (which torch.optim does when its first optimiser is built)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import torch

from facevae.inference.adam import Adam

TESTS = Path(__file__).resolve().parents[1]


def _problem(seed: int) -> tuple[list[torch.Tensor], torch.Tensor]:
    generator = torch.Generator().manual_seed(seed)
    weights = [torch.randn(5, 7, generator=generator), torch.randn(7, generator=generator),
               torch.randn(3, 2, 4, 4, generator=generator).contiguous(memory_format=torch.channels_last)]
    return weights, torch.randn(9, 5, generator=generator)


def _loss(weights: list[torch.Tensor], inputs: torch.Tensor) -> torch.Tensor:
    hidden = torch.tanh(inputs @ weights[0] + weights[1])  # 9 x 7
    return hidden.pow(2).mean() + weights[2].abs().sum() * 0.01


def test_matches_torch_adam_bit_for_bit_with_a_changing_step_size() -> None:
    ours, inputs = _problem(0)
    theirs = [w.clone() for w in ours]
    for w in ours + theirs:
        w.requires_grad_(True)
    mine, reference = Adam(ours[:2] + ours[2:], lr=0.1), torch.optim.Adam(theirs, lr=0.1)
    for step in range(25):
        rate = 0.1 * (1 - step / 25) + 0.005  # a schedule, as inversion's cosine
        mine.lr = rate
        for group in reference.param_groups:
            group["lr"] = rate
        for optimiser, weights in ((mine, ours), (reference, theirs)):
            optimiser.zero_grad()
            _loss(weights, inputs).backward()
            optimiser.step()
    for a, b in zip(ours, theirs):
        assert torch.equal(a, b)


def test_parameters_without_a_gradient_are_left_alone() -> None:
    (first, second, _), inputs = _problem(1)
    first.requires_grad_(True)
    before = second.clone()
    optimiser = Adam([first, second], lr=0.1)
    (inputs @ first).sum().backward()
    optimiser.step()
    assert torch.equal(second, before) and optimiser.steps == 1


def test_the_photo_path_does_not_import_dynamo() -> None:
    code = ("import sys, torch; from facevae.inference.inversion import InversionSettings, invert; "
            "from facevae.inference import tuning; "
            f"sys.path.insert(0, {str(TESTS)!r}); from support.models import make_tiny_model; "
            "m = make_tiny_model(); images = torch.rand(1, 3, 32, 32); "
            "codes = invert(m, images, 3, settings=InversionSettings()); "
            "w = torch.ones(1, 32, 32); "
            "tuning.tune(m.decoder, codes, images, w, None, tuning.TuningSettings(steps=2)); "
            "print('torch._dynamo' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert result.stdout.strip().splitlines()[-1] == "False", result.stdout + result.stderr
