"""The folders `classifier train`, `classifier evaluate` and `evaluate` write: refused before the
work when foreign, read-only or full; published whole or not at all (issue 19, items 7 and 8)."""

from __future__ import annotations

import dataclasses
import errno
import signal
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

import facevae.evaluation.classifier_training as training
from facevae.cli.main import build_parser, main
from facevae.data.cache import ImageCache
from facevae.evaluation import output
from support.evaluation import TINY_CHANNELS, TINY_TRAINING

QUICK = dataclasses.replace(TINY_TRAINING, epochs=1)


def _no_work(*args, **kwargs):
    raise AssertionError("the work started before the output folder was checked")


def _read_only_mkdtemp(*args, **kwargs):
    raise OSError(errno.EROFS, "Read-only file system")


@pytest.fixture
def read_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(output.tempfile, "mkdtemp", _read_only_mkdtemp)


def test_train_refuses_a_folder_that_is_not_a_classifier(planted_cache: ImageCache, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "photos"
    out.mkdir()
    (out / "holiday.jpg").write_bytes(b"not ours")
    code = main(["classifier", "train", "--data", str(planted_cache.path), "--out", str(out), "--quiet"])
    assert code == 2 and "holds other files and would be replaced" in capsys.readouterr().err
    assert [p.name for p in out.iterdir()] == ["holiday.jpg"]


@pytest.mark.parametrize("problem", ["read-only", "full"])
def test_train_checks_that_out_is_writable_before_training(planted_cache: ImageCache, tmp_path: Path,
                                                           monkeypatch: pytest.MonkeyPatch, problem: str,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    if problem == "read-only":
        monkeypatch.setattr(output.tempfile, "mkdtemp", _read_only_mkdtemp)
        expected = "Read-only file system"
    else:
        monkeypatch.setattr(output.shutil, "disk_usage", lambda path: SimpleNamespace(free=4096))
        expected = "has 4.1 KB free but the output needs about"
    monkeypatch.setattr(training, "_train_into", _no_work)
    code = main(["classifier", "train", "--data", str(planted_cache.path), "--out", str(tmp_path / "clf"), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and expected in err and "Traceback" not in err


def test_a_failed_training_leaves_the_earlier_classifier_whole(planted_cache: ImageCache, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    out = training.train_classifier(planted_cache, tmp_path / "clf", QUICK, TINY_CHANNELS, progress=False)
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}

    def killed(*args, **kwargs):  # stands in for a kill between the weights and the config
        raise KeyboardInterrupt

    monkeypatch.setattr(training, "folder_config", killed)
    with pytest.raises(KeyboardInterrupt):
        training.train_classifier(planted_cache, out, dataclasses.replace(QUICK, seed=5), TINY_CHANNELS,
                                  progress=False)
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clf"]  # no .partial file or folder left


def test_classifier_evaluate_checks_writability_before_scoring(planted_classifier: Path, planted_cache: ImageCache,
                                                               read_only: None, monkeypatch: pytest.MonkeyPatch,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setattr(training, "score_split", _no_work)
    code = main(["classifier", "evaluate", str(planted_classifier), "--data", str(planted_cache.path), "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "Read-only file system" in err and "Traceback" not in err


def test_evaluate_checks_writability_before_loading_models(tiny_bundle: Path, planted_cache: ImageCache,
                                                           tmp_path: Path, read_only: None,
                                                           monkeypatch: pytest.MonkeyPatch,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    import facevae.evaluation.evaluate as evaluate_module

    monkeypatch.setattr(evaluate_module.FacePipeline, "load", _no_work)
    code = main(["evaluate", str(tiny_bundle), "--data", str(planted_cache.path), "--out", str(tmp_path / "e"),
                 "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "Read-only file system" in err and "Traceback" not in err


def test_classifier_training_uses_the_gpu_when_there_is_one_like_every_command() -> None:
    assert training.ClassifierTrainConfig().device == "auto"
    args = build_parser().parse_args(["classifier", "train", "--data", "d", "--out", "o"])
    assert args.device == "auto"


def test_huge_channels_are_refused_before_the_data_is_prepared(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    import facevae.evaluation.data as data_module

    monkeypatch.setattr(data_module, "ensure_cache", _no_work)
    code = main(["classifier", "train", "--data", str(tmp_path), "--out", str(tmp_path / "clf"),
                 "--channels", "6000,6000,6000,6000", "--quiet"])
    err = capsys.readouterr().err
    assert code == 2 and "--channels 6000,6000,6000,6000 describes a classifier of" in err and "Traceback" not in err


# Trains into OUT, stopping for a minute once the weights are written and before config.json is.
TRAIN_AND_STALL = """
import sys, time
from facevae.data.cache import ImageCache
import facevae.evaluation.classifier_training as training
from facevae.evaluation.classifier_training import ClassifierTrainConfig

real = training.folder_config
def stall(*args):
    print("weights written", flush=True)
    time.sleep(60)
    return real(*args)
training.folder_config = stall
training.train_classifier(ImageCache.open(sys.argv[1]), sys.argv[2],
                          ClassifierTrainConfig(epochs=1, batch_size=32, precision="fp32", seed=9), (8, 8), False)
"""


@pytest.mark.slow
@pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs kill -9")
def test_kill_9_between_weights_and_config_leaves_the_old_classifier(planted_cache: ImageCache, tmp_path: Path):
    out = training.train_classifier(planted_cache, tmp_path / "clf", QUICK, TINY_CHANNELS, progress=False)
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    child = subprocess.Popen([sys.executable, "-c", TRAIN_AND_STALL, str(planted_cache.path), str(out)],
                             stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "weights written"
    finally:
        child.kill()  # SIGKILL: no cleanup runs
        child.wait(10)
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before
    assert [p.name for p in tmp_path.iterdir() if ".partial" in p.name]  # the killed run's staging folder
    training.train_classifier(planted_cache, out, QUICK, TINY_CHANNELS, progress=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["clf"]  # swept by the next run
