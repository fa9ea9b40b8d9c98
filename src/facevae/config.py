"""Typed, strict configuration: the model, the data and the training recipe.

Every config is a frozen dataclass. Reading one from a dict, a TOML/JSON file or
`--set key=value` overrides rejects unknown keys with a message naming the key and the
valid ones, so a typo never silently falls back to a default.

The original TensorFlow project's flat `config.json` (embedding_size, num_channels, beta,
input_img_size, batch_size, lr, max_epoch, dataset_dir, model_save_path) is accepted as is.
"""

from __future__ import annotations

import dataclasses
import difflib
import json
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from .errors import UserError
from .files import parse_json


class ConfigError(UserError):
    """A configuration that cannot be used: the message names the key and the fix."""


@dataclass(frozen=True)
class ModelConfig:
    """Everything needed to build the encoder and decoder; nothing else is.

    The number of stages is len(channels); each stage halves (encoder) or doubles (decoder)
    the image, so image_size / 2**len(channels) is the side of the smallest feature map.
    """

    image_size: int = 64
    image_channels: int = 3
    channels: tuple[int, ...] = (128, 128, 128, 128)
    latent_dim: int = 200
    kernel_size: int = 3
    leaky_slope: float = 0.3  # Keras 3's LeakyReLU default; PyTorch's is 0.01
    bn_eps: float = 1e-3  # Keras's BatchNormalization default; PyTorch's is 1e-5
    bn_momentum: float = 0.01  # PyTorch convention (= 1 - Keras momentum 0.99)
    # "tf_same": TensorFlow's 'same' for stride 2 puts the extra row/column at the
    # bottom/right; "symmetric": PyTorch's padding=1 (+ output_padding=1 when upsampling).
    padding: Literal["tf_same", "symmetric"] = "tf_same"
    # Order in which the smallest feature map is flattened into the dense layers.
    flatten_order: Literal["channels_last", "channels_first"] = "channels_last"
    # The original applied ReLU to both encoder heads (mean and log-variance): the "original"
    # preset keeps it, for its published weights. New models default to "none": with ReLU,
    # heads pushed below zero give mean = log_var = 0 exactly, KL 0 and no gradient to revive
    # them, and training collapses to one average face (docs/training.md).
    head_activation: Literal["relu", "none"] = "none"

    def __post_init__(self) -> None:
        object.__setattr__(self, "channels", tuple(int(c) for c in self.channels))
        if not self.channels:
            raise ConfigError("model.channels must list at least one stage, e.g. [128, 128, 128, 128]")
        bottom = self.image_size / 2 ** len(self.channels)
        if bottom < 1 or bottom != int(bottom):
            raise ConfigError(
                f"model.image_size {self.image_size} is not divisible by 2**{len(self.channels)} "
                f"(one halving per entry of model.channels); use a power of two such as 32, 64, 128 "
                f"or 256, or change the number of stages"
            )
        for name in ("latent_dim", "image_channels", "kernel_size"):
            if getattr(self, name) < 1:
                raise ConfigError(f"model.{name} must be positive, got {getattr(self, name)}")
        if self.kernel_size % 2 == 0:
            # 'same' padding of the stride-1 to_rgb layer is only symmetric for odd kernels.
            raise ConfigError(f"model.kernel_size must be odd (3, 5, 7, ...), got {self.kernel_size}")

    @property
    def bottom_size(self) -> int:
        """Side of the smallest feature map (4 for the original 64x64 model)."""
        return self.image_size // 2 ** len(self.channels)

    @property
    def flat_features(self) -> int:
        return self.channels[-1] * self.bottom_size**2


CROPS = ("squash", "center")


@dataclass(frozen=True)
class Preprocessing:
    """How a picture becomes a model input: the one definition shared by the training cache
    (facevae.data.prepare), a bundle's config.json and every photo at inference time.

    "squash" resizes the whole frame (the original's 178 x 218 CelebA images) to
    image_size x image_size; "center" takes the centred square of crop_size CelebA pixels
    (scaled with the picture's width; see facevae.data.decode).
    """

    image_size: int = 64
    crop: Literal["squash", "center"] = "squash"
    crop_size: int = 148  # side of the centred square for crop="center", in CelebA pixels

    def __post_init__(self) -> None:
        if self.crop not in CROPS:
            raise ConfigError(f"preprocessing crop must be one of {', '.join(CROPS)}; got {self.crop!r}")
        for name in ("image_size", "crop_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"preprocessing {name} must be a positive whole number of pixels, got {value!r}; "
                                  f"the usual values are image_size 64 and crop_size 148")


