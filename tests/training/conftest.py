"""Training fixtures: a tiny prepared cache and one finished tiny run, made once per session."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from support.training import make_cache, tiny_config


@pytest.fixture(autouse=True)
def _deterministic_threads() -> None:
    """Two intra-op threads, as on a small CPU: results must not depend on other tests' settings."""
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(previous)


@pytest.fixture(scope="session")
def tiny_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """48 synthetic 32x32 images: 40 training, 8 validation. Read-only by convention."""
    return make_cache(tmp_path_factory.mktemp("training") / "cache")


@pytest.fixture(scope="session")
def finished_run(tiny_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A complete 2-epoch run of the tiny model through facevae.training.run.train."""
    from facevae.training.run import train

    return train(tiny_config(epochs=2), tiny_cache, tmp_path_factory.mktemp("runs") / "finished", progress=False)
