"""Numeric command-line options with the REST API's bounds (facevae.limits: one definition).

    parser.add_argument("--scale", type=whole(1, MAX_SCALE), default=1)

A value outside its bounds is a usage error that names the option and the range, before any
model loads: `--scale 100000` is refused, not a 12 GB picture, and `--seed 1e23` is refused,
not a traceback from torch.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable

from ..limits import MAX_CLI_FACES, MAX_FACES, MAX_REFINE_STEPS, MAX_SCALE, MAX_SEED, MAX_TEMPERATURE

MAX_THREADS = 1024
MAX_IMAGES = 10**9  # images of a split: bounds a typo, not a data set
MAX_WORKERS = 1024


def whole(low: int, high: int) -> Callable[[str], int]:
    """An argparse type: a whole number in [low, high]."""
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{_short(text)} is outside {low:,}..{high:,}")
        return value

    parse.__name__ = "whole number"  # what argparse calls the type in its messages
    return parse


def number(low: float, high: float, low_open: bool = False) -> Callable[[str], float]:
    """An argparse type: a finite number in [low, high] (or (low, high] with low_open)."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
        if not math.isfinite(value) or value < low or value > high or (low_open and value == low):
            shown = f"({low:g}, {high:g}]" if low_open else f"{low:g}..{high:g}"
            raise argparse.ArgumentTypeError(f"{_short(text)} is outside {shown}")
        return value

    parse.__name__ = "number"
    return parse


def _short(text: str) -> str:
    return text if len(text) <= 24 else text[:20] + "..."


# The bounds the commands share.
FACES = whole(1, MAX_CLI_FACES)  # faces (or rows) in one picture
COLUMNS = whole(1, MAX_CLI_FACES)
MORPH_STEPS = whole(2, MAX_FACES)  # the API's bound on a morph row
SEED = whole(0, MAX_SEED)
TEMPERATURE = number(0.0, MAX_TEMPERATURE)
SCALE = whole(1, MAX_SCALE)
REFINE_STEPS = whole(0, MAX_REFINE_STEPS)
THREADS = whole(1, MAX_THREADS)
IMAGES = whole(1, MAX_IMAGES)
WORKERS = whole(0, MAX_WORKERS)
FRACTION = number(0.0, 0.99)
