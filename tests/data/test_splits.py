from __future__ import annotations

import numpy as np
import pytest

from facevae.data.splits import OFFICIAL_COUNTS, seeded_split, split_counts


def test_official_counts_add_up_to_celeba():
    assert OFFICIAL_COUNTS == {"train": 162_770, "valid": 19_867, "test": 19_962}
    assert sum(OFFICIAL_COUNTS.values()) == 202_599


@pytest.mark.parametrize("count, val, test", [(1000, 0.1, 0.1), (999, 0.2, 0.05), (7, 0.0, 0.3)])
def test_seeded_split_sizes(count, val, test):
    split = seeded_split(count, val, test, seed=3)
    assert split.dtype == np.uint8 and len(split) == count
    assert split_counts(split) == {"train": count - round(count * val) - round(count * test),
                                   "valid": round(count * val), "test": round(count * test)}


def test_seeded_split_is_deterministic_and_depends_on_the_seed():
    np.testing.assert_array_equal(seeded_split(500, 0.1, 0.1, 0), seeded_split(500, 0.1, 0.1, 0))
    assert (seeded_split(500, 0.1, 0.1, 0) != seeded_split(500, 0.1, 0.1, 1)).any()


def test_fractions_must_leave_training_images():
    with pytest.raises(ValueError):
        seeded_split(10, 0.5, 0.5, 0)
