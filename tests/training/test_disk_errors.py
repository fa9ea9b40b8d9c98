"""Training on a full or read-only disk, and resuming from a damaged checkpoint: a message that
says what happened, what is safe and what to do; never a traceback, never a lost checkpoint."""

from __future__ import annotations

import errno
import pickle
import shutil
import tempfile
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from facevae.cli.main import main
from facevae.training import checkpoint
from facevae.training.checkpoint import CheckpointError, CheckpointWriteError, load_checkpoint
from facevae.training.run import RunWriteError, train
from support.training import tiny_config, write_config


def run_copy(finished_run: Path, tmp_path: Path) -> Path:
    return Path(shutil.copytree(finished_run, tmp_path / "run"))


def test_a_full_disk_stops_with_a_message_and_keeps_last_pt(finished_run: Path, tiny_cache: Path, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch,
                                                            capsys: pytest.CaptureFixture[str]) -> None:
    run = run_copy(finished_run, tmp_path)
    last = run / "checkpoints" / "last.pt"
    before = last.read_bytes()

    def disk_full(obj: object, file: object) -> None:
        file.write(b"the first part of a checkpoint")  # type: ignore[attr-defined]
        # what torch's zip writer raises when the file system refuses the rest
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 191424 vs 191316")

    monkeypatch.setattr(checkpoint.torch, "save", disk_full)
    monkeypatch.setattr(checkpoint.shutil, "disk_usage",
                        lambda path: SimpleNamespace(total=10**9, used=10**9, free=4096))
    config = write_config(tmp_path / "config.json", epochs=3)
    code = main(["train", "--data", str(tiny_cache), "--config", str(config), "--out", str(run), "--resume",
                 "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert f"error: Could not write {last}: the disk is full" in err
    assert "nothing saved before was lost" in err and "--resume" in err
    assert last.read_bytes() == before  # the old checkpoint, whole
    assert not list((run / "checkpoints").glob(".*.partial"))  # the half-written file is gone


def test_a_read_only_disk_is_named_before_any_training(tiny_cache: Path, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    read_only = tmp_path / "mounted-read-only"

    def refuse(self: Path, *args: object, **kwargs: object) -> None:
        if read_only in (self, *self.parents):
            raise OSError(errno.EROFS, "Read-only file system", str(self))
        return original_mkdir(self, *args, **kwargs)

    original_mkdir = Path.mkdir
    monkeypatch.setattr(Path, "mkdir", refuse)
    with pytest.raises(RunWriteError, match="the file system is read-only.*start the run again") as error:
        train(tiny_config(), tiny_cache, read_only / "run", progress=False)
    assert str(read_only / "run") in str(error.value)


def test_a_failed_checkpoint_write_is_a_user_error_naming_the_cause(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tempfile, "mkstemp", lambda **kwargs: (_ for _ in ()).throw(
        OSError(errno.EROFS, "Read-only file system")))
    with pytest.raises(CheckpointWriteError, match="the file system is read-only"):
        checkpoint.save_checkpoint({"model": {}}, tmp_path / "last.pt")


def test_a_truncated_last_pt_points_at_the_intact_best_pt(finished_run: Path, tiny_cache: Path,
                                                          tmp_path: Path) -> None:
    run = run_copy(finished_run, tmp_path)
    last, best = run / "checkpoints" / "last.pt", run / "checkpoints" / "best.pt"
    data = last.read_bytes()
    last.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError) as error:
        train(tiny_config(epochs=3), tiny_cache, run, resume=True, progress=False)
    message = str(error.value)
    assert "is damaged: it ends early" in message
    assert f"{best} is intact" in message and f"cp {best} {last}" in message and "--resume" in message
    shutil.copyfile(best, last)  # doing what it says works
    assert load_checkpoint(last)["format"] == "facevae-checkpoint"


class NotWeights:
    """Any Python object: torch's weights-only loader refuses to unpickle it."""


def test_a_foreign_pickle_is_refused_without_torchs_weights_only_advice(tmp_path: Path) -> None:
    path = tmp_path / "last.pt"
    torch.save({"model": NotWeights()}, path)
    with pytest.raises(CheckpointError) as error:
        load_checkpoint(path)
    assert "holds Python objects other than tensors" in str(error.value)
    assert "weights_only" not in str(error.value)
    (tmp_path / "plain.pkl").write_bytes(pickle.dumps([1, 2, 3]))
    with pytest.raises(CheckpointError, match="not a PyTorch checkpoint file") as error:
        load_checkpoint(tmp_path / "plain.pkl")
    assert "weights_only" not in str(error.value)
