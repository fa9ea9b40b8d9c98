"""A collapsed VAE (KL 0, or one face for every code) is reported once, with its cause and fix."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import pytest
import torch

from facevae.data.cache import ImageCache
from facevae.model.vae import FaceVAE, init_like_keras
from facevae.training.collapse import SAMPLES_NEAR_IDENTICAL, CollapseWatch, sample_spread
from facevae.training.trainer import Trainer
from support.training import tiny_config

CPU = torch.device("cpu")


def _relu_heads(**train: object):
    config = tiny_config(**train)
    return dataclasses.replace(config, model=dataclasses.replace(config.model, head_activation="relu"))


def _kill_heads(model: FaceVAE) -> None:
    """The failure of issue 18: both heads' pre-activations below 0 for every image, so the
    ReLU gives mean = log_var = 0 exactly and passes no gradient."""
    with torch.no_grad():
        for head in (model.encoder.mean, model.encoder.log_var):
            head.weight.zero_()
            head.bias.fill_(-10.0)


def _warnings(run: Path) -> list[dict]:
    lines = (run / "metrics.jsonl").read_text().splitlines()
    return [record for record in map(json.loads, lines) if "warnings/collapse" in record]


def test_dead_relu_heads_are_reported_once_with_the_cause_and_the_fix(tiny_cache: Path, tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture) -> None:
    config = _relu_heads(epochs=3, collapse_patience_steps=4)
    trainer = Trainer(config, ImageCache.open(tiny_cache), tmp_path, device=CPU, progress=False)  # as --quiet
    _kill_heads(trainer.model)
    trainer.fit()
    err = capsys.readouterr().err
    assert err.count("WARNING: the VAE has collapsed") == 1
    assert "KL stayed below" in err and "head_activation" in err and "start a new run" in err
    assert trainer.history[-1]["train"]["kl"] == 0.0  # really dead: no gradient revived them
    (logged,) = _warnings(tmp_path)  # TensorBoard's Text tab gets it too (and metrics.jsonl)
    assert logged["step"] >= 4 and "head_activation" in logged["warnings/collapse"]
    events = list((tmp_path / "tensorboard").glob("events.*"))
    assert events and any(b"warnings/collapse" in path.read_bytes() for path in events)


def test_a_healthy_model_is_not_reported(tiny_cache: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    trainer = Trainer(tiny_config(epochs=3, collapse_patience_steps=4), ImageCache.open(tiny_cache), tmp_path,
                      device=CPU, progress=False)
    trainer.fit()
    assert "collapsed" not in capsys.readouterr().err
    assert not _warnings(tmp_path)
    assert min(entry["train"]["kl"] for entry in trainer.history) > 1.0


def test_a_decoder_that_ignores_its_code_is_reported(tiny_cache: Path) -> None:
    """KL can stay high while the decoder draws the same face for every code: a dense layer of
    zeros feeds the decoder a constant, whatever the code."""
    config = tiny_config(collapse_patience_steps=2)
    torch.manual_seed(0)
    model = init_like_keras(FaceVAE(config.model))
    with torch.no_grad():  # a decoder that has learnt to draw: faces well away from the initial grey
        model.decoder.to_rgb.weight.mul_(30)
    latents = torch.randn(8, config.model.latent_dim)
    assert sample_spread(model, latents) > 3 * SAMPLES_NEAR_IDENTICAL
    with torch.no_grad():
        model.decoder.dense.weight.zero_()
    assert sample_spread(model, latents) == pytest.approx(0.0, abs=1e-7)
    watch = CollapseWatch(config, latents)
    settled = watch.spread_from_step  # 300 with batch norm momentum 0.01: eval-mode faces mean little before
    assert settled == 300
    assert watch.check(settled - 4, kl=30.0, model=model) is None and watch.check(settled - 2, 30.0, model) is None
    assert watch.check(settled, kl=30.0, model=model) is None  # the sign starts: not yet long enough
    warning = watch.check(settled + 2, kl=30.0, model=model)
    assert warning is not None and "nearly identical" in warning and "kl_warmup_steps" in warning
    assert watch.check(settled + 4, kl=30.0, model=model) is None  # once
    assert model.training  # the check leaves the model in train mode


def test_a_short_dip_is_not_a_collapse_and_other_ranks_stay_silent() -> None:
    config = tiny_config(collapse_patience_steps=4)
    model, latents = FaceVAE(config.model), torch.randn(4, config.model.latent_dim)
    watch = CollapseWatch(config, latents)
    dips = [(2, 0.1), (4, 0.2), (6, 3.0), (8, 0.1), (10, 0.1)]  # never 4 steps in a row
    assert [watch.check(step, kl, model) for step, kl in dips] == [None] * 5
    silent = CollapseWatch(config, latents, enabled=False)
    assert all(silent.check(step, 0.0, model) is None for step in range(0, 40, 2))
