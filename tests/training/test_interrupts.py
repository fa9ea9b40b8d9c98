"""Real processes: Ctrl-C (SIGINT) and SIGKILL in the middle of `facevae train`."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import facevae
from facevae.training.checkpoint import CheckpointError, load_checkpoint
from facevae.training.run import train
from support.training import tiny_config, write_config

pytestmark = pytest.mark.slow


def _start(cache: Path, run: Path, config: Path) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "facevae", "train", "--data", str(cache), "--out", str(run),
                             "--config", str(config), "--quiet"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _wait_for_step(process: subprocess.Popen, last: Path, step: int, timeout: float = 90) -> int:
    """Wait until last.pt holds at least `step` steps; returns the step it holds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"training ended early: {process.communicate()[1]}")
        try:
            if last.is_file() and (held := load_checkpoint(last)["progress"]["step"]) >= step:
                return held
        except CheckpointError:  # only possible for a non-atomic write: a real failure
            raise
        time.sleep(0.1)
    process.kill()
    pytest.fail("no checkpoint appeared in time")


def test_ctrl_c_saves_a_checkpoint_and_exits_cleanly(tiny_cache: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    process = _start(tiny_cache, run, write_config(tmp_path / "c.json", epochs=1000, checkpoint_every_steps=1))
    _wait_for_step(process, run / "checkpoints" / "last.pt", 1)
    process.send_signal(signal.SIGINT)
    _, err = process.communicate(timeout=60)
    assert process.returncode == 130, err
    assert "Traceback" not in err
    assert "Training stopped at step" in err and "--resume" in err
    state = load_checkpoint(run / "checkpoints" / "last.pt")
    stopped_at = state["progress"]["step"]
    assert stopped_at >= 1
    # and it resumes from exactly there (two more epochs: a stop after an epoch's last batch
    # but before its bookkeeping resumes into that epoch's end without another step)
    train(tiny_config(epochs=state["progress"]["epoch"] + 2), tiny_cache, run, resume=True, progress=False)
    assert load_checkpoint(run / "checkpoints" / "last.pt")["progress"]["step"] > stopped_at


def test_sigkill_loses_at_most_the_steps_since_the_last_checkpoint(tiny_cache: Path, tmp_path: Path) -> None:
    run = tmp_path / "run"
    process = _start(tiny_cache, run, write_config(tmp_path / "c.json", epochs=1000, checkpoint_every_steps=2))
    _wait_for_step(process, run / "checkpoints" / "last.pt", 4)
    os.kill(process.pid, signal.SIGKILL)
    process.communicate(timeout=30)
    state = load_checkpoint(run / "checkpoints" / "last.pt")  # complete, whatever the moment of the kill
    killed_at, epoch = state["progress"]["step"], state["progress"]["epoch"]
    assert killed_at >= 4 and killed_at % 2 == 0 or state["progress"]["batch_in_epoch"] == 0
    train(tiny_config(epochs=epoch + 1, checkpoint_every_steps=2), tiny_cache, run, resume=True, progress=False)
    final = load_checkpoint(run / "checkpoints" / "last.pt")["progress"]
    assert final["epoch"] == epoch + 1 and final["step"] == (epoch + 1) * 5
    assert not list((run / "checkpoints").glob(".*.partial"))
    assert facevae.load(run).config.latent_dim == 16
