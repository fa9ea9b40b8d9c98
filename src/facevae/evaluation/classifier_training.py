"""Training the attribute classifier from a cache's labels, and scoring it on a split.

    folder = train_classifier(cache, "runs/classifier", ClassifierTrainConfig(epochs=3))
    scores = score_split(load(folder), cache, "test")      # probabilities and labels
    split_metrics(scores, names)                           # {"auc": ..., "accuracy": ..., "images": N}

The loss is binary cross-entropy per attribute, each image weighted so that an attribute's
positive and negative training images count as much in all (negatives / positives on the
positives), so a rare attribute (Bald: 2% of CelebA) counts as much as a common one. A
balanced pair "A:B" (`balance_pairs`) weights the A and B outputs' losses by the four joint
cells of their labels instead, each cell counting as much: CelebA's women smile more often,
so a Smiling output trained plainly reads part of a face's gender as smile (and Male part of
a smile as "female"); with Smiling:Male balanced, neither can lean on the other, which is
what a guided edit that keeps one while changing the other needs (docs/evaluation.md).
Batches come from the cache through training/data.py (uint8 until the device; flips for
training only); bf16 autocast where the CPU computes it natively (facevae.runtime.pick_runtime).
TensorBoard event files go to OUT/tensorboard when TensorBoard is installed. OUT is checked
(new, empty or an earlier classifier; writable, with room) before training, built in a
temporary sibling and renamed into place complete, so a killed run never leaves new weights
under an old config.
"""

from __future__ import annotations

import io
import json
import math
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from safetensors.torch import save as safetensors_bytes
from tqdm.auto import tqdm

from ..atomic import staged_dir
from ..config import ConfigError, to_dict
from ..data.cache import ImageCache
from ..errors import UserError
from ..model.classifier import (
    CLASSIFIER_FORMAT,
    CONFIG_FILE,
    METRICS_FILE,
    WEIGHTS_FILE,
    AttributeClassifier,
    ClassifierConfig,
    check_classifier_size,
    folder_config,
)
from ..runtime import pick_runtime, resolve_device
from ..training.data import CacheBatches
from .classifier_augment import Augmentation, augment
from .output import check_replaceable, check_writable, writing


@dataclass(frozen=True)
class ClassifierTrainConfig:
    """How the classifier is trained (stored in config.json's "train"). epochs and batch_size
    None adapt to the data (plan_schedule); training stops early when the mean validation AUC
    has not improved for `patience` epochs, and keeps the best epoch's weights."""

    epochs: int | None = None  # None: enough epochs for about AUTO_STEPS steps (plan_schedule)
    batch_size: int | None = None  # None: 128, smaller for small training splits
    lr: float = 2e-3
    weight_decay: float = 1e-4
    seed: int = 0
    hflip: bool = True  # random horizontal flips of training images
    shift: float = 2.0  # augmentation (classifier_augment.Augmentation): pixels of random translation,
    blur: float = 0.5  # share of images mixed with a blurred copy,
    noise: float = 0.05  # largest Gaussian noise level
    patience: int = 5  # epochs without a better mean validation AUC before stopping; 0 never stops early
    precision: str = "auto"  # auto (bf16 where native), fp32 or bf16
    device: str = "auto"  # auto: a GPU if there is one, else the CPU
    attributes: tuple[str, ...] = ()  # () = every attribute with both classes in the training split
    balance_pairs: tuple[str, ...] = ()  # "A:B": the A and B losses weighted by their joint label cells

    def __post_init__(self) -> None:
        paired: list[str] = []
        for pair in self.balance_pairs:
            first, _, second = pair.partition(":")
            if not first or not second or first == second or ":" in second:
                raise ConfigError(f"a balanced pair is two different attribute names joined by ':', e.g. "
                                  f"Smiling:Male; got {pair!r}")
            paired += [first, second]
        twice = sorted({name for name in paired if paired.count(name) > 1})
        if twice:  # an output's loss has one set of weights: a second pair would silently replace the first
            raise ConfigError(f"{', '.join(twice)} is in more than one balanced pair; balance each attribute "
                              f"with one other only")
        if (self.epochs is not None and self.epochs < 1) or (self.batch_size is not None and self.batch_size < 2):
            raise ConfigError("classifier training needs epochs >= 1 and batch_size >= 2 "
                              "(or None to adapt them to the data)")
        if not self.lr > 0 or self.weight_decay < 0 or self.patience < 0:
            raise ConfigError("classifier training needs lr > 0, weight_decay >= 0 and patience >= 0")
        Augmentation(self.shift, self.blur, self.noise)  # validates the strengths

    @property
    def augmentation(self) -> Augmentation:
        return Augmentation(self.shift, self.blur, self.noise)


