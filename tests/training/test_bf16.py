"""The default training path where the hardware has bf16: autocast to bfloat16 (and torch.compile).

precision "auto" picks bf16 on GPUs and on CPUs with bf16 instructions; these tests force it,
so they run on any CPU where bf16 convolutions run at all (emulated ones included)."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch

from facevae.data.cache import ImageCache
from facevae.runtime import bf16_runs
from facevae.training.checkpoint import load_checkpoint
from facevae.training.failures import TrainingDivergedError
from facevae.training.run import train
from facevae.training.trainer import Trainer
from support.training import tiny_config

CPU = torch.device("cpu")
pytestmark = pytest.mark.skipif(not bf16_runs(CPU), reason="bfloat16 convolutions do not run on this CPU")


def bf16_config(**train: object):
    return tiny_config(precision="bf16", **train)


def test_the_forward_pass_really_runs_in_bf16(tiny_cache: Path) -> None:
    trainer = Trainer(bf16_config(), ImageCache.open(tiny_cache), None, device=CPU, progress=False)
    assert trainer.dtype == torch.bfloat16 and trainer.runtime.precision == "bf16"
    images = next(iter(trainer.train_batches.batches(0)))
    with torch.autocast("cpu", dtype=trainer.dtype):
        recon, mean, _ = trainer.model(images)
    assert recon.dtype == torch.bfloat16
    assert all(p.dtype == torch.float32 for p in trainer.model.parameters())  # weights stay fp32


def test_loss_falls_under_bf16_autocast(tiny_cache: Path) -> None:
    trainer = Trainer(bf16_config(epochs=3, lr=5e-3), ImageCache.open(tiny_cache), None, device=CPU, progress=False)
    assert trainer.fit().status == "finished"
    first, last = trainer.history[0]["train"], trainer.history[-1]["train"]
    assert last["total"] < 0.85 * first["total"] and last["weighted_recon"] < first["weighted_recon"]


def test_resume_under_bf16_matches_an_uninterrupted_run(tiny_cache: Path, tmp_path: Path) -> None:
    cache = ImageCache.open(tiny_cache)
    config = bf16_config(epochs=2, lr_schedule="cosine", warmup_steps=2, kl_warmup_steps=4, grad_clip=5.0)
    reference = Trainer(config, cache, None, device=CPU, progress=False)
    reference.fit()
    interrupted = Trainer(config, cache, tmp_path, device=CPU, progress=False)
    interrupted.train_epoch(max_steps=3)
    path = interrupted.save("last")
    continued = Trainer(config, cache, tmp_path, device=CPU, progress=False)
    continued.restore(load_checkpoint(path), path)
    continued.fit()
    a, b = reference.model.state_dict(), continued.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a), [k for k in a if not torch.equal(a[k], b[k])]


def test_nan_guard_fires_under_bf16_and_keeps_the_checkpoint(tiny_cache: Path, tmp_path: Path) -> None:
    run = train(bf16_config(epochs=1), tiny_cache, tmp_path / "run", progress=False)
    good = load_checkpoint(run / "checkpoints" / "last.pt")
    with pytest.raises(TrainingDivergedError, match="NaN or infinite at step"):
        train(bf16_config(epochs=2, lr=1e30), tiny_cache, run, resume=True, progress=False)
    kept = load_checkpoint(run / "checkpoints" / "last.pt")
    assert kept["progress"]["step"] == good["progress"]["step"]
    assert all(torch.equal(kept["model"][k], good["model"][k]) for k in good["model"])


@pytest.mark.slow
def test_compiled_bf16_training_learns_and_resumes_exactly(tiny_cache: Path, tmp_path: Path) -> None:
    """torch.compile (inductor needs a C++ compiler on the CPU) with bf16 autocast: one full
    batch per step, so one compiled graph; 'resume after epoch 1' equals '2 epochs straight'."""
    if not (shutil.which("c++") or shutil.which("g++") or shutil.which("clang++")):
        pytest.skip("torch.compile's CPU backend needs a C++ compiler, and this machine has none")
    cache = ImageCache.open(tiny_cache)
    config = bf16_config(epochs=3, lr=5e-3, batch_size=20, compile=True)
    straight = Trainer(config, cache, None, device=CPU, progress=False)
    straight.fit()
    first, last = straight.history[0]["train"], straight.history[-1]["train"]
    assert last["total"] < first["total"]
    stopped = Trainer(config, cache, tmp_path, device=CPU, progress=False)
    stopped.train_epoch()  # epoch 1 of 3, then a "crash"
    path = stopped.save("last")
    resumed = Trainer(config, cache, tmp_path, device=CPU, progress=False)
    resumed.restore(load_checkpoint(path), path)
    resumed.fit()
    a, b = straight.model.state_dict(), resumed.model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
