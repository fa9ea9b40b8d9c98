"""Tiny settings shared by the evaluation tests."""

from __future__ import annotations

from facevae.evaluation.classifier_training import ClassifierTrainConfig

TINY_CHANNELS = (16, 32, 32)
TINY_TRAINING = ClassifierTrainConfig(epochs=6, batch_size=32, precision="fp32")
