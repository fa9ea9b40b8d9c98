"""The bundle: the one inference artifact (never a training checkpoint).

A bundle is a folder:

    config.json               format, model config, preprocessing, attribute names and
                              counts, provenance (source, licence, author, versions)
    decoder.safetensors       required
    encoder.safetensors       optional: without it, reconstruction needs optimisation
    attributes.safetensors    optional: one latent_dim vector per attribute name

No pickle anywhere: weights are safetensors, metadata is JSON. `load_bundle` checks
config.json, the model's size and every tensor's shape (from the safetensors headers)
before it allocates anything, so a damaged or hostile bundle gets a BundleError, not a
traceback or an 8 GB allocation.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from .. import __version__
from ..atomic import staged_dir
from ..config import ConfigError, ModelConfig, Preprocessing, from_dict, to_dict
from ..errors import UserError
from ..files import read_json, require_regular_file
from .checks import check_dimensions, check_finite
from .vae import Decoder, Encoder

BUNDLE_FORMAT = "facevae-bundle"
BUNDLE_VERSION = 1
# Far above any face model facevae makes (its largest preset has about 20 million parameters),
# far below what would exhaust memory: 1 GiB of float32 weights.
MAX_PARAMETERS = 256 * 2**20


class BundleError(UserError):
    """A bundle that cannot be loaded: the message names the file and the fix."""


class EncoderMissingError(BundleError):
    """The bundle has no encoder, so images cannot be encoded directly."""


@dataclass
class FaceModel:
    """A loaded bundle: decoder, optional encoder, attribute vectors, metadata.

    encode(images N x 3 x H x W in [0, 1]) -> (mean, log_var). Codes are drawn for inference
    by FacePipeline.decode_tensor (its fast decoder), the one way to decode.
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

    def contents(self) -> str:
        """What the bundle holds, for messages: "decoder, encoder, 40 attribute vectors"."""
        parts = ["decoder"] + (["encoder"] if self.encoder is not None else [])
        return ", ".join(parts + ([f"{len(self.attributes)} attribute vectors"] if self.attributes else []))

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
                "This model has no encoder, so it cannot encode images directly. Encode by optimisation-based "
                "inversion ({option} above 0) or use a bundle with an encoder (a facevae training run, or the "
                "original's encoder.keras imported with `facevae import-keras`)", option="refine_steps")
        return self.encoder(images.to(self.device, torch.float32))


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
            "saved_at": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
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


def _read_json(file: Path) -> Any:
    try:
        return read_json(file)
    except UserError:
        return None


def is_bundle(path: str | Path) -> bool:
    meta = _read_json(Path(path) / "config.json") if (Path(path) / "config.json").is_file() else None
    return isinstance(meta, dict) and meta.get("format") == BUNDLE_FORMAT


def _section(meta: dict, key: str, kind: type, where: Path, default: Any) -> Any:
    """meta[key] if it has the expected JSON type, else a BundleError that names it."""
    value = meta.get(key, default)
    if not isinstance(value, kind) or isinstance(value, bool):  # JSON true is a Python int too
        raise BundleError(f"{where}: '{key}' must be a JSON {_JSON_NAMES[kind]}, not {type(value).__name__} "
                          f"({str(value)[:60]!r}); restore the file from the bundle's source or save the bundle again")
    return value


_JSON_NAMES = {dict: "object", list: "list", int: "whole number"}


def _read_bundle_meta(path: Path) -> tuple[ModelConfig, Preprocessing, dict]:
    """config.json checked section by section: (model config, preprocessing, the whole dict)."""
    file = path / "config.json"
    meta = read_json(file, BundleError, "restore the file from the bundle's source or save the bundle again") \
        if file.is_file() else None
    if not isinstance(meta, dict) or meta.get("format") != BUNDLE_FORMAT:
        raise BundleError(f"{path} is not a facevae bundle (no config.json with format '{BUNDLE_FORMAT}')")
    version = _section(meta, "format_version", int, file, 0)
    if version > BUNDLE_VERSION:
        raise BundleError(f"{path} uses bundle format {version}; upgrade facevae to read it")
    attributes = _section(meta, "attributes", dict, file, {})
    _section(attributes, "names", list, file, [])
    _section(attributes, "counts", dict, file, {})
    if not all(isinstance(name, str) for name in attributes.get("names", [])):
        raise BundleError(f"{file}: attributes.names must be a list of names (strings)")
    _section(meta, "provenance", dict, file, {})
    for name in ("model", "preprocessing"):
        check_dimensions(meta.get(name), f"{file} {name}", BundleError)
    try:
        config = from_dict(ModelConfig, _section(meta, "model", dict, file, None), "model")
        default = {"image_size": config.image_size}
        preprocessing = from_dict(Preprocessing, _section(meta, "preprocessing", dict, file, default), "preprocessing")
    except ConfigError as error:
        raise BundleError(f"{file} has an invalid section: {error}") from None
    return config, preprocessing, meta


