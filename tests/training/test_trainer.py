from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import pytest
import torch

from facevae.config import TrainConfig
from facevae.data.cache import ImageCache
from facevae.training.checkpoint import load_checkpoint
from facevae.training.failures import TrainingDivergedError, TrainingOutOfMemoryError
from facevae.training.run import train
from facevae.training.schedule import LRSchedule
from facevae.training.trainer import Trainer
from support.training import tiny_config

CPU = torch.device("cpu")


def test_loss_falls_on_a_tiny_config(tiny_cache: Path) -> None:
    trainer = Trainer(tiny_config(epochs=3, lr=5e-3), ImageCache.open(tiny_cache), None, device=CPU, progress=False)
    result = trainer.fit()
    assert result.status == "finished" and result.progress.step == 3 * 5
    first, last = trainer.history[0]["train"], trainer.history[-1]["train"]
    assert last["total"] < 0.85 * first["total"]
    assert last["weighted_recon"] < first["weighted_recon"]
    assert set(trainer.history[-1]["valid"]) == {"total", "weighted_recon", "weighted_kl", "recon", "kl"}


def test_one_step_changes_every_weight_and_batch_norm_statistics(tiny_cache: Path) -> None:
    trainer = Trainer(tiny_config(), ImageCache.open(tiny_cache), None, device=CPU, progress=False)
    before = {k: v.clone() for k, v in trainer.model.state_dict().items()}
    assert trainer.train_epoch(max_steps=1) == "paused"
    after = trainer.model.state_dict()
    unchanged = [k for k, v in before.items() if not k.endswith("num_batches_tracked") and torch.equal(v, after[k])]
    assert unchanged == []
    assert trainer.progress.step == 1 and trainer.progress.batch_in_epoch == 1


def test_gradient_accumulation_counts_optimiser_steps(tiny_cache: Path) -> None:
    # 40 images, batch 8 -> 5 batches per epoch; groups of 2 -> steps of 2, 2, 1 batches
    trainer = Trainer(tiny_config(grad_accum=2), ImageCache.open(tiny_cache), None, device=CPU, progress=False)
    assert trainer.steps_per_epoch == 3
    trainer.fit()
    assert trainer.progress.step == 3 and trainer.progress.epoch == 1