@dataclass
class SplitScores:
    """A classifier's probabilities on one split next to the labels (both N x A)."""

    probabilities: np.ndarray
    labels: np.ndarray


def choose_attributes(cache: ImageCache, wanted: tuple[str, ...]) -> tuple[list[str], dict[str, str]]:
    """(names to learn, {left-out name: why}): each needs positives and negatives in train."""
    names = cache.attribute_names
    if not names:
        raise UserError(f"{cache.path} has no attribute labels, so there is nothing to classify: "
                        f"use CelebA (list_attr_celeba.txt) or an image folder with attributes.csv")
    unknown = [name for name in wanted if name not in names]
    if unknown:
        raise UserError(f"{cache.path} has no labels for {', '.join(unknown)}; labelled: {', '.join(names)}")
    train = cache.attributes[cache.split_indices("train")]
    chosen, skipped = [], {}
    for index, name in enumerate(names):
        if wanted and name not in wanted:
            continue
        positives = int(train[:, index].sum())
        if 0 < positives < len(train):
            chosen.append(name)
        else:
            skipped[name] = f"{positives} of {len(train)} training images have it"
    if not chosen:
        raise UserError(f"no attribute of {cache.path} has both positive and negative training images")
    return chosen, skipped


def score_split(classifier: AttributeClassifier, cache: ImageCache, split: str, batch_size: int = 256,
                max_images: int | None = None, progress: bool = False) -> SplitScores:
    """Probabilities for the classifier's attributes on (the first max_images of) a split."""
    missing = [name for name in classifier.attribute_names if name not in cache.attribute_names]
    if missing:
        raise UserError(f"{cache.path} has no labels for the classifier's attributes {', '.join(missing)}")
    if cache.image_size != classifier.image_size:
        raise UserError(f"{cache.path} holds {cache.image_size}px images but the classifier takes "
                        f"{classifier.image_size}px: prepare a {classifier.image_size}px cache")
    rows = cache.split_indices(split)[:max_images]
    if len(rows) == 0:
        raise UserError(f"the {split} split of {cache.path} is empty; choose another split")
    columns = [cache.attribute_names.index(name) for name in classifier.attribute_names]
    device = next(classifier.parameters()).device
    parts = []
    for start in tqdm(range(0, len(rows), batch_size), desc=f"scoring {split}", unit="batch", disable=not progress,
                      leave=False):
        images = cache.float_images(rows[start:start + batch_size], device)  # B x 3 x S x S
        parts.append(classifier.probabilities(images).cpu().numpy())
    return SplitScores(np.concatenate(parts), cache.attributes[rows][:, columns].astype(np.int8))


def split_metrics(scores: SplitScores, names: list[str]) -> dict[str, Any]:
    """Per attribute: ROC AUC (scikit-learn; None when the split has one class only) and
    accuracy at probability 0.5; plus the number of images."""
    try:
        from sklearn.metrics import roc_auc_score
    except ImportError:
        raise UserError("ROC AUC comes from scikit-learn, which is not installed: "
                        "pip install 'facevae[eval]'") from None

    auc: dict[str, float | None] = {}
    accuracy: dict[str, float] = {}
    for index, name in enumerate(names):
        labels, probs = scores.labels[:, index], scores.probabilities[:, index]
        both = 0 < labels.sum() < len(labels)
        auc[name] = round(float(roc_auc_score(labels, probs)), 4) if both else None
        accuracy[name] = round(float(((probs >= 0.5) == (labels == 1)).mean()), 4)
    return {"auc": auc, "accuracy": accuracy, "images": int(len(scores.labels))}


