"""A budget for one `facevae train` invocation: stop after a total number of optimiser steps
(`--max-steps N`) or minutes of training (`--minutes M`), the way Ctrl-C stops: at a step
boundary, with checkpoints/last.pt saved, so that `--resume` continues exactly."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

from ..errors import UserError


@dataclass
class Budget:
    max_steps: int | None = None  # total optimiser steps of the run, earlier (resumed) steps included
    minutes: float | None = None  # wall-clock minutes of training in this process
    started: float = field(default_factory=time.monotonic)  # time.monotonic() when training started

    def __post_init__(self) -> None:
        if self.max_steps is not None and self.max_steps < 1:
            raise UserError(f"--max-steps must be at least 1, got {self.max_steps}")
        if self.minutes is not None and not (math.isfinite(self.minutes) and self.minutes > 0):
            raise UserError(f"--minutes must be a positive number of minutes, got {self.minutes}")

    def start(self) -> None:
        """Start the clock (training, not preparing the cache, counts)."""
        self.started = time.monotonic()

    def steps_spent(self, step: int) -> bool:
        return self.max_steps is not None and step >= self.max_steps

    def time_spent(self) -> bool:
        return self.minutes is not None and time.monotonic() - self.started >= 60 * self.minutes

    def describe(self) -> str:
        """What this budget is, for the run summary: 'at step 600 or after 5 minutes'."""
        parts = ([f"at step {self.max_steps:,}"] if self.max_steps is not None else []) + (
            [f"after {self.minutes:g} minutes of training"] if self.minutes is not None else [])
        return " or ".join(parts)
