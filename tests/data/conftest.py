"""Data fixtures: CelebA-format folders generated once per session (real JPEGs, real label files).

Tests that modify a folder make their own with `make_celeba(tmp_path, ...)`; these shared
ones are read-only by convention.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from facevae.data.prepare import prepare
from facevae.testing.celeba import CelebaFixture, make_celeba


@pytest.fixture(scope="session")
def celeba(tmp_path_factory: pytest.TempPathFactory) -> CelebaFixture:
    """300 official-layout images; one truncated, one garbage, one without an attribute row,
    and one attribute/partition row for a file that does not exist."""
    return make_celeba(tmp_path_factory.mktemp("celeba"), "official", count=300, corrupt=2, missing_row=1, extra_rows=1)


@pytest.fixture(scope="session")
def celeba_cache(celeba: CelebaFixture, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """That folder prepared once at 64x64 squash, in-process (workers=1)."""
    return prepare(celeba.root, out=tmp_path_factory.mktemp("caches") / "64-squash", workers=1, progress=False)
