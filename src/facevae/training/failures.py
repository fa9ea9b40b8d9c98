"""Why a training run stopped on its own, in words that say what to change."""

from __future__ import annotations

from pathlib import Path

import torch

from ..config import TrainConfig
from ..errors import UserError


class TrainingDivergedError(UserError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


class TrainingOutOfMemoryError(UserError):
    """A batch did not fit in GPU memory."""


def diverged_error(config: TrainConfig, what: str, step: int, epoch: int, last: Path | None) -> TrainingDivergedError:
    """`what` ("the training loss") became NaN at `step` of `epoch` (0-based); `last` is the
    checkpoint left intact (None: the run writes none)."""
    kept = f"The last good checkpoint, {last}, is intact" if last is not None else "No checkpoint was written"
    return TrainingDivergedError(
        f"Training diverged: {what} became NaN or infinite at step {step} (epoch {epoch + 1}). "
        f"{kept}. Likely causes: a learning rate too high (train.lr = {config.lr:g}; try {config.lr / 10:g}), "
        f"a reconstruction weight too large (train.recon_weight = {config.recon_weight:g}), no gradient clipping "
        f"(try --set train.grad_clip=1.0), bf16 overflow (try --set train.precision=fp32), or damaged images. "
        f"Change the config, then continue with --resume"
    )


def out_of_memory_error(config: TrainConfig, device: torch.device) -> TrainingOutOfMemoryError:
    smaller = max(1, config.batch_size // 2)
    return TrainingOutOfMemoryError(
        f"Out of GPU memory with a batch of {config.batch_size} images on {device}. Use a smaller batch, e.g. "
        f"--set train.batch_size={smaller} --set train.grad_accum={config.grad_accum * 2} (same effective batch), "
        f"turn off --compile, or free the GPU of other processes"
    )
