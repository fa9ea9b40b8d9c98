"""Adam without torch.optim, for the photo path's optimisations (inversion and tuning).

torch.optim's optimisers import torch._dynamo the first time one is built, which a one-shot
`facevae edit photo.jpg` paid on every run for a handful of tensors (seconds on a small CPU:
docs/benchmarks.md, "Redrawn edits, lighter tuning"). This is Adam (Kingma and Ba, 2015)
computed as torch.optim.Adam computes it on the CPU with its defaults (betas 0.9 and 0.999,
eps 1e-8, no weight decay, no amsgrad), in the same float32 operations:
tests/inference/test_adam.py checks the two agree to the last bit. Training keeps
torch.optim (one import in a run of hours).
"""

from __future__ import annotations

import math
from collections.abc import Iterable

import torch


class Adam:
    """Adam over `parameters`; lr may be changed between steps (a schedule)."""

    def __init__(self, parameters: Iterable[torch.Tensor], lr: float, betas: tuple[float, float] = (0.9, 0.999),
                 eps: float = 1e-8) -> None:
        self.parameters = list(parameters)
        self.lr, self.betas, self.eps = lr, betas, eps
        self.steps = 0
        self.first = [torch.zeros_like(p, memory_format=torch.preserve_format) for p in self.parameters]  # m
        self.second = [torch.zeros_like(p, memory_format=torch.preserve_format) for p in self.parameters]  # v

    def zero_grad(self) -> None:
        for parameter in self.parameters:
            parameter.grad = None

    @torch.no_grad()
    def step(self) -> None:
        """One update of every parameter that has a gradient."""
        self.steps += 1
        beta1, beta2 = self.betas
        step_size = self.lr / (1 - beta1 ** self.steps)
        second_correction = math.sqrt(1 - beta2 ** self.steps)
        for parameter, first, second in zip(self.parameters, self.first, self.second):
            if parameter.grad is None:
                continue
            gradient = parameter.grad
            first.lerp_(gradient, 1 - beta1)
            second.mul_(beta2).addcmul_(gradient, gradient, value=1 - beta2)
            parameter.addcdiv_(first, (second.sqrt() / second_correction).add_(self.eps), value=-step_size)
