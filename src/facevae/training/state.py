"""Where training stands, saved in every checkpoint, and why a fit ended."""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass
class Progress:
    """Where training stands; saved in every checkpoint."""

    epoch: int = 0  # the epoch in progress (0-based)
    batch_in_epoch: int = 0  # batches of that epoch already trained on (at a step boundary)
    step: int = 0  # optimiser steps so far
    best_val: float = math.inf
    bad_validations: int = 0  # validations in a row without a new best (early stopping)
    images_seen: int = 0  # over all ranks


@dataclass
class FitResult:
    status: str  # "finished", "early_stopped", "interrupted" (Ctrl-C, SIGTERM), "budget" (--max-steps, --minutes)
    progress: Progress
