"""Train / valid / test assignment: CelebA's official partition, or a seeded random split.

Codes follow list_eval_partition.txt and the cache: 0 train, 1 valid, 2 test.
"""

from __future__ import annotations

import numpy as np

TRAIN, VALID, TEST = 0, 1, 2
# The official partition of the 202,599 aligned CelebA images.
OFFICIAL_COUNTS = {"train": 162_770, "valid": 19_867, "test": 19_962}
CELEBA_IMAGE_COUNT = sum(OFFICIAL_COUNTS.values())


def seeded_split(count: int, val_fraction: float, test_fraction: float, seed: int) -> np.ndarray:
    """count uint8 codes: round(count * test_fraction) test images and round(count *
    val_fraction) validation images chosen by a permutation seeded with `seed`, the rest train.

    The same count, fractions and seed give the same assignment on every machine (NumPy's
    PCG64 generator), so a cache rebuilt from the same sorted file list splits identically.
    """
    if not (0 <= val_fraction < 1 and 0 <= test_fraction < 1 and val_fraction + test_fraction < 1):
        raise ValueError("val_fraction and test_fraction must be in [0, 1) and leave some training images")
    n_test, n_val = round(count * test_fraction), round(count * val_fraction)
    order = np.random.default_rng(seed).permutation(count)
    split = np.full(count, TRAIN, np.uint8)
    split[order[:n_test]] = TEST
    split[order[n_test:n_test + n_val]] = VALID
    return split


def split_counts(split: np.ndarray) -> dict[str, int]:
    return {name: int((split == code).sum()) for name, code in (("train", TRAIN), ("valid", VALID), ("test", TEST))}
