"""Planted-attribute caches and a classifier trained on them, shared by the evaluation tests."""

from __future__ import annotations

from pathlib import Path

import pytest

from facevae.data.cache import ImageCache
from facevae.evaluation.classifier_training import train_classifier
from facevae.testing.planted import make_planted_cache
from support.evaluation import TINY_CHANNELS, TINY_TRAINING


@pytest.fixture(scope="session")
def planted_cache(tmp_path_factory: pytest.TempPathFactory) -> ImageCache:
    """600 32x32 planted faces: 360 train / 120 valid / 120 test."""
    data = make_planted_cache(tmp_path_factory.mktemp("planted") / "cache", count=600, size=32, seed=0)
    return ImageCache.open(data.path)


@pytest.fixture(scope="session")
def planted_classifier(planted_cache: ImageCache, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny classifier trained on the planted cache (about half a minute on two cores)."""
    out = tmp_path_factory.mktemp("classifier") / "clf"
    return train_classifier(planted_cache, out, TINY_TRAINING, TINY_CHANNELS, progress=False)
