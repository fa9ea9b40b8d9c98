"""DDP on the CPU: two gloo processes, as torchrun would start them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

import facevae
from support.network import free_port
from support.training import ddp_one_step, write_config


@pytest.mark.slow
def test_two_gloo_ranks_train_on_disjoint_data_and_keep_identical_weights(tiny_cache: Path, tmp_path: Path) -> None:
    mp.spawn(ddp_one_step, args=(2, free_port(), str(tiny_cache), str(tmp_path)), nprocs=2, join=True)
    ranks = [torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in range(2)]
    shards = [set(r["positions"].tolist()) for r in ranks]
    assert shards[0].isdisjoint(shards[1]) and shards[0] | shards[1] == set(range(40))
    for name, weight in ranks[0]["after"].items():
        assert torch.equal(weight, ranks[1]["after"][name]), name  # gradients were averaged
        assert torch.equal(ranks[0]["before"][name], ranks[1]["before"][name])
    assert not torch.equal(ranks[0]["after"]["decoder.to_rgb.weight"], ranks[0]["before"]["decoder.to_rgb.weight"])


@pytest.mark.slow
def test_torchrun_two_processes_rank_zero_alone_writes_the_run(tiny_cache: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    config = write_config(tmp_path / "c.json", epochs=1, batch_size=4)
    result = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2",
                             f"--master_port={free_port()}", "-m", "facevae", "train", "--data", str(tiny_cache),
                             "--out", str(run), "--config", str(config), "--quiet"],
                            capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr
    assert result.stderr.count("Training finished") == 1  # one rank reports
    assert len(list((run / "tensorboard").glob("events.out.tfevents.*"))) == 1
    state = torch.load(run / "checkpoints" / "last.pt", weights_only=True)
    assert len(state["rng"]) == 2  # each rank's generator states, for an exact resume
    assert state["progress"]["step"] == 5  # 40 images / 2 ranks / batch 4
    assert json.loads((run / "config.json").read_text())["train"]["batch_size"] == 4
    assert facevae.load(run).config.latent_dim == 16
