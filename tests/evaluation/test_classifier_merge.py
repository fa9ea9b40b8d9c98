"""`facevae classifier merge`: classifiers trained with different recipes become one ensemble."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest
import torch

from facevae.cli.main import main
from facevae.data.cache import ImageCache
from facevae.errors import UserError
from facevae.evaluation.classifier_merge import merge_classifiers
from facevae.evaluation.classifier_training import train_classifier
from facevae.model import classifier as clf
from facevae.testing.planted import PLANTED, make_planted_cache
from support.evaluation import TINY_CHANNELS, TINY_TRAINING


@pytest.fixture(scope="module")
def other_recipe(planted_cache: ImageCache, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A second classifier of the same architecture, trained another way (seed, no noise, two members)."""
    out = tmp_path_factory.mktemp("other") / "clf"
    return train_classifier(planted_cache, out, replace(TINY_TRAINING, seed=1, noise=0.0), TINY_CHANNELS,
                            progress=False, members=2)


@pytest.mark.slow
def test_every_member_of_every_folder_joins_the_ensemble(planted_cache: ImageCache, planted_classifier: Path,
                                                         other_recipe: Path, tmp_path: Path) -> None:
    out = merge_classifiers([planted_classifier, other_recipe], tmp_path / "both", planted_cache)
    merged, first, second = clf.load(out), clf.load(planted_classifier), clf.load(other_recipe)
    assert merged.config.members == 3
    images = torch.rand(5, 3, 32, 32)
    with torch.no_grad():
        expected = torch.cat([first.member_logits(images), second.member_logits(images)])  # 3 x 5 x A
        torch.testing.assert_close(merged.member_logits(images), expected)  # in the order given
        torch.testing.assert_close(merged(images), expected.mean(0))
    config = json.loads((out / "config.json").read_text())
    sources = config["train"]["merged_from"]
    assert [source["members"] for source in sources] == [1, 2] and sources[1]["train"]["noise"] == 0.0
    assert config["data"]["cache"] == str(planted_cache.path)
    valid = json.loads((out / "metrics.json").read_text())  # validated as a whole, like a trained folder
    assert valid["images"] == len(planted_cache.split_indices("valid"))
    assert min(valid["val_auc"][name] for name in PLANTED) >= 0.9, valid


def test_only_one_architecture_merges(planted_cache: ImageCache, planted_classifier: Path, tmp_path: Path) -> None:
    deeper = tmp_path / "deeper"
    shutil.copytree(planted_classifier, deeper)
    config = json.loads((deeper / "config.json").read_text())
    config["model"]["convs_per_stage"] = 2
    (deeper / "config.json").write_text(json.dumps(config))
    with pytest.raises(UserError, match="differ in convs_per_stage .*same architecture"):
        merge_classifiers([planted_classifier, deeper], tmp_path / "out", planted_cache)
    with pytest.raises(UserError, match="at least two"):
        merge_classifiers([planted_classifier], tmp_path / "out", planted_cache)
    with pytest.raises(UserError, match="at most 8"):
        merge_classifiers([planted_classifier] * 9, tmp_path / "out", planted_cache)
    with pytest.raises(UserError, match="one of the folders being merged"):
        merge_classifiers([planted_classifier, deeper], deeper, planted_cache)
    unvalidated = ImageCache.open(make_planted_cache(tmp_path / "no-valid", count=40, val_fraction=0.0).path)
    with pytest.raises(UserError, match="valid split .* is empty"):
        merge_classifiers([planted_classifier, planted_classifier], tmp_path / "out", unvalidated)
    assert not (tmp_path / "out").exists()  # nothing written by a refused merge


@pytest.mark.slow
def test_merge_from_the_command_line(planted_cache: ImageCache, planted_classifier: Path, other_recipe: Path,
                                     tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "both"
    code = main(["classifier", "merge", str(planted_classifier), str(other_recipe), "--data", str(planted_cache.path),
                 "--out", str(out), "--quiet"])
    assert code == 0 and f"wrote classifier {out} (3 members)" in capsys.readouterr().out
    code = main(["classifier", "merge", str(planted_classifier), str(tmp_path / "missing"), "--data",
                 str(planted_cache.path), "--out", str(tmp_path / "o")])
    assert code == 2 and "not a classifier folder" in capsys.readouterr().err
