"""The bundle: the one inference artifact (never a training checkpoint).

A bundle is a folder:

    config.json               format, model config, preprocessing, attribute names and
                              counts, provenance (source, licence, author, versions)
    decoder.safetensors       required
    encoder.safetensors       optional: without it, reconstruction needs optimisation
    attributes.safetensors    optional: one latent_dim vector per attribute name

No pickle anywhere: weights are safetensors, metadata is JSON. `load_bundle` checks every
tensor's shape against the config and that attribute vectors match the latent size.
"""

from __future__ import annotations

import datetime as _dt
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from .. import __version__
from ..atomic import staged_dir
from ..config import ConfigError, ModelConfig, from_dict, to_dict
from ..errors import UserError
from ..model.vae import Decoder, Encoder

BUNDLE_FORMAT = "facevae-bundle"
BUNDLE_VERSION = 1


class BundleError(UserError):
    """A bundle that cannot be loaded: the message names the file and the fix."""


class EncoderMissingError(BundleError):
    """The bundle has no encoder, so images cannot be encoded directly."""


@dataclass
class Preprocessing:
    """How photos become model inputs; must match how the training cache was made."""

    image_size: int = 64
    crop: str = "squash"  # "squash" (full 178x218 frame resized) or "center"
    crop_size: int = 148  # side of the centred square for crop="center"