MODEL_PRESETS: dict[str, ModelConfig] = {
    # The original TensorFlow/Keras project's architecture, exactly (ReLU on the encoder heads):
    # for its published weights, their import, export and decoding.
    "original": ModelConfig(head_activation="relu"),
    # The default for new training: the original architecture with linear encoder heads.
    "celeba64": ModelConfig(),
    # The seed document's PyTorch port: PyTorch defaults everywhere, no ReLU on the heads.
    "seed": ModelConfig(
        leaky_slope=0.01, bn_eps=1e-5, padding="symmetric", flatten_order="channels_first", head_activation="none"
    ),
    # Small and quick for CPU experiments and tests.
    "compact": ModelConfig(
        image_size=32, channels=(32, 64, 64), latent_dim=32, leaky_slope=0.2, bn_eps=1e-5,
        padding="symmetric", flatten_order="channels_first", head_activation="none",
    ),
    # Larger images: one more stage per doubling.
    "celeba128": ModelConfig(
        image_size=128, channels=(64, 128, 128, 256, 256), latent_dim=256, leaky_slope=0.2, bn_eps=1e-5,
        padding="symmetric", flatten_order="channels_first", head_activation="none",
    ),
    "celeba256": ModelConfig(
        image_size=256, channels=(32, 64, 128, 256, 256, 512), latent_dim=512, leaky_slope=0.2, bn_eps=1e-5,
        padding="symmetric", flatten_order="channels_first", head_activation="none",
    ),
}


@dataclass(frozen=True)
class DataConfig:
    """Where the images are and how they become training tensors."""

    path: str = ""  # a CelebA folder, an image folder, or a prepared cache
    cache_dir: str = ""  # where `prepare` writes; default: next to the data
    crop: Literal["squash", "center"] = "squash"  # squash = the original's full-frame resize
    crop_size: int = 148  # side of the centred square for crop="center"
    val_fraction: float = 0.1  # used only when there is no official partition file
    test_fraction: float = 0.1
    split_seed: int = 0
    hflip: bool = False  # random horizontal flips, training split only
    workers: int = 0  # decoding processes for `prepare`; 0 = all cores

    def __post_init__(self) -> None:
        self.preprocessing(64)  # checks crop and crop_size now, not when the cache is made
        if not 0 <= self.val_fraction < 1 or not 0 <= self.test_fraction < 1:
            raise ConfigError("data.val_fraction and data.test_fraction must be in [0, 1)")
        if self.val_fraction + self.test_fraction >= 1:
            raise ConfigError("data.val_fraction + data.test_fraction must leave some training images (< 1)")

    def preprocessing(self, image_size: int) -> Preprocessing:
        """This data's crop at the model's image size."""
        return Preprocessing(image_size=image_size, crop=self.crop, crop_size=self.crop_size)