def _state(path: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(path)["model"]


def test_resume_gives_the_same_weights_as_an_uninterrupted_run(tiny_cache: Path, tmp_path: Path) -> None:
    """'2 epochs' == '1 epoch, stop, resume, 1 epoch', bit for bit, on the CPU in fp32.

    (A cosine schedule spans the epochs it was made for, so this uses a constant one with
    warm-up; the next test resumes a cosine run from the middle of an epoch.)"""
    config = dict(warmup_steps=2, kl_warmup_steps=4, grad_clip=5.0)
    straight = train(tiny_config(epochs=2, **config), tiny_cache, tmp_path / "straight", progress=False)
    first = train(tiny_config(epochs=1, **config), tiny_cache, tmp_path / "resumed", progress=False)
    assert load_checkpoint(first / "checkpoints" / "last.pt")["progress"]["epoch"] == 1
    resumed = train(tiny_config(epochs=2, **config), tiny_cache, first, resume=True, progress=False)
    a, b = _state(straight / "checkpoints" / "last.pt"), _state(resumed / "checkpoints" / "last.pt")
    assert all(torch.equal(a[k], b[k]) for k in a), [k for k in a if not torch.equal(a[k], b[k])]


def test_resume_from_the_middle_of_an_epoch_matches(tiny_cache: Path, tmp_path: Path) -> None:
    cache = ImageCache.open(tiny_cache)
    config = tiny_config(epochs=2, lr_schedule="cosine", warmup_steps=2, kl_warmup_steps=4, grad_clip=5.0)
    reference = Trainer(config, cache, None, device=CPU, progress=False)
    reference.fit()

    interrupted = Trainer(config, cache, tmp_path, device=CPU, progress=False)
    interrupted.train_epoch(max_steps=3)  # 3 of the 5 steps of epoch 1
    path = interrupted.save("last")
    continued = Trainer(config, cache, tmp_path, device=CPU, progress=False)
    continued.restore(load_checkpoint(path), path)
    assert (continued.progress.epoch, continued.progress.batch_in_epoch) == (0, 3)
    continued.fit()
    a, b = reference.model.state_dict(), continued.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_resume_after_an_epochs_last_batch_still_ends_that_epoch(tiny_cache: Path, tmp_path: Path) -> None:
    """A checkpoint written at an epoch's last step but before its end (validation, samples,
    the epoch's own checkpoint), as SIGKILL can leave: resuming does that end, not a skip."""
    cache = ImageCache.open(tiny_cache)
    config = tiny_config(epochs=1)
    reference = Trainer(config, cache, tmp_path / "reference", device=CPU, progress=False)
    reference.fit()

    run = tmp_path / "run"
    interrupted = Trainer(config, cache, run, device=CPU, progress=False)
    interrupted.train_epoch(max_steps=5)  # all 5 steps of the epoch, then stops before its end
    path = interrupted.save("last")
    assert load_checkpoint(path)["progress"]["batch_in_epoch"] == 5
    continued = Trainer(config, cache, run, device=CPU, progress=False)
    continued.restore(load_checkpoint(path), path)
    assert continued.fit().status == "finished"
    assert continued.history == [{**reference.history[0], "train": None}]  # nothing trained, validated
    ended = load_checkpoint(path)["progress"]
    assert (ended["epoch"], ended["batch_in_epoch"], ended["step"]) == (1, 0, 5)
    assert (run / "samples").is_dir() and sorted(p.name for p in (run / "samples").iterdir()) == sorted(
        p.name for p in (tmp_path / "reference" / "samples").iterdir())
    a, b = reference.model.state_dict(), continued.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_nan_guard_names_the_step_and_keeps_the_last_good_checkpoint(tiny_cache: Path, tmp_path: Path) -> None:
    run = train(tiny_config(epochs=1), tiny_cache, tmp_path / "run", progress=False)
    last = run / "checkpoints" / "last.pt"
    good = load_checkpoint(last)
    with pytest.raises(TrainingDivergedError) as error:
        train(tiny_config(epochs=3, lr=1e30), tiny_cache, run, resume=True, progress=False)
    message = str(error.value)
    assert "NaN or infinite at step" in message and "learning rate" in message and "last.pt" in message
    kept = load_checkpoint(last)
    assert kept["progress"]["step"] == good["progress"]["step"] == 5
    assert all(torch.isfinite(v).all() for v in kept["model"].values() if v.is_floating_point())
    assert all(torch.equal(kept["model"][k], good["model"][k]) for k in good["model"])


def test_warm_up_ramps_linearly_to_the_base_rate() -> None:
    # warm-up over 4 steps: step k (0-based) runs at (k + 1) / 4 of the rate, then the rate itself
    constant = LRSchedule(TrainConfig(lr=0.8, lr_schedule="constant", warmup_steps=4), total_steps=100)
    assert [constant.lr_at(step) for step in range(6)] == pytest.approx([0.2, 0.4, 0.6, 0.8, 0.8, 0.8])


def test_cosine_decays_from_lr_to_min_lr_over_the_run() -> None:
    # lr 1.0 -> 0.1 over 8 steps, warm-up 2: 0.1 + 0.45 (1 + cos(pi k / 8)), times 1/2 at step 0
    cosine = LRSchedule(TrainConfig(lr=1.0, lr_schedule="cosine", warmup_steps=2, min_lr=0.1), total_steps=8)
    expected = {0: 0.5, 1: 0.965746, 2: 0.868198, 4: 0.55, 6: 0.231802, 8: 0.1, 9: 0.1}
    assert {step: cosine.lr_at(step) for step in expected} == pytest.approx(expected, abs=1e-6)


def test_plateau_halves_the_rate_after_patience_validations_without_a_gain() -> None:
    plateau = LRSchedule(TrainConfig(lr=1.0, lr_schedule="plateau", plateau_patience=2, plateau_factor=0.5), 10)
    rates = []
    for loss in (5.0, 4.0, 4.0, 3.999, 3.0, 3.0, 3.0):  # 3.999 is under 0.1 % better: no gain
        plateau.on_validation(loss)
        rates.append(plateau.lr_at(5))
    assert rates == pytest.approx([1.0, 1.0, 1.0, 0.5, 0.5, 0.5, 0.25])
    restored = LRSchedule(TrainConfig(lr=1.0, lr_schedule="plateau"), 10)
    restored.load_state_dict(plateau.state_dict())
    assert restored.lr_at(5) == pytest.approx(0.25)


def test_each_optimiser_step_runs_at_the_scheduled_rate(tiny_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The rates the optimiser actually used, against the warm-up and cosine formulas written out."""
    config = tiny_config(epochs=2, lr=0.01, lr_schedule="cosine", min_lr=0.001, warmup_steps=3)
    trainer = Trainer(config, ImageCache.open(tiny_cache), None, device=CPU, progress=False)
    used: list[float] = []
    step = trainer.optimizer.step
    monkeypatch.setattr(trainer.optimizer, "step", lambda: (used.append(trainer.optimizer.param_groups[0]["lr"]),
                                                            step()))
    trainer.fit()
    total = 10  # 5 steps per epoch, 2 epochs
    cosine = [0.001 + 0.009 * 0.5 * (1 + math.cos(math.pi * k / total)) for k in range(total)]
    expected = [rate * min(1.0, (k + 1) / 3) for k, rate in enumerate(cosine)]
    assert used == pytest.approx(expected)


def test_early_stopping_stops_and_keeps_best(tiny_cache: Path, tmp_path: Path) -> None:
    # lr ~0 and frozen batch-norm statistics: the validation loss never improves on the first one
    config = tiny_config(epochs=10, lr=1e-12, early_stopping_patience=2, batch_size=40)  # 1 step per epoch
    config = dataclasses.replace(config, model=dataclasses.replace(config.model, bn_momentum=0.0))
    trainer = Trainer(config, ImageCache.open(tiny_cache), tmp_path, device=CPU, progress=False)
    result = trainer.fit()
    assert result.status == "early_stopped"
    assert result.progress.epoch == 3 and result.progress.bad_validations == 2
    assert load_checkpoint(tmp_path / "checkpoints" / "best.pt")["progress"]["epoch"] == 1


def test_out_of_memory_names_the_batch_size_and_the_fix(tiny_cache: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    trainer = Trainer(tiny_config(), ImageCache.open(tiny_cache), None, device=CPU, progress=False)

    def out_of_memory(*args: object, **kwargs: object) -> None:
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(trainer, "_losses", out_of_memory)
    with pytest.raises(TrainingOutOfMemoryError, match=r"batch of 8 images.*train\.batch_size=4.*train\.grad_accum=2"):
        trainer.train_epoch(max_steps=1)
