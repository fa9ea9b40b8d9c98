"""AttributeClassifier: a small CNN with one logit per labelled attribute, and its folder.

    clf = facevae.model.classifier.load("runs/classifier")
    logits = clf(images)                  # N x 3 x S x S floats in [0, 1] -> N x A
    p = clf.probabilities(images)         # sigmoid of the logits (face and mirror image), N x A
    clf.attribute_names, clf.image_size

A classifier folder holds

    config.json               format, version, the architecture (ClassifierConfig), the
                              training settings and where the data came from
    classifier.safetensors    the weights (no pickle)
    metrics.json              {"val_auc": {name: auc}, "val_accuracy": {name: acc}, "images": N}

The network: stride-2 3x3 convolutions with batch norm and ReLU halve the image until it is
4 x 4 (or the channel list ends), each optionally followed by a stride-1 one
(convs_per_stage 2), then global average pooling and one linear layer. With members > 1 the
classifier is an ensemble of such networks, initialised differently and each trained on the
labels; its logits are their mean, which ranks faces better than any one of them and whose
gradient (what guided edits follow) leans less on one network's quirks. Trained
with a class-balanced loss, its probabilities are calibrated as if every attribute were
present half the time: 0.5 means "as likely as not", whatever the attribute's frequency.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file
from torch import nn

from ..config import ConfigError, from_dict, to_dict
from ..errors import UserError
from ..files import read_json
from ..limits import MAX_CLASSIFIER_MEMBERS, MAX_CLASSIFIER_PARAMETERS
from .checks import check_dimensions, check_finite, parameter_count

CLASSIFIER_FORMAT = "facevae-attribute-classifier"
CLASSIFIER_VERSION = 1
CONFIG_FILE, WEIGHTS_FILE, METRICS_FILE = "config.json", "classifier.safetensors", "metrics.json"


class ClassifierError(UserError):
    """A classifier folder that cannot be loaded, or images it cannot score."""


@dataclass(frozen=True)
class ClassifierConfig:
    """The architecture: enough to rebuild the network before loading its weights."""

    image_size: int = 64
    attribute_names: tuple[str, ...] = ()
    channels: tuple[int, ...] = (32, 64, 128, 256)  # per stride-2 stage; stages stop at 4 x 4
    convs_per_stage: int = 1  # 2 adds a stride-1 3x3 convolution after each stride-2 one
    members: int = 1  # networks of this architecture whose logits are averaged (an ensemble)

    def __post_init__(self) -> None:
        size = self.image_size
        if size < 8 or size & (size - 1):
            raise ConfigError(f"classifier image_size must be a power of two >= 8, got {size}")
        if not self.attribute_names:
            raise ConfigError("a classifier needs at least one attribute name")
        if len(set(self.attribute_names)) != len(self.attribute_names):
            raise ConfigError(f"attribute names must be unique: {list(self.attribute_names)}")
        if not self.channels or min(self.channels) < 1:
            raise ConfigError(f"classifier channels must be positive numbers, got {list(self.channels)}")
        if self.convs_per_stage not in (1, 2):
            raise ConfigError(f"classifier convs_per_stage must be 1 or 2, got {self.convs_per_stage}")
        if not 1 <= self.members <= MAX_CLASSIFIER_MEMBERS:
            raise ConfigError(f"a classifier has between 1 and {MAX_CLASSIFIER_MEMBERS} members, got {self.members}")

    @property
    def stage_channels(self) -> tuple[int, ...]:
        """The channels of the stages actually used: halving stops at 4 x 4."""
        return self.channels[: max(1, int(math.log2(self.image_size)) - 2)]


class ClassifierNetwork(nn.Module):
    """One member: centred N x 3 x S x S images -> N x A logits (strided 3x3 convolutions with
    batch norm and ReLU down to 4 x 4, global average pooling, a linear layer)."""

    def __init__(self, config: ClassifierConfig) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        width = 3
        for out in config.stage_channels:
            for stride in (2, 1)[:config.convs_per_stage]:
                layers += [nn.Conv2d(width, out, 3, stride=stride, padding=1, bias=False), nn.BatchNorm2d(out),
                           nn.ReLU(inplace=True)]
                width = out
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(width, len(config.attribute_names))

    def forward(self, centred: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(centred).mean((2, 3)))  # N x C x 4 x 4 -> N x A


class AttributeClassifier(nn.Module):
    """N x 3 x S x S images in [0, 1] -> N x A logits, one per attribute in attribute_names:
    the mean of its members' logits (config.members networks, each initialised differently)."""

    def __init__(self, config: ClassifierConfig) -> None:
        super().__init__()
        self.config = config
        self.members = nn.ModuleList(ClassifierNetwork(config) for _ in range(config.members))

    @property
    def attribute_names(self) -> list[str]:
        return list(self.config.attribute_names)

    @property
    def image_size(self) -> int:
        return self.config.image_size

    def member_logits(self, images: torch.Tensor) -> torch.Tensor:
        """M x N x A: each member's logits (training fits every member to the labels on its own)."""
        return torch.stack(self.member_outputs(images))

    def member_outputs(self, images: torch.Tensor) -> list[torch.Tensor]:
        """M tensors N x A, each member's logits as its own autograd graph: a gradient of one
        member's output is then computed through that member alone (guided edits hold each
        member's reading of a kept attribute; a stacked output would backpropagate zeros
        through all of them)."""
        expected = (3, self.image_size, self.image_size)
        if images.ndim != 4 or tuple(images.shape[1:]) != expected:
            raise ClassifierError(f"the classifier scores N x {' x '.join(map(str, expected))} images; got "
                                  f"{tuple(images.shape)} (resize the images to {self.image_size}px first)")
        centred = images - 0.5
        return [member(centred) for member in self.members]

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return self.member_logits(images).mean(0)  # N x A

    @torch.inference_mode()
    def probabilities(self, images: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
        """N x A probabilities (float32), in eval mode and in batches; the module's mode is kept.
        Each is the sigmoid of the mean of the logits of the face and of its mirror image:
        CelebA's labels do not depend on the side, and training flips faces at random."""
        was_training = self.training
        self.eval()
        try:
            device = next(self.parameters()).device
            parts = []
            for chunk in images.split(batch_size):
                chunk = chunk.to(device, torch.float32)
                parts.append(torch.sigmoid((self(chunk).float() + self(chunk.flip(-1)).float()) / 2))
        finally:
            self.train(was_training)
        return torch.cat(parts) if parts else torch.zeros(0, len(self.attribute_names))


def folder_config(config: ClassifierConfig, train: dict[str, Any], data: dict[str, Any]) -> dict[str, Any]:
    """The config.json of a classifier folder."""
    return {"format": CLASSIFIER_FORMAT, "version": CLASSIFIER_VERSION, "model": to_dict(config),
            "train": train, "data": data}


def read_config(folder: str | Path) -> tuple[ClassifierConfig, dict[str, Any]]:
    """(the architecture, the whole config.json) of a classifier folder; unknown keys are errors."""
    folder = Path(folder).expanduser()
    path = folder / CONFIG_FILE
    if not path.is_file():
        raise ClassifierError(f"{folder} is not a classifier folder (no {CONFIG_FILE}); train one with "
                              f"`facevae classifier train --data CELEBA_OR_CACHE --out {folder}`")
    meta = read_json(path, ClassifierError, "train the classifier again")
    if not isinstance(meta, dict) or meta.get("format") != CLASSIFIER_FORMAT:
        shown = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
        raise ClassifierError(f"{path} does not describe a facevae attribute classifier "
                              f"(format {shown!r}, expected {CLASSIFIER_FORMAT!r})")
    if not isinstance(meta.get("version", 0), int) or meta.get("version", 0) > CLASSIFIER_VERSION:
        raise ClassifierError(f"{path} has classifier format version {meta['version']}; upgrade facevae to read it")
    unknown = sorted(set(meta) - {"format", "version", "model", "train", "data"})
    if unknown:
        raise ClassifierError(f"{path} has unknown keys {unknown}; it was not written by this facevae")
    check_dimensions(meta.get("model"), f"{path} model", ClassifierError)
    config = from_dict(ClassifierConfig, meta.get("model", {}), "model")
    check_classifier_size(config, str(path))
    return config, meta


def check_classifier_size(config: ClassifierConfig, source: str) -> None:
    """Refuse a classifier too large to be one before anything is allocated for it."""
    count = parameter_count(AttributeClassifier, config)
    if count > MAX_CLASSIFIER_PARAMETERS:
        raise ClassifierError(
            f"{source} describes a classifier of {count:,} parameters ({count * 4 / 2**30:.1f} GiB), more than the "
            f"{MAX_CLASSIFIER_PARAMETERS:,} facevae accepts (the default has about 0.4 million). Check its channels "
            f"{list(config.channels)}: the file is damaged, or choose fewer channels")


def load(folder: str | Path, device: str | torch.device = "cpu") -> AttributeClassifier:
    """Load a trained classifier folder, in eval mode."""
    folder = Path(folder).expanduser()
    config, _ = read_config(folder)
    classifier = AttributeClassifier(config)
    weights = folder / WEIGHTS_FILE
    if not weights.is_file():
        raise ClassifierError(f"{weights} is missing; train the classifier again")
    try:
        state = load_file(weights)
    except Exception as error:  # safetensors raises its own error types
        raise ClassifierError(f"{weights} is not a readable safetensors file ({error})") from None
    if "head.weight" in state:  # a folder from before ensembles: one network, its names unprefixed
        state = {f"members.0.{name}": value for name, value in state.items()}
    try:
        classifier.load_state_dict(state)
    except RuntimeError as error:
        raise ClassifierError(f"{weights} does not match {folder / CONFIG_FILE}: {error}") from None
    check_finite(state, weights, ClassifierError)
    return classifier.to(device).eval()
