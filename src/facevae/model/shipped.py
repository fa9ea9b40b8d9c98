"""The attribute classifier that ships with facevae: the default guide of guided edits and
the default judge of `facevae evaluate` for celeba64-original.

    classifier = load_shipped()            # an AttributeClassifier at 64 x 64, 40 CelebA attributes
    shipped_info()                         # what it was trained on, its terms, its test scores

The folder (package data, src/facevae/model/weights/celeba64-attributes) is a classifier
folder like any `facevae classifier train` writes, plus evaluation_test.json (scores on a split
training never saw) and README.md. scripts/train_shipped_classifier.sh is its recipe; it was
trained on the 8,000-face CelebA sample, so CelebA's terms apply to it (non-commercial research).
"""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import torch

from .classifier import AttributeClassifier, ClassifierConfig, ClassifierError, load, read_config

SHIPPED_NAME = "celeba64-attributes"
SHIPPED_DIR = Path(__file__).resolve().parent / "weights" / SHIPPED_NAME
TEST_FILE = "evaluation_test.json"


def shipped_dir() -> Path:
    """The shipped classifier's folder; an error naming the fix when this install lacks it."""
    if not (SHIPPED_DIR / "classifier.safetensors").is_file():
        raise ClassifierError(f"this facevae install has no shipped attribute classifier (looked in {SHIPPED_DIR}); "
                              f"reinstall facevae, or train one with scripts/train_shipped_classifier.sh and pass "
                              f"its folder instead")
    return SHIPPED_DIR


def load_shipped(device: str | torch.device = "cpu") -> AttributeClassifier:
    """The shipped classifier, in eval mode (64 x 64 inputs in [0, 1], squashed CelebA frames)."""
    return load(shipped_dir(), device)


@functools.lru_cache(maxsize=1)
def shipped_config() -> ClassifierConfig:
    """The shipped classifier's architecture: its attribute names and members (no weights read)."""
    config, _ = read_config(shipped_dir())
    return config


def shipped_info() -> dict[str, Any]:
    """{"data": what it was trained on and under which terms, "train": how, "test": held-out scores}."""
    folder = shipped_dir()
    _, meta = read_config(folder)
    test_path = folder / TEST_FILE
    test = json.loads(test_path.read_text(encoding="utf-8")) if test_path.is_file() else {}
    return {"data": meta.get("data", {}), "train": meta.get("train", {}), "test": test}