def _expected_shapes(module_class: type[torch.nn.Module], config: ModelConfig) -> dict[str, tuple[int, ...]]:
    """Tensor shapes of a module built on the meta device: nothing is allocated."""
    with torch.device("meta"):
        return {k: tuple(v.shape) for k, v in module_class(config).state_dict().items()}


def check_model_size(config: ModelConfig, source: str) -> None:
    """Refuse a config too large to be a face model before anything is allocated for it;
    `source` names where the config came from."""
    count = sum(math.prod(shape) for cls in (Decoder, Encoder) for shape in _expected_shapes(cls, config).values())
    if count > MAX_PARAMETERS:
        raise BundleError(
            f"{source} describes a model of {count:,} parameters ({count * 4 / 2**30:.1f} GiB), more "
            f"than the {MAX_PARAMETERS:,} facevae loads (its largest preset has about 20 million). Check the "
            f"model section (latent_dim {config.latent_dim}, channels {list(config.channels)}): the file is "
            f"damaged or not meant for facevae"
        )


def _header_shapes(file: Path) -> dict[str, tuple[int, ...]]:
    """Names and shapes of the tensors in a safetensors file, read from its header only."""
    try:
        with safe_open(file, framework="pt") as handle:
            return {name: tuple(handle.get_slice(name).get_shape()) for name in handle.keys()}
    except Exception as error:  # noqa: BLE001 - safetensors raises its own error types
        raise BundleError(f"{file} is not a readable safetensors file ({error}); copy it again") from None


def _load_weights(module: torch.nn.Module, file: Path) -> None:
    """Load a safetensors file into a module, naming every missing, extra or misshapen tensor
    (checked on the file's header, before any tensor is read)."""
    found = _header_shapes(require_regular_file(file, BundleError))
    expected = {k: tuple(v.shape) for k, v in module.state_dict().items()}
    missing = sorted(set(expected) - set(found))
    extra = sorted(set(found) - set(expected))
    wrong = [f"{k}: file {found[k]}, config {v}" for k, v in expected.items() if k in found and found[k] != v]
    if missing or extra or wrong:
        details = "; ".join(filter(None, [
            f"missing {', '.join(missing)}" if missing else "",
            f"unexpected {', '.join(extra)}" if extra else "",
            f"wrong shapes: {', '.join(wrong)}" if wrong else "",
        ]))
        raise BundleError(f"{file} does not match the model config in config.json ({details})")
    try:
        state = load_file(file)
        module.load_state_dict(state)
    except Exception as error:  # noqa: BLE001 - a header that lies about its data
        raise BundleError(f"{file} is damaged ({error}); copy it again") from None
    check_finite(state, file, BundleError)


def _load_attributes(file: Path, names: list[str], latent_dim: int) -> dict[str, torch.Tensor]:
    """The attribute vectors listed in config.json, each checked to be latent_dim long."""
    if not file.is_file():
        raise BundleError(f"{file.parent}/config.json lists attributes but {file.name} is missing")
    shapes = _header_shapes(require_regular_file(file, BundleError))
    for name in names:
        if name not in shapes:
            raise BundleError(f"{file} lacks the vector for attribute '{name}' listed in config.json")
        if shapes[name] != (latent_dim,):
            raise BundleError(f"Attribute vector '{name}' in {file} has shape {shapes[name]}, "
                              f"but the model's latent size is {latent_dim}")
    try:
        with safe_open(file, framework="pt") as handle:
            vectors = {name: handle.get_tensor(name).float() for name in names}
    except Exception as error:  # noqa: BLE001
        raise BundleError(f"{file} is damaged ({error}); copy it again") from None
    check_finite(vectors, file, BundleError)
    return vectors


def load_bundle(path: str | Path, device: str | torch.device = "cpu") -> FaceModel:
    """Load a bundle folder. Everything is checked before it is allocated: config.json's
    sections, the model's size, then each file's tensor names and shapes from its header."""
    path = Path(path)
    config, preprocessing, meta = _read_bundle_meta(path)
    check_model_size(config, f"{path}/config.json")
    has_encoder = (path / "encoder.safetensors").is_file()
    if meta.get("has_encoder") and not has_encoder:
        raise BundleError(f"{path}/config.json says the bundle has an encoder but encoder.safetensors is missing")
    decoder = Decoder(config)
    _load_weights(decoder, path / "decoder.safetensors")
    encoder = None
    if has_encoder:
        encoder = Encoder(config)
        _load_weights(encoder, path / "encoder.safetensors")
    names = meta.get("attributes", {}).get("names", [])
    attributes = _load_attributes(path / "attributes.safetensors", names, config.latent_dim) if names else {}
    model = FaceModel(config, decoder, encoder, attributes, meta.get("attributes", {}).get("counts", {}),
                      preprocessing, meta.get("provenance", {}), path)
    return model.to(device)
