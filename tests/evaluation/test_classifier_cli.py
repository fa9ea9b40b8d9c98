"""`facevae classifier train/evaluate` from a raw CelebA-format folder with planted attributes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from facevae.cli.main import main
from facevae.model import classifier as clf
from facevae.testing.planted import PLANTED, make_planted_celeba


@pytest.mark.slow
def test_train_and_evaluate_from_a_celeba_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = make_planted_celeba(tmp_path / "celeba", count=240, seed=3)
    out = tmp_path / "clf"
    code = main(["classifier", "train", "--data", str(data.path), "--out", str(out), "--size", "32",
                 "--channels", "16,32,32", "--precision", "fp32",  # epochs and batches adapt to the 195 images
                 "--attributes", ",".join(PLANTED + ("Male",)), "--balance-pairs", "Smiling:Male", "--quiet"])
    assert code == 0
    printed = capsys.readouterr().out
    assert "Eyeglasses" in printed and f"wrote classifier {out}" in printed
    assert {"config.json", "classifier.safetensors", "metrics.json", "tensorboard"} <= {p.name for p in out.iterdir()}
    assert json.loads((out / "config.json").read_text())["train"]["balance_pairs"] == ["Smiling:Male"]
    model = clf.load(out)
    assert model.image_size == 32 and sorted(model.attribute_names) == sorted(PLANTED + ("Male",))
    # The raw folder was prepared once into its default cache, which evaluate reuses.
    code = main(["classifier", "evaluate", str(out), "--data", str(data.path), "--split", "test", "--quiet"])
    assert code == 0
    result = json.loads((out / "evaluation_test.json").read_text())
    assert result["split"] == "test" and result["images"] == int((data.split == 2).sum())
    assert min(result["auc"][name] for name in PLANTED) >= 0.9, result


def test_clear_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["classifier", "train", "--data", str(tmp_path / "missing"), "--out", str(tmp_path / "o")])
    assert code == 2 and "does not exist" in capsys.readouterr().err
    code = main(["classifier", "train", "--data", str(tmp_path), "--out", str(tmp_path / "o"), "--channels", "a,b"])
    assert code == 2 and "--channels" in capsys.readouterr().err
    code = main(["classifier", "evaluate", str(tmp_path / "nothing"), "--data", str(tmp_path)])
    assert code == 2 and "classifier train" in capsys.readouterr().err
    code = main(["classifier", "train", "--data", str(tmp_path), "--out", str(tmp_path / "o"),
                 "--balance-pairs", "Smiling"])
    assert code == 2 and "two different attribute names joined by ':'" in capsys.readouterr().err