@dataclass(frozen=True)
class TrainConfig:
    """The training recipe. Defaults are the original project's: beta 2000, Adam 5e-4,
    batch 128, 12 epochs, Keras's initialisation."""

    # The original's "beta" multiplies the reconstruction term: it is a reconstruction
    # weight, not beta-VAE's KL weight. loss = recon_weight * recon + kl_weight * KL.
    recon_weight: float = 2000.0
    kl_weight: float = 1.0
    recon_loss: Literal["mse", "l1"] = "mse"
    kl_warmup_steps: int = 0  # KL weight ramps linearly from 0 over this many steps
    # Initial weights: "keras" = glorot_uniform kernels and zero biases, as the original's
    # Keras layers; "pytorch" = PyTorch's layer defaults.
    init: Literal["keras", "pytorch"] = "keras"
    lr: float = 5e-4
    weight_decay: float = 0.0
    batch_size: int = 128
    epochs: int = 12
    lr_schedule: Literal["constant", "cosine", "plateau"] = "constant"
    warmup_steps: int = 0
    min_lr: float = 0.0  # cosine decays to this
    plateau_factor: float = 0.5  # plateau: lr *= factor after plateau_patience bad validations
    plateau_patience: int = 2
    grad_clip: float = 0.0  # max global gradient norm; 0 = off
    grad_accum: int = 1
    seed: int = 0
    num_workers: int = 0  # DataLoader workers; the uint8 cache rarely needs any
    val_every_steps: int = 0  # 0 = once per epoch
    checkpoint_every_steps: int = 500
    early_stopping_patience: int = 0  # validations without improvement; 0 = off
    precision: Literal["auto", "fp32", "bf16"] = "auto"
    channels_last: bool = True
    compile: bool = False
    device: str = "auto"  # auto | cpu | cuda | cuda:N | mps
    out_dir: str = "runs/facevae"
    log_every_steps: int = 50
    sample_count: int = 64  # faces in the per-epoch sample grids
    # Warn once when KL stays near 0 or faces from different codes stay nearly identical for
    # this many steps (a collapsed VAE, training/collapse.py); 0 = never check.
    collapse_patience_steps: int = 200

    def __post_init__(self) -> None:
        for name in ("batch_size", "epochs", "grad_accum"):
            if getattr(self, name) < 1:
                raise ConfigError(f"train.{name} must be at least 1, got {getattr(self, name)}")
        if self.lr <= 0:
            raise ConfigError(f"train.lr must be positive, got {self.lr}")


@dataclass(frozen=True)
class RunConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    train: TrainConfig = field(default_factory=TrainConfig)


# --- reading and writing -------------------------------------------------------------

# The original project's flat config.json: key -> (section, field, converter).
_ORIGINAL_KEYS: dict[str, tuple[str, str, Any]] = {
    "embedding_size": ("model", "latent_dim", int),
    "num_channels": ("model", "channels", lambda n: [int(n)] * 4),
    "input_img_size": ("model", "image_size", int),
    "beta": ("train", "recon_weight", float),
    "batch_size": ("train", "batch_size", int),
    "lr": ("train", "lr", float),
    "max_epoch": ("train", "epochs", int),
    "dataset_dir": ("data", "path", str),
    "model_save_path": ("train", "out_dir", str),
}


def to_dict(config: Any) -> dict[str, Any]:
    """A JSON-ready dict (tuples become lists)."""
    return json.loads(json.dumps(dataclasses.asdict(config)))


def _unknown_key(key: str, valid: list[str], where: str) -> ConfigError:
    close = difflib.get_close_matches(key, valid, n=1)
    hint = f" Did you mean '{close[0]}'?" if close else ""
    return ConfigError(f"Unknown key '{key}' in {where}.{hint} Valid keys: {', '.join(sorted(valid))}.")


def _coerce(value: Any, annotation: Any, key: str) -> Any:
    """Convert a parsed value to the field's declared type, or explain why it cannot be."""
    origin = typing.get_origin(annotation)
    if origin is Literal:
        choices = typing.get_args(annotation)
        if value not in choices:
            raise ConfigError(f"{key} must be one of {', '.join(map(str, choices))}; got {value!r}")
        return value
    if origin is tuple:
        if isinstance(value, str):
            value = [v for v in value.replace("[", "").replace("]", "").split(",") if v.strip()]
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{key} must be a list, e.g. [128, 128, 128, 128]; got {value!r}")
        (item_type, _) = typing.get_args(annotation)
        return tuple(_coerce(v, item_type, key) for v in value)
    if origin in (typing.Union, types.UnionType):
        return value
    try:
        if annotation is bool:
            if isinstance(value, str):
                if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
                    raise ValueError
                return value.lower() in ("true", "1", "yes")
            return bool(value)
        if annotation is int:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError
            return int(value)
        if annotation is float:
            return float(value)
        if annotation is str:
            return str(value)
    except ValueError:
        raise ConfigError(f"{key} must be of type {annotation.__name__}; got {value!r}") from None
    return value