def loss_weights(labels: torch.Tensor, names: list[str], pairs: tuple[str, ...] = ()) -> torch.Tensor:
    """N x A weights of each training image's loss per attribute, from N x A {0, 1} labels.

    Every attribute's positives and negatives count as much in all (each weighs
    negatives / positives on its positives, 1 on its negatives: the total is 2 x negatives).
    For a pair "A:B", the A and the B columns weigh each image by its (A, B) label cell
    instead, every cell counting a quarter of that same total."""
    labels = labels.float()
    count = len(labels)
    positives = labels.sum(0)  # A
    weights = torch.where(labels > 0, (count - positives) / positives, torch.ones_like(labels))  # N x A
    for pair in pairs:
        first, second = pair.split(":")
        missing = [name for name in (first, second) if name not in names]
        if missing:
            raise UserError(f"cannot balance {pair}: the classifier does not learn {', '.join(missing)} "
                            f"(it learns {', '.join(names)})")
        a, b = names.index(first), names.index(second)
        cells = labels[:, a].long() * 2 + labels[:, b].long()  # N: 0..3
        sizes = torch.bincount(cells, minlength=4)
        if bool((sizes == 0).any()):
            empty = int((sizes == 0).nonzero()[0])
            raise UserError(f"cannot balance {pair}: no training image has {first}={empty // 2} and "
                            f"{second}={empty % 2}; train without --balance-pairs {pair}")
        for column in (a, b):
            total = 2 * (count - positives[column])
            weights[:, column] = total / (4 * sizes[cells].float())
    return weights


AUTO_STEPS = 1500  # optimiser steps the adaptive schedule aims for
AUTO_EPOCH_RANGE = (3, 60)  # fewest and most epochs it plans
NEAR_CHANCE_AUC = 0.6  # a mean validation AUC below this means the classifier learned (almost) nothing


