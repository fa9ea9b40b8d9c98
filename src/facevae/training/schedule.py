"""The learning-rate schedule: lr(step) = warm-up ramp x (constant | cosine | plateau scale) x lr."""

from __future__ import annotations

import math
from typing import Any

from ..config import TrainConfig

PLATEAU_MIN_GAIN = 1e-3  # a validation loss must beat the best by this fraction to count as better


class LRSchedule:
    """The learning rate of every optimiser step; its plateau state goes into checkpoints."""

    def __init__(self, config: TrainConfig, total_steps: int) -> None:
        self.config, self.total_steps = config, max(1, total_steps)
        self.plateau_scale, self.plateau_best, self.plateau_bad = 1.0, math.inf, 0

    def lr_at(self, step: int) -> float:
        """The rate for optimiser step `step` (0-based): warm-up multiplies by (step + 1) / warmup_steps."""
        c = self.config
        if c.lr_schedule == "cosine":
            progress = min(1.0, step / self.total_steps)
            lr = c.min_lr + (c.lr - c.min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))
        else:
            lr = c.lr * (self.plateau_scale if c.lr_schedule == "plateau" else 1.0)
        if step < c.warmup_steps:
            lr *= (step + 1) / c.warmup_steps
        return lr

    def on_validation(self, loss: float) -> None:
        """Plateau: multiply the lr by plateau_factor after plateau_patience validations without
        a PLATEAU_MIN_GAIN improvement."""
        if self.config.lr_schedule != "plateau":
            return
        if loss < self.plateau_best * (1 - PLATEAU_MIN_GAIN):
            self.plateau_best, self.plateau_bad = loss, 0
        else:
            self.plateau_bad += 1
            if self.plateau_bad >= self.config.plateau_patience:
                self.plateau_scale *= self.config.plateau_factor
                self.plateau_bad = 0

    def state_dict(self) -> dict[str, Any]:
        return {"total_steps": self.total_steps, "plateau_scale": self.plateau_scale,
                "plateau_best": self.plateau_best, "plateau_bad": self.plateau_bad}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.plateau_scale, self.plateau_best = state["plateau_scale"], state["plateau_best"]
        self.plateau_bad = state["plateau_bad"]
