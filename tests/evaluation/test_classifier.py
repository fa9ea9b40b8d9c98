"""The attribute classifier: it learns planted attributes, cannot learn shuffled labels, and
its folder round-trips (safetensors weights, strict config, metrics)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from facevae.config import ConfigError
from facevae.data.cache import ImageCache
from facevae.evaluation.classifier_training import (
    AUTO_STEPS,
    ClassifierTrainConfig,
    SplitScores,
    plan_schedule,
    score_split,
    split_metrics,
    train_classifier,
)
from facevae.model import classifier as clf
from facevae.testing.planted import PLANTED, make_planted_cache
from support.evaluation import TINY_CHANNELS, TINY_TRAINING


@pytest.mark.slow
def test_learns_planted_attributes(planted_classifier: Path, planted_cache: ImageCache) -> None:
    metrics = json.loads((planted_classifier / "metrics.json").read_text())
    assert set(metrics) == {"val_auc", "val_accuracy", "images"}
    assert metrics["images"] == len(planted_cache.split_indices("valid"))
    for name in PLANTED:
        assert metrics["val_auc"][name] >= 0.9, metrics
        assert metrics["val_accuracy"][name] >= 0.8, metrics
    # "Random" is labelled but painted nowhere: nothing to learn.
    assert abs(metrics["val_auc"]["Random"] - 0.5) < 0.2, metrics
    # Held-out test images too, scored through the loaded folder.
    model = clf.load(planted_classifier)
    test = split_metrics(score_split(model, planted_cache, "test"), model.attribute_names)
    assert all(test["auc"][name] >= 0.9 for name in PLANTED), test


@pytest.mark.slow
def test_shuffled_labels_stay_near_chance(tmp_path: Path) -> None:
    data = make_planted_cache(tmp_path / "cache", count=600, size=32, seed=0, shuffle_labels=True)
    with pytest.warns(UserWarning, match="LEARNED ALMOST NOTHING"):
        out = train_classifier(ImageCache.open(data.path), tmp_path / "clf", TINY_TRAINING, TINY_CHANNELS,
                               progress=False)
    auc = json.loads((out / "metrics.json").read_text())["val_auc"]
    assert all(abs(value - 0.5) < 0.2 for value in auc.values()), auc
    assert abs(np.mean(list(auc.values())) - 0.5) < 0.1, auc


@pytest.mark.slow
def test_loaded_interface(planted_classifier: Path) -> None:
    model = clf.load(planted_classifier)
    assert isinstance(model, torch.nn.Module) and not model.training
    assert model.attribute_names == ["Eyeglasses", "Smiling", "Blond_Hair", "Random"]
    assert model.image_size == 32
    images = torch.rand(5, 3, 32, 32)
    logits = model(images)
    assert logits.shape == (5, 4)
    mirrored = model(images.flip(-1))  # probabilities average the face and its mirror image
    torch.testing.assert_close(model.probabilities(images), torch.sigmoid((logits + mirrored) / 2))
    with pytest.raises(clf.ClassifierError, match="32"):
        model(torch.rand(2, 3, 64, 64))
    config = json.loads((planted_classifier / "config.json").read_text())
    assert config["format"] == clf.CLASSIFIER_FORMAT and config["model"]["channels"] == list(TINY_CHANNELS)
    assert config["train"]["epochs"] == TINY_TRAINING.epochs
    assert 1 <= config["train"]["best_epoch"] <= config["train"]["epochs_run"] <= TINY_TRAINING.epochs
    assert not list(planted_classifier.glob(".*partial*")), "no temporary files left"


def _write_folder(folder: Path, model_section: dict, extra: dict | None = None) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    config = {"format": clf.CLASSIFIER_FORMAT, "version": 1, "model": model_section, "train": {}, "data": {},
              **(extra or {})}
    (folder / "config.json").write_text(json.dumps(config))


def test_config_rejects_unknown_keys_and_bad_folders(tmp_path: Path) -> None:
    with pytest.raises(clf.ClassifierError, match="no config.json"):
        clf.load(tmp_path / "nothing")
    _write_folder(tmp_path / "a", {"image_size": 32, "attribute_names": ["Smiling"], "depth": 3})
    with pytest.raises(ConfigError, match="Unknown key 'depth'"):
        clf.load(tmp_path / "a")
    _write_folder(tmp_path / "b", {"image_size": 32, "attribute_names": ["Smiling"]}, {"colour": 1})
    with pytest.raises(clf.ClassifierError, match="unknown keys"):
        clf.load(tmp_path / "b")
    _write_folder(tmp_path / "c", {"image_size": 32, "attribute_names": ["Smiling"]})
    with pytest.raises(clf.ClassifierError, match="classifier.safetensors is missing"):
        clf.load(tmp_path / "c")
    with pytest.raises(ConfigError, match="power of two"):
        clf.ClassifierConfig(image_size=48, attribute_names=("Smiling",))


def test_weights_round_trip_without_pickle(tmp_path: Path) -> None:
    from safetensors.torch import save_file

    config = clf.ClassifierConfig(image_size=16, attribute_names=("Smiling", "Male"), channels=(4, 8, 8))
    model = clf.AttributeClassifier(config).eval()
    assert len(config.stage_channels) == 2  # 16 -> 8 -> 4: the third channel count is unused
    _write_folder(tmp_path / "m", {"image_size": 16, "attribute_names": ["Smiling", "Male"], "channels": [4, 8, 8]})
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, tmp_path / "m" / "classifier.safetensors")
    loaded = clf.load(tmp_path / "m")
    images = torch.rand(3, 3, 16, 16)
    torch.testing.assert_close(loaded(images), model(images))


def test_split_metrics_match_hand_counts() -> None:
    probabilities = np.array([[0.9, 0.2], [0.8, 0.6], [0.3, 0.4], [0.1, 0.7]])
    labels = np.array([[1, 1], [1, 1], [0, 1], [0, 1]], np.int8)
    metrics = split_metrics(SplitScores(probabilities, labels), ["A", "B"])
    assert metrics["auc"] == {"A": 1.0, "B": None}  # B has one class only: AUC undefined
    assert metrics["accuracy"] == {"A": 1.0, "B": 0.5}
    assert metrics["images"] == 4


def test_training_needs_both_classes(tmp_path: Path) -> None:
    from facevae.errors import UserError

    data = make_planted_cache(tmp_path / "cache", count=40, size=16)
    cache = ImageCache.open(data.path)
    with pytest.raises(UserError, match="no labels for Bald"):
        train_classifier(cache, tmp_path / "clf", ClassifierTrainConfig(attributes=("Bald",)), progress=False)
    with pytest.raises(ConfigError):
        ClassifierTrainConfig(epochs=0)


@pytest.mark.filterwarnings("ignore:THE CLASSIFIER LEARNED ALMOST NOTHING")  # 40 faces: not the point here
def test_warns_about_channels_that_the_image_size_leaves_unused(tmp_path: Path) -> None:
    data = make_planted_cache(tmp_path / "cache", count=40, size=16)
    # 16px faces reach 4 x 4 after two stride-2 stages: a third listed stage cannot be built
    with pytest.warns(UserWarning, match=r"lists 3 stages, but 16px images reach 4 x 4 after 2, so the last 1 \(32\)"):
        out = train_classifier(ImageCache.open(data.path), tmp_path / "clf", TINY_TRAINING, (8, 16, 32),
                               progress=False)
    assert clf.load(out).config.stage_channels == (8, 16)


def test_schedule_adapts_to_the_data_size() -> None:
    auto = ClassifierTrainConfig()
    assert plan_schedule(162_770, auto) == (3, 128)  # full CelebA: 3 epochs are thousands of steps
    epochs, batch = plan_schedule(5_600, auto)  # the 8,000-face sample's train split
    assert batch == 128 and epochs * (5_600 // batch) >= AUTO_STEPS
    epochs, batch = plan_schedule(360, auto)  # a small planted set: smaller batches, many more epochs
    assert batch == 16 and epochs == 60 and epochs * (360 // batch) >= 1000
    assert plan_schedule(600, ClassifierTrainConfig(epochs=4, batch_size=32)) == (4, 32)
    with pytest.raises(ConfigError):
        ClassifierTrainConfig(noise=0.9)


@pytest.mark.slow
def test_an_ensemble_averages_members_that_each_learn(planted_cache: ImageCache, tmp_path: Path) -> None:
    out = train_classifier(planted_cache, tmp_path / "ensemble", TINY_TRAINING, TINY_CHANNELS, progress=False,
                           members=2)
    model = clf.load(out)
    assert model.config.members == 2 and json.loads((out / "config.json").read_text())["model"]["members"] == 2
    first, second = (member.head.weight for member in model.members)
    assert not torch.equal(first, second)  # initialised differently
    images = torch.rand(4, 3, 32, 32)
    each = model.member_logits(images)  # 2 x 4 x A
    torch.testing.assert_close(model(images), each.mean(0))
    rows = planted_cache.split_indices("test")
    labels = planted_cache.attributes[rows][:, [planted_cache.attribute_names.index(n) for n in model.attribute_names]]
    with torch.no_grad():
        logits = model.member_logits(planted_cache.float_images(rows, "cpu"))  # 2 x N x A
    for member in range(2):  # each member ranks the planted attributes on its own
        scores = SplitScores(torch.sigmoid(logits[member]).numpy(), labels.astype(np.int8))
        auc = split_metrics(scores, model.attribute_names)["auc"]
        assert all(auc[name] >= 0.9 for name in PLANTED), (member, auc)
    with pytest.raises(ConfigError, match="between 1 and 8 members"):
        clf.ClassifierConfig(attribute_names=("Smiling",), members=9)


def test_loss_weights_balance_classes_and_paired_cells() -> None:
    from facevae.errors import UserError
    from facevae.evaluation.classifier_training import loss_weights

    # 10 images, A: 4 positives; Smiling and Male correlated like CelebA's (smiles mostly on women).
    labels = torch.tensor([[1, 1, 0], [1, 1, 0], [1, 0, 1], [0, 1, 0], [1, 0, 0], [0, 0, 1],
                           [0, 0, 1], [0, 0, 1], [0, 1, 1], [0, 0, 1]], dtype=torch.float32)
    names = ["A", "Smiling", "Male"]
    plain = loss_weights(labels, names)
    # Unpaired: negatives / positives on the positives, 1 on the negatives; both classes weigh the same in all.
    torch.testing.assert_close(plain[:, 0], torch.where(labels[:, 0] > 0, torch.tensor(1.5), torch.tensor(1.0)))
    for column in range(3):
        positive = labels[:, column] > 0
        torch.testing.assert_close(plain[positive, column].sum(), plain[~positive, column].sum())
    # The pair: each (Smiling, Male) cell weighs a quarter of the same total, in both columns.
    paired = loss_weights(labels, names, ("Smiling:Male",))
    torch.testing.assert_close(paired[:, 0], plain[:, 0])  # other columns untouched
    cells = labels[:, 1].long() * 2 + labels[:, 2].long()
    for column in (1, 2):
        totals = torch.stack([paired[cells == cell, column].sum() for cell in range(4)])
        torch.testing.assert_close(totals, torch.full((4,), float(plain[:, column].sum()) / 4))
    # The loss with these weights equals BCE with pos_weight when nothing is paired.
    logits = torch.randn(10, 3)
    weighted = torch.nn.functional.binary_cross_entropy_with_logits(logits, labels, plain)
    positives = labels.sum(0)
    reference = torch.nn.functional.binary_cross_entropy_with_logits(logits, labels,
                                                                      pos_weight=(10 - positives) / positives)
    torch.testing.assert_close(weighted, reference)
    with pytest.raises(UserError, match="does not learn Young"):
        loss_weights(labels, names, ("Smiling:Young",))
    with pytest.raises(UserError, match="no training image has A=1 and Smiling=0"):
        loss_weights(labels[[0, 1, 3, 5]], names, ("A:Smiling",))
    for bad in ("Smiling", "Smiling:Smiling", "Smiling:", "A:B:C"):
        with pytest.raises(ConfigError, match="balanced pair"):
            ClassifierTrainConfig(balance_pairs=(bad,))
    with pytest.raises(ConfigError, match="Smiling is in more than one balanced pair"):
        ClassifierTrainConfig(balance_pairs=("Smiling:Male", "Young:Smiling"))


@pytest.mark.slow
def test_a_balanced_pair_stops_one_output_reading_the_other(tmp_path: Path) -> None:
    """Planted confounding: Eyeglasses copies the Smiling label for 70% of the images and half
    the smiles are not drawn, so a plain classifier guesses those smiles from the glasses. With
    Smiling:Eyeglasses balanced, glasses on a face without a smile hardly move its Smiling logit."""
    from facevae.testing.planted import planted_image

    data = make_planted_cache(tmp_path / "cache", count=800, size=32, seed=0, link=("Smiling", "Eyeglasses", 0.7),
                              unpainted={"Smiling": 0.5})
    labels = data.labels[:, [data.attribute_names.index("Smiling"), data.attribute_names.index("Eyeglasses")]]
    assert (labels[:, 0] == labels[:, 1]).mean() > 0.75  # the link holds
    probes = {glasses: torch.from_numpy(np.stack([planted_image(np.random.default_rng(100 + i), {"Eyeglasses": glasses},
                                                                32, 32) for i in range(64)])).permute(0, 3, 1, 2) / 255
              for glasses in (False, True)}  # the same 64 faces without a smile, without and with glasses
    shifts = {}
    for pairs in ((), ("Smiling:Eyeglasses",)):
        config = ClassifierTrainConfig(epochs=6, batch_size=32, precision="fp32", balance_pairs=pairs)
        model = clf.load(train_classifier(ImageCache.open(data.path), tmp_path / f"clf{len(pairs)}", config,
                                          TINY_CHANNELS, progress=False))
        smiling = model.attribute_names.index("Smiling")
        with torch.no_grad():
            shifts[pairs] = float((model(probes[True].float()) - model(probes[False].float()))[:, smiling].mean())
    plain, balanced = shifts[()], shifts[("Smiling:Eyeglasses",)]
    assert plain > 1.0, shifts  # glasses read as a smile
    assert abs(balanced) < plain / 3, shifts
