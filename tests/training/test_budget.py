"""--max-steps and --minutes stop as Ctrl-C does (last.pt at a step boundary), write the
bundle, and --resume continues to the same weights as a run that never stopped."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import facevae
from facevae.cli.main import main
from facevae.errors import UserError
from facevae.training.budget import Budget
from facevae.training.checkpoint import load_checkpoint
from facevae.training.run import train
from support.models import torch_threads
from support.training import tiny_config, write_config

RECIPE = dict(epochs=2, warmup_steps=2, kl_warmup_steps=4, grad_clip=5.0)  # 5 steps per epoch


def _weights(run: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(run / "checkpoints" / "last.pt")["model"]


@pytest.fixture(scope="module")
def straight(tiny_cache: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, torch.Tensor]:
    """The weights of the run that is never stopped, on the two threads the tests run on
    (a module fixture is set up before the autouse _deterministic_threads of conftest.py)."""
    with torch_threads(2):
        return _weights(train(tiny_config(**RECIPE), tiny_cache, tmp_path_factory.mktemp("straight"), progress=False))


@pytest.mark.parametrize(("budget", "stops_at"), [(Budget(max_steps=3), 3), (Budget(max_steps=5), 5),
                                                  (Budget(minutes=1e-9), 1)])
def test_a_budget_stops_with_a_checkpoint_and_a_bundle_and_resumes_exactly(
        budget: Budget, stops_at: int, tiny_cache: Path, tmp_path: Path, straight: dict[str, torch.Tensor],
        capsys: pytest.CaptureFixture) -> None:
    run = train(tiny_config(**RECIPE), tiny_cache, tmp_path / "run", progress=False, budget=budget)
    progress = load_checkpoint(run / "checkpoints" / "last.pt")["progress"]
    assert progress["step"] == stops_at  # step 5 is epoch 1's last: its end is left to the resumed run
    assert "stopped by its budget" in capsys.readouterr().err
    assert facevae.load(run).latent_dim == 16  # the bundle, usable at once
    train(tiny_config(**RECIPE), tiny_cache, run, resume=True, progress=False)
    resumed = _weights(run)
    assert all(torch.equal(straight[k], resumed[k]) for k in straight), [
        k for k in straight if not torch.equal(straight[k], resumed[k])]


def test_max_steps_counts_the_whole_run_and_refuses_a_spent_budget(tiny_cache: Path, tmp_path: Path) -> None:
    run = train(tiny_config(**RECIPE), tiny_cache, tmp_path / "run", progress=False, budget=Budget(max_steps=2))
    train(tiny_config(**RECIPE), tiny_cache, run, resume=True, progress=False, budget=Budget(max_steps=7))
    assert load_checkpoint(run / "checkpoints" / "last.pt")["progress"]["step"] == 7
    with pytest.raises(UserError, match="--max-steps 7 is spent already: .* is at step 7. Pass a larger --max-steps"):
        train(tiny_config(**RECIPE), tiny_cache, run, resume=True, progress=False, budget=Budget(max_steps=7))


def test_bad_budgets_are_explained() -> None:
    with pytest.raises(UserError, match="--max-steps must be at least 1, got 0"):
        Budget(max_steps=0)
    with pytest.raises(UserError, match="--minutes must be a positive number of minutes, got -1"):
        Budget(minutes=-1)


def test_the_train_command_takes_the_budget_options(tiny_cache: Path, tmp_path: Path,
                                                    capsys: pytest.CaptureFixture) -> None:
    config = write_config(tmp_path / "c.json", epochs=100)
    run = tmp_path / "run"
    common = ["train", "--data", str(tiny_cache), "--out", str(run), "--config", str(config), "--quiet"]
    assert main([*common, "--max-steps", "4", "--threads", "1"]) == 0
    err = capsys.readouterr().err
    assert "budget: stop at step 4" in err and "stopped by its budget (at step 4) at step 4" in err
    assert "CPU (" in err and "1 thread" in err  # --threads reached torch
    assert main(["train", "--out", str(run), "--resume", "--quiet", "--minutes", "0.000001"]) == 0
    assert load_checkpoint(run / "checkpoints" / "last.pt")["progress"]["step"] == 5
    assert (run / "bundle").is_dir()
