from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import facevae
from facevae.cli.main import main
from facevae.errors import UserError
from facevae.training.checkpoint import load_checkpoint
from facevae.training.run import make_bundle, train
from support.models import TINY_MODEL, plain_decode
from support.training import tiny_config


def test_a_finished_run_holds_config_checkpoints_logs_samples_and_a_loadable_bundle(finished_run: Path) -> None:
    config = json.loads((finished_run / "config.json").read_text())
    assert config["train"]["epochs"] == 2 and config["model"]["latent_dim"] == 16 and config["data"]["path"]
    assert (finished_run / "checkpoints" / "last.pt").is_file() and (finished_run / "checkpoints" / "best.pt").is_file()
    assert list((finished_run / "tensorboard").glob("events.out.tfevents.*"))
    samples = sorted(p.name for p in (finished_run / "samples").glob("*.png"))
    assert samples == ["epoch_001_generated.png", "epoch_001_reconstructions.png",
                       "epoch_002_generated.png", "epoch_002_reconstructions.png"]
    model = facevae.load(finished_run)
    assert model.config == TINY_MODEL and model.has_encoder
    assert model.preprocessing.image_size == 32 and model.provenance["checkpoint"] == "best.pt"
    images = plain_decode(model, torch.zeros(2, 16))
    assert images.shape == (2, 3, 32, 32) and 0 <= images.min() and images.max() <= 1
    # the cache's labels become attribute vectors, ready for `facevae generate --attr Smiling=1`
    assert set(model.attributes) == {"Smiling", "Eyeglasses"}
    assert model.attributes["Smiling"].shape == (16,) and sum(model.attribute_counts["Smiling"]) == 40


def test_tensorboard_has_losses_lr_throughput_and_grids(finished_run: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(finished_run / "tensorboard"), size_guidance={"images": 0}).Reload()
    scalars = set(events.Tags()["scalars"])
    assert {"train/total", "train/weighted_recon", "train/kl", "train/lr", "train/images_per_s",
            "epoch/train_total", "val/total", "val/kl"} <= scalars
    assert {"samples/generated", "samples/reconstructions"} <= set(events.Tags()["images"])
    assert [e.step for e in events.Scalars("epoch/train_total")] == [1, 2]


def test_an_existing_run_is_not_overwritten_without_resume(finished_run: Path, tiny_cache: Path) -> None:
    with pytest.raises(UserError, match="--resume"):
        train(tiny_config(), tiny_cache, finished_run, progress=False)
    with pytest.raises(UserError, match="Cannot resume"):
        train(tiny_config(), tiny_cache, finished_run.parent / "nothing-here", resume=True, progress=False)


def test_bundle_command_from_last_checkpoint(finished_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["bundle", str(finished_run), "--checkpoint", "last", "--out", str(tmp_path / "b"),
                 "--no-attributes", "--device", "cpu"]) == 0
    assert "Bundle written" in capsys.readouterr().out
    model = facevae.load(tmp_path / "b")
    assert model.provenance["checkpoint"] == "last.pt" and model.provenance["step"] == 10
    assert model.attributes == {}
    assert main(["bundle", str(tmp_path)]) == 2  # not a run: a clear error, no traceback
    assert "best.pt does not exist" in capsys.readouterr().err


def test_train_command_with_preset_overrides_and_resume(tiny_cache: Path, tmp_path: Path) -> None:
    run = tmp_path / "cli-run"
    model_sets = [f"model.{key}={value}" for key, value in
                  {"image_size": 32, "channels": "[8,16,16]", "latent_dim": 16}.items()]
    common = ["--quiet", "--device", "cpu", "--set", "train.batch_size=20", "--set", "train.precision=fp32",
              "--set", "train.sample_count=4"]
    assert main(["train", "--data", str(tiny_cache), "--preset", "compact", "--out", str(run), *common,
                 *[arg for s in model_sets for arg in ("--set", s)], "--set", "train.epochs=1"]) == 0
    assert facevae.load(run).config.channels == (8, 16, 16)
    # --resume reads the run's config.json and data; --set can extend the run
    assert main(["train", "--out", str(run), "--resume", "--quiet", "--set", "train.epochs=2"]) == 0
    assert json.loads((run / "config.json").read_text())["train"]["epochs"] == 2
    # (the bundle holds best.pt, which a 2-step second epoch need not improve on)
    assert load_checkpoint(run / "checkpoints" / "last.pt")["progress"]["epoch"] == 2
    assert facevae.load(run).provenance["epoch"] in (1, 2)
    assert main(["train", "--data", str(tiny_cache), "--out", str(tmp_path / "x"), "--set", "train.bogus=1"]) == 2


def test_make_bundle_falls_back_to_last_before_any_validation(tiny_cache: Path, tmp_path: Path) -> None:
    from facevae.data.cache import ImageCache
    from facevae.training.trainer import Trainer

    trainer = Trainer(tiny_config(), ImageCache.open(tiny_cache), tmp_path, device=torch.device("cpu"), progress=False)
    trainer.train_epoch(max_steps=1)
    trainer.save("last")
    assert facevae.load(make_bundle(tmp_path)).provenance["checkpoint"] == "last.pt"