@dataclass
class FaceModel:
    """A loaded bundle: decoder, optional encoder, attribute vectors, metadata.

    encode(images N x 3 x H x W in [0, 1]) -> (mean, log_var); decode(latents) -> images.
    """

    config: ModelConfig
    decoder: Decoder
    encoder: Encoder | None = None
    attributes: dict[str, torch.Tensor] = field(default_factory=dict)  # name -> latent_dim
    attribute_counts: dict[str, list[int]] = field(default_factory=dict)  # name -> [with, without]
    preprocessing: Preprocessing | None = None  # None: squash to the model's image size
    provenance: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None

    def __post_init__(self) -> None:
        if self.preprocessing is None:
            self.preprocessing = Preprocessing(image_size=self.config.image_size)
        if self.preprocessing.image_size != self.config.image_size:
            raise BundleError(
                f"The preprocessing makes {self.preprocessing.image_size}px images but the model takes "
                f"{self.config.image_size}px: set preprocessing.image_size to {self.config.image_size}"
            )
        self.decoder.eval()
        if self.encoder is not None:
            self.encoder.eval()

    @property
    def device(self) -> torch.device:
        return next(self.decoder.parameters()).device

    @property
    def latent_dim(self) -> int:
        return self.config.latent_dim

    @property
    def has_encoder(self) -> bool:
        return self.encoder is not None

    def to(self, device: str | torch.device) -> "FaceModel":
        self.decoder.to(device)
        if self.encoder is not None:
            self.encoder.to(device)
        self.attributes = {k: v.to(device) for k, v in self.attributes.items()}
        return self

    @torch.inference_mode()
    def encode(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.encoder is None:
            raise EncoderMissingError(
                "This model has no encoder, so it cannot encode images directly. Use the "
                "optimisation-based inversion (`facevae reconstruct --invert`, `refine_steps`) or a "
                "bundle with an encoder (a facevae training run, or `facevae import-keras encoder.keras`)"
            )
        return self.encoder(images.to(self.device, torch.float32))

    @torch.inference_mode()
    def decode(self, latents: torch.Tensor) -> torch.Tensor:
        return self.decoder(latents.to(self.device, torch.float32))


def _bundle_config(model: FaceModel) -> dict[str, Any]:
    return {
        "format": BUNDLE_FORMAT,
        "format_version": BUNDLE_VERSION,
        "model": to_dict(model.config),
        "preprocessing": to_dict(model.preprocessing),
        "has_encoder": model.encoder is not None,
        "attributes": {"names": list(model.attributes), "counts": model.attribute_counts},
        "provenance": {
            **model.provenance,
            "facevae_version": __version__,
            "torch_version": torch.__version__.split("+")[0],
            "saved_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        },
    }


def _state(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}


def save_bundle(model: FaceModel, path: str | Path) -> Path:
    """Write a bundle folder atomically (a temporary sibling renamed into place)."""
    path = Path(path)
    with staged_dir(path) as tmp:
        save_file(_state(model.decoder), tmp / "decoder.safetensors")
        if model.encoder is not None:
            save_file(_state(model.encoder), tmp / "encoder.safetensors")
        if model.attributes:
            vectors = {k: v.detach().cpu().float().contiguous() for k, v in model.attributes.items()}
            save_file(vectors, tmp / "attributes.safetensors")
        (tmp / "config.json").write_text(json.dumps(_bundle_config(model), indent=2), encoding="utf-8")
    model.path = path
    return path


def is_bundle(path: str | Path) -> bool:
    config = Path(path) / "config.json"
    if not config.is_file():
        return False
    try:
        return json.loads(config.read_text()).get("format") == BUNDLE_FORMAT
    except (OSError, json.JSONDecodeError):
        return False


def _load_weights(module: torch.nn.Module, file: Path) -> None:
    """Load a safetensors file into a module, naming every missing, extra or misshapen tensor."""
    try:
        state = load_file(file)
    except Exception as error:  # safetensors raises its own error types
        raise BundleError(f"{file} is not a readable safetensors file ({error}); copy it again") from None
    expected = module.state_dict()
    missing = sorted(set(expected) - set(state))
    extra = sorted(set(state) - set(expected))
    wrong = [f"{k}: file {tuple(state[k].shape)}, config {tuple(v.shape)}"
             for k, v in expected.items() if k in state and state[k].shape != v.shape]
    if missing or extra or wrong:
        details = "; ".join(filter(None, [
            f"missing {', '.join(missing)}" if missing else "",
            f"unexpected {', '.join(extra)}" if extra else "",
            f"wrong shapes: {', '.join(wrong)}" if wrong else "",
        ]))
        raise BundleError(f"{file} does not match the model config in config.json ({details})")
    module.load_state_dict(state)


def load_bundle(path: str | Path, device: str | torch.device = "cpu") -> FaceModel:
    """Load a bundle folder, checking shapes and attribute sizes."""
    path = Path(path)
    if not is_bundle(path):
        raise BundleError(f"{path} is not a facevae bundle (no config.json with format '{BUNDLE_FORMAT}')")
    meta = json.loads((path / "config.json").read_text())
    if meta.get("format_version", 0) > BUNDLE_VERSION:
        raise BundleError(f"{path} uses bundle format {meta['format_version']}; upgrade facevae to read it")
    try:
        config = from_dict(ModelConfig, meta["model"], "model")
        preprocessing = Preprocessing(**meta.get("preprocessing", {}))
    except (ConfigError, TypeError, KeyError) as error:
        raise BundleError(f"{path}/config.json has an invalid model section: {error}") from None
    decoder = Decoder(config)
    _load_weights(decoder, path / "decoder.safetensors")
    encoder = None
    if (path / "encoder.safetensors").is_file():
        encoder = Encoder(config)
        _load_weights(encoder, path / "encoder.safetensors")
    elif meta.get("has_encoder"):
        raise BundleError(f"{path}/config.json says the bundle has an encoder but encoder.safetensors is missing")
    attributes: dict[str, torch.Tensor] = {}
    names = meta.get("attributes", {}).get("names", [])
    if names:
        file = path / "attributes.safetensors"
        if not file.is_file():
            raise BundleError(f"{path}/config.json lists attributes but {file.name} is missing")
        vectors = load_file(file)
        for name in names:
            if name not in vectors:
                raise BundleError(f"{file} lacks the vector for attribute '{name}' listed in config.json")
            if tuple(vectors[name].shape) != (config.latent_dim,):
                raise BundleError(f"Attribute vector '{name}' in {file} has shape {tuple(vectors[name].shape)}, "
                                  f"but the model's latent size is {config.latent_dim}")
            attributes[name] = vectors[name].float()
    model = FaceModel(config, decoder, encoder, attributes, meta.get("attributes", {}).get("counts", {}),
                      preprocessing, meta.get("provenance", {}), path)
    return model.to(device)
