"""Periodic actions of the training loop: each runs after every N-th optimiser step.

The trainer keeps a short list of StepHooks (log the running losses, validate, checkpoint);
after each step, run_due_hooks runs those whose period divides the step count, in order.
Hooks that pause training (validation, checkpoints) move the logging window's start by the
time they took, so images/s counts training time only.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

from tqdm.auto import tqdm

from .meters import LossMeter


@dataclass
class EpochState:
    """What the hooks of one epoch share: the meters, the window's start time, the bar."""

    epoch_meter: LossMeter  # the whole epoch's losses
    window: LossMeter  # the losses since the last log
    window_start: float  # time.perf_counter() at the window's start
    bar: tqdm
    at_epoch_end: bool = False  # the step just taken was the epoch's last


@dataclass(frozen=True)
class StepHook:
    every: int  # optimiser steps between runs; 0 never runs
    action: Callable[[EpochState], str | None]  # a status ("early_stopped") ends the epoch
    pauses_training: bool = True  # False: its time counts as training time (logging)


def run_due_hooks(hooks: list[StepHook], step: int, state: EpochState) -> str | None:
    """Run the hooks due at `step`; returns the last status one of them gave, if any."""
    status = None
    for hook in hooks:
        if not hook.every or step % hook.every:
            continue
        started = time.perf_counter()
        status = hook.action(state) or status
        if hook.pauses_training:
            state.window_start += time.perf_counter() - started
    return status