def plan_schedule(train_images: int, config: ClassifierTrainConfig) -> tuple[int, int]:
    """(epochs, batch size): the configured ones, or, where None, sizes that adapt to the data:
    batches of 128 (a power of two down to 16 when the split has under 20 batches of 128) and
    epochs for about AUTO_STEPS steps, within AUTO_EPOCH_RANGE. Full CelebA's training split
    gets 3 epochs, the sample's 5,600 training faces 35 (early stopping may end it sooner), 360
    images 60 epochs of batches of 16."""
    batch = config.batch_size or int(min(128, max(16, 2 ** math.floor(math.log2(max(train_images / 20, 1))))))
    if config.epochs is not None:
        return config.epochs, batch
    steps_per_epoch = max(1, train_images // batch)
    low, high = AUTO_EPOCH_RANGE
    return int(min(high, max(low, math.ceil(AUTO_STEPS / steps_per_epoch)))), batch


def train_classifier(cache: ImageCache, out: str | Path, config: ClassifierTrainConfig = ClassifierTrainConfig(),
                     channels: tuple[int, ...] = ClassifierConfig.channels, progress: bool = True,
                     convs_per_stage: int = 1, members: int = 1) -> Path:
    """Train on the train split, validate on the valid split, publish the folder OUT; returns OUT."""
    out = Path(out).expanduser()
    check_replaceable(out, is_classifier_folder, "the classifier", "facevae classifier train")
    names, skipped = choose_attributes(cache, config.attributes)
    for name, why in skipped.items():
        warnings.warn(f"left out {name}: {why}", stacklevel=2)
    if len(cache.split_indices("valid")) == 0:
        raise UserError(f"the valid split of {cache.path} is empty; prepare the cache with a validation "
                        f"fraction (`facevae prepare --val-fraction 0.1`)")
    try:
        architecture = ClassifierConfig(cache.image_size, tuple(names), tuple(channels), convs_per_stage, members)
    except ConfigError as error:
        raise UserError(str(error)) from None
    check_classifier_size(architecture, f"--channels {','.join(map(str, channels))}")
    unused = channels[len(architecture.stage_channels):]
    if unused:  # halving stops at 4 x 4: a longer list is not an error, but it is not what was asked for
        warnings.warn(f"--channels lists {len(channels)} stages, but {cache.image_size}px images reach 4 x 4 after "
                      f"{len(architecture.stage_channels)}, so the last {len(unused)} ({','.join(map(str, unused))}) "
                      f"are not used: the network has {len(architecture.stage_channels)} stages", stacklevel=2)
    check_writable(out)
    with writing(out), staged_dir(out) as folder:
        _train_into(folder, architecture, cache, config, skipped, progress)
    return out


def is_classifier_folder(folder: Path) -> bool:
    """Whether `folder` holds a classifier's config.json (an earlier `classifier train` output)."""
    config = folder / CONFIG_FILE
    try:
        return config.is_file() and CLASSIFIER_FORMAT in config.read_text(encoding="utf-8")[:200]
    except (OSError, UnicodeDecodeError):
        return False


def _train_into(folder: Path, architecture: ClassifierConfig, cache: ImageCache, config: ClassifierTrainConfig,
                skipped: dict[str, str], progress: bool) -> None:
    """Train and write config.json, classifier.safetensors and metrics.json into `folder`."""
    names = list(architecture.attribute_names)
    torch.manual_seed(config.seed)
    device = resolve_device(config.device)
    model = AttributeClassifier(architecture).to(device)
    columns = [cache.attribute_names.index(name) for name in names]
    labels = torch.from_numpy(cache.attributes[cache.split_indices("train")][:, columns].astype(np.float32))
    weights = loss_weights(labels, names, config.balance_pairs).to(device)  # N x A, in split order
    epochs, batch_size = plan_schedule(len(labels), config)
    batches = CacheBatches(cache, "train", batch_size, device, shuffle=True, seed=config.seed,
                           hflip=config.hflip, channels_last=False)
    started = time.perf_counter()
    fitted = _fit(model, batches, labels.to(device), weights, cache, config, epochs, folder, progress)
    seconds = time.perf_counter() - started
    model.eval()
    _warn_if_near_chance(fitted["valid"]["auc"])
    train_info = {**to_dict(config), "attributes": names, "seconds": round(seconds, 1),
                  "planned_epochs": epochs, "used_batch_size": batch_size, "epochs_run": fitted["epochs_run"],
                  "best_epoch": fitted["best_epoch"],
                  "images_per_second": round(fitted["epochs_run"] * batches.usable / max(seconds, 1e-9), 1),
                  "computed_in": "bf16 autocast" if pick_runtime(device, config.precision).autocast_dtype else "fp32"}
    data_info = {"cache": str(cache.path), "crop": cache.meta.get("preprocessing", {}).get("crop", "squash"),
                 "crop_size": cache.meta.get("preprocessing", {}).get("crop_size", 148),
                 "train_images": int(len(labels)), "left_out": skipped}
    write_classifier_files(folder, model, train_info, data_info, fitted["valid"])


def write_classifier_files(folder: Path, model: AttributeClassifier, train_info: dict[str, Any],
                           data_info: dict[str, Any], valid: dict[str, Any]) -> None:
    """A classifier folder's files: the weights, config.json and metrics.json (`valid`:
    split_metrics of the valid split). `classifier train` and `classifier merge` write them."""
    state = {key: value.detach().cpu().contiguous() for key, value in model.state_dict().items()}
    (folder / WEIGHTS_FILE).write_bytes(safetensors_bytes(state))
    (folder / CONFIG_FILE).write_bytes(_json(folder_config(model.config, train_info, data_info)))
    (folder / METRICS_FILE).write_bytes(_json({"val_auc": valid["auc"], "val_accuracy": valid["accuracy"],
                                               "images": valid["images"]}))


def train_step(model: AttributeClassifier, optimiser: torch.optim.Optimizer, images: torch.Tensor,
               targets: torch.Tensor, weights: torch.Tensor, dtype: torch.dtype | None) -> torch.Tensor:
    """One optimiser step on B x 3 x S x S images, B x A {0, 1} targets and B x A loss weights
    (loss_weights' rows for these images); returns the loss (averaged over the ensemble's
    members: each learns the labels, not the ensemble's mean).
    The forward pass runs under autocast when dtype is set; the loss is computed in fp32."""
    with torch.autocast(images.device.type, dtype=dtype or torch.float32, enabled=dtype is not None):
        logits = model.member_logits(images)  # M x B x A: each member fits the labels on its own
    loss = F.binary_cross_entropy_with_logits(logits.float(), targets.expand_as(logits), weights.expand_as(logits))
    optimiser.zero_grad(set_to_none=True)
    loss.backward()
    optimiser.step()
    return loss.detach()


def mean_auc(valid: dict[str, Any]) -> float:
    known = [auc for auc in valid["auc"].values() if auc is not None]
    return float(np.mean(known)) if known else float("nan")


def _fit(model: AttributeClassifier, batches: CacheBatches, labels: torch.Tensor, weights: torch.Tensor,
         cache: ImageCache, config: ClassifierTrainConfig, epochs: int, out: Path, progress: bool) -> dict[str, Any]:
    """The epochs: AdamW with a cosine schedule; validation after each epoch; early stopping
    after `patience` epochs without a better mean AUC, then the best epoch's weights are put
    back. Returns {"valid": its metrics, "best_epoch", "epochs_run"}. labels and weights:
    N_train x A floats on the device, in split order."""
    dtype = pick_runtime(batches.device, config.precision).autocast_dtype
    optimiser = torch.optim.AdamW(model.parameters(), lr=config.lr, weight_decay=config.weight_decay)
    total = epochs * len(batches)
    schedule = torch.optim.lr_scheduler.LambdaLR(optimiser, lambda step: 0.5 * (1 + math.cos(math.pi * step / total)))
    generator = torch.Generator().manual_seed(config.seed)
    writer = _summary_writer(out)
    best: dict[str, Any] = {"score": -math.inf, "valid": {}, "best_epoch": 0, "state": None}
    bar = tqdm(total=total, desc="training classifier", unit="batch", disable=not progress)
    try:
        for epoch in range(epochs):
            model.train()
            positions, _ = batches.epoch_positions(epoch)
            for index, images in enumerate(batches.batches(epoch)):
                rows = torch.from_numpy(positions[index * batches.batch_size:][:len(images)])
                images = augment(images, config.augmentation, generator)
                loss = train_step(model, optimiser, images, labels[rows], weights[rows], dtype)
                schedule.step()
                bar.update()
                if writer is not None:
                    writer.add_scalar("train/loss", loss.item(), schedule.last_epoch)  # the step count
            valid = split_metrics(score_split(model, cache, "valid"), model.attribute_names)
            score = mean_auc(valid)
            bar.set_postfix(epoch=epoch + 1, loss=f"{loss.item():.3f}", val_auc=f"{score:.3f}")
            _log_validation(writer, valid, score, schedule.last_epoch)
            if best["state"] is None or score > best["score"]:
                state = {key: value.detach().clone() for key, value in model.state_dict().items()}
                best = {"score": score, "valid": valid, "best_epoch": epoch + 1, "state": state}
            elif config.patience and epoch + 1 - best["best_epoch"] >= config.patience:
                break
    finally:
        bar.close()
        if writer is not None:
            writer.close()
    model.load_state_dict(best["state"])
    return {"valid": best["valid"], "best_epoch": best["best_epoch"], "epochs_run": epoch + 1}


def _log_validation(writer: Any, valid: dict[str, Any], score: float, step: int) -> None:
    if writer is None:
        return
    writer.add_scalar("valid/mean_auc", score, step)
    for name, auc in valid["auc"].items():
        if auc is not None:
            writer.add_scalar(f"valid_auc/{name}", auc, step)


def _warn_if_near_chance(auc: dict[str, float | None]) -> None:
    """A loud warning when the classifier learned (almost) nothing: mean AUC under NEAR_CHANCE_AUC."""
    known = {name: value for name, value in auc.items() if value is not None}
    score = float(np.mean(list(known.values()))) if known else float("nan")
    if not score >= NEAR_CHANCE_AUC:
        weakest = ", ".join(f"{name} {value:.2f}" for name, value in sorted(known.items(), key=lambda kv: kv[1])[:5])
        warnings.warn(f"THE CLASSIFIER LEARNED ALMOST NOTHING: mean validation ROC AUC {score:.3f} is near chance "
                      f"(0.5; weakest: {weakest}). Do not judge edits with it: check that the labels match the "
                      f"images, and train longer (--epochs) or on more images.", stacklevel=3)


def _summary_writer(out: Path) -> Any:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        warnings.warn("TensorBoard is not installed, so training writes no event files (pip install "
                      "'facevae[train]')", stacklevel=3)
        return None
    return SummaryWriter(str(out / "tensorboard"))


def _json(values: dict[str, Any]) -> bytes:
    buffer = io.StringIO()
    json.dump(values, buffer, indent=2)
    return (buffer.getvalue() + "\n").encode("utf-8")
