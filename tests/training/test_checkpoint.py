from __future__ import annotations

import dataclasses
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from facevae.training.checkpoint import (
    CheckpointError,
    CheckpointWriteError,
    check_same_model,
    load_checkpoint,
    rng_state,
    save_checkpoint,
    set_rng_state,
)
from facevae.training.run import train
from support.training import tiny_config


def test_checkpoints_load_with_weights_only_and_hold_everything_to_resume(finished_run: Path) -> None:
    path = finished_run / "checkpoints" / "last.pt"
    state = torch.load(path, weights_only=True)
    assert state["format"] == "facevae-checkpoint" and state["facevae_version"]
    assert {"config", "model", "optimizer", "schedule", "progress", "rng", "data"} <= set(state)
    assert state["progress"]["epoch"] == 2 and state["progress"]["step"] == 10
    assert {"python", "numpy", "torch"} <= set(state["rng"][0])
    assert state["optimizer"]["state"]  # Adam moments
    assert state["config"]["model"]["latent_dim"] == 16
    assert state["data"]["preprocessing"]["image_size"] == 32


def test_a_checkpoint_from_another_model_config_is_refused(finished_run: Path, tiny_cache: Path) -> None:
    config = tiny_config(epochs=3)
    other = dataclasses.replace(config, model=dataclasses.replace(config.model, latent_dim=8))
    with pytest.raises(CheckpointError, match=r"model\.latent_dim is 16 in the checkpoint, 8 here"):
        train(other, tiny_cache, finished_run, resume=True, progress=False)
    state = load_checkpoint(finished_run / "checkpoints" / "last.pt")
    check_same_model(state, config.model, "last.pt")  # the right config passes


def test_atomic_save_keeps_the_old_checkpoint_when_writing_fails(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    path = save_checkpoint({"model": {"w": torch.ones(3)}}, tmp_path / "last.pt")

    def broken_save(obj: object, file: object) -> None:
        file.write(b"half a checkpoint")  # type: ignore[attr-defined]
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(CheckpointWriteError, match="disk full.*previous last.pt is unchanged"):
        save_checkpoint({"model": {"w": torch.zeros(3)}}, path)
    assert torch.equal(load_checkpoint(path)["model"]["w"], torch.ones(3))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]  # no temporary file left


def test_unreadable_and_foreign_files_get_clear_errors(tmp_path: Path) -> None:
    (tmp_path / "junk.pt").write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="not a readable facevae checkpoint"):
        load_checkpoint(tmp_path / "junk.pt")
    torch.save({"weights": torch.ones(1)}, tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="not a facevae training checkpoint"):
        load_checkpoint(tmp_path / "other.pt")
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.pt")


def test_rng_states_round_trip_through_a_checkpoint(tmp_path: Path) -> None:
    random.seed(1), np.random.seed(2), torch.manual_seed(3)
    save_checkpoint({"rng": [rng_state()]}, tmp_path / "c.pt")
    expected = (random.random(), np.random.rand(), torch.rand(1))
    random.seed(9), np.random.seed(9), torch.manual_seed(9)
    set_rng_state(load_checkpoint(tmp_path / "c.pt")["rng"][0])
    assert (random.random(), np.random.rand()) == expected[:2] and torch.equal(torch.rand(1), expected[2])