def from_dict(cls: type, values: dict[str, Any], where: str = "config") -> Any:
    """Build a config dataclass from a dict; unknown keys and wrong types are errors."""
    if not isinstance(values, dict):
        raise ConfigError(f"{where} must be a table/object of keys, got {type(values).__name__}")
    hints = typing.get_type_hints(cls)
    kwargs: dict[str, Any] = {}
    for key, value in values.items():
        if key not in hints:
            raise _unknown_key(key, list(hints), where)
        annotation = hints[key]
        if dataclasses.is_dataclass(annotation):
            kwargs[key] = from_dict(annotation, value, f"{where}.{key}" if where != "config" else key)
        else:
            kwargs[key] = _coerce(value, annotation, f"{where}.{key}")
    return cls(**kwargs)


def _is_original_format(values: dict[str, Any]) -> bool:
    """Flat keys, at least one of them the original project's and none a section: a misspelt
    key in such a file is reported as a misspelt original key, not as a missing section."""
    keys = set(values)
    return bool(keys & set(_ORIGINAL_KEYS)) and not keys & {"model", "data", "train", "preset"}


def _from_original(values: dict[str, Any]) -> dict[str, dict[str, Any]]:
    sections: dict[str, dict[str, Any]] = {"model": {}, "data": {}, "train": {}}
    for key, value in values.items():
        if key not in _ORIGINAL_KEYS:
            raise _unknown_key(key, list(_ORIGINAL_KEYS), "the original project's config.json")
        section, name, convert = _ORIGINAL_KEYS[key]
        sections[section][name] = convert(value)
    return sections


def run_config_from_dict(values: dict[str, Any], preset: str | None = None) -> RunConfig:
    """A RunConfig from sections {model, data, train} (each optional), an optional
    `preset = "NAME"` key naming a model preset, or the original project's flat keys."""
    values = dict(values)
    if _is_original_format(values):
        values = _from_original(values)
    preset = values.pop("preset", preset)
    model_values = dict(values.pop("model", {}))
    if preset is not None:
        if preset not in MODEL_PRESETS:
            raise _unknown_key(preset, list(MODEL_PRESETS), "model presets")
        model_values = {**to_dict(MODEL_PRESETS[preset]), **model_values}
    values["model"] = model_values
    return from_dict(RunConfig, values)


def load_config_file(path: str | Path) -> dict[str, Any]:
    """Parse a TOML or JSON config file into a plain dict."""
    path = Path(path)
    if not path.is_file():
        raise ConfigError(f"Config file not found: {path}")
    text = path.read_text(encoding="utf-8")
    try:
        if path.suffix.lower() == ".toml":
            return tomllib.loads(text)
        return parse_json(text)
    except RecursionError:  # tomllib on lists nested thousands deep
        raise ConfigError(f"Cannot parse {path}: lists or tables nested too deeply") from None
    except (tomllib.TOMLDecodeError, ValueError) as error:  # ValueError: bad or too deeply nested JSON
        raise ConfigError(f"Cannot parse {path}: {error}") from None


def apply_overrides(values: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply `section.key=value` strings (values parsed as JSON when possible)."""
    values = json.loads(json.dumps(values))
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"Override '{item}' must look like section.key=value, e.g. train.lr=1e-3")
        dotted, raw = item.split("=", 1)
        try:
            value = parse_json(raw)
        except ValueError:  # not JSON (or nested too deeply): the text itself
            value = raw
        parts = dotted.strip().split(".")
        if len(parts) == 1:  # a bare key: `preset=NAME`
            values[parts[0]] = value
            continue
        if len(parts) != 2 or parts[0] not in ("model", "data", "train"):
            raise ConfigError(f"Override '{dotted}' must name a section and a key: model.KEY, data.KEY or train.KEY")
        values.setdefault(parts[0], {})[parts[1]] = value
    return values


def load_run_config(path: str | Path | None = None, preset: str | None = None,
                    overrides: list[str] | None = None) -> RunConfig:
    """The resolved config: file (if any), then preset, then overrides."""
    values = load_config_file(path) if path else {}
    if _is_original_format(values):
        values = _from_original(values)
    if preset is not None:
        values["preset"] = preset
    return run_config_from_dict(apply_overrides(values, overrides or []))
