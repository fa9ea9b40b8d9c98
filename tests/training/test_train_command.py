"""`facevae train` and `facevae prepare` as a new user meets them: the original project's
config.json (typos included), --resume into the folder that config names, --quiet, a reused cache."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from facevae.cli.main import main
from facevae.config import ConfigError, load_run_config
from facevae.testing.celeba import make_celeba

ORIGINAL = {"embedding_size": 16, "num_channels": 8, "input_img_size": 32, "beta": 100.0, "batch_size": 20,
            "lr": 0.002, "max_epoch": 1}
TINY = ["--set", "train.precision=fp32", "--set", "train.sample_count=4", "--set", "model.channels=[8,16,16]",
        "--device", "cpu", "--quiet"]


def test_a_misspelt_key_in_the_original_format_is_named_with_a_suggestion(tmp_path: Path) -> None:
    config = tmp_path / "original.json"
    config.write_text(json.dumps({**{k: v for k, v in ORIGINAL.items() if k != "embedding_size"},
                                  "embeding_sise": 16}))
    with pytest.raises(ConfigError) as error:
        load_run_config(config)
    message = str(error.value)
    assert message.startswith("Unknown key 'embeding_sise' in the original project's config.json. "
                              "Did you mean 'embedding_size'?")
    assert "model_save_path" in message  # the valid keys listed are the original's, not the sections


def test_resume_with_the_original_config_uses_its_model_save_path(tiny_cache: Path, tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    config = tmp_path / "original.json"
    config.write_text(json.dumps({**ORIGINAL, "dataset_dir": str(tiny_cache), "model_save_path": "saved"}))
    assert main(["train", "--config", str(config), *TINY]) == 0
    assert (tmp_path / "saved" / "checkpoints" / "last.pt").is_file()
    assert main(["train", "--config", str(config), "--resume", "--set", "train.epochs=2", *TINY]) == 0
    assert json.loads((tmp_path / "saved" / "config.json").read_text())["train"]["epochs"] == 2


def test_resume_without_a_run_folder_says_both_ways_to_name_it(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["train", "--resume"]) == 2
    err = capsys.readouterr().err
    assert "--out RUN_DIR" in err and "--config" in err and "model_save_path" in err


def test_quiet_training_from_a_raw_folder_shows_no_progress_bar(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    make_celeba(tmp_path / "celeba", "kaggle", count=24)
    assert main(["train", "--data", str(tmp_path / "celeba"), "--out", str(tmp_path / "run"), *TINY,
                 "--set", "model.image_size=32", "--set", "model.latent_dim=16", "--set", "train.batch_size=16",
                 "--set", "train.epochs=1", "--set", "data.workers=1"]) == 0
    err = capsys.readouterr().err
    assert "%|" not in err and "img/s" not in err and "batch/s" not in err  # tqdm's bars and rates
    assert "Training finished" in err


def test_a_reused_cache_does_not_claim_it_was_just_decoded(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    make_celeba(tmp_path / "celeba", "kaggle", count=12)
    argv = ["prepare", str(tmp_path / "celeba"), "--size", "32", "--out", str(tmp_path / "cache"), "--workers", "1"]
    assert main(argv) == 0
    capsys.readouterr()
    assert main(argv) == 0
    captured = capsys.readouterr()
    assert "Reusing the prepared cache" in captured.err
    decoded = [line for line in captured.out.splitlines() if "decoded in" in line]
    assert decoded and all("when first prepared" in line for line in decoded)
