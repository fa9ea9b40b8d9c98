"""The original TensorFlow/Keras project's files <-> facevae bundles.

Import: a `.keras` decoder, encoder or whole VAE (the original's `Decoder`, `Encoder`, `VAE`
classes) plus the attribute-vector JSON become a FaceModel with the "original"
architecture; the sizes (image size, channels, latent size, stages) are read from the
weight shapes, so a model trained at another size or width imports as well.

Export: see `facevae.interop.keras_export` (writes `.keras` archives in the original's layout).

No Keras or TensorFlow is needed for either direction: a `.keras` file is a zip of JSON and
HDF5, read and written with zipfile and h5py.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import torch

from ..config import MODEL_PRESETS, ModelConfig, Preprocessing
from ..files import parse_json
from ..model.bundle import FaceModel, check_model_size
from ..model.vae import Decoder, Encoder
from .keras_weights import (
    KerasFileError,
    decoder_state_from_h5,
    encoder_state_from_h5,
    read_keras_archive,
)

ORIGINAL_PROJECT = "https://github.com/farhad-dalirani/Controllable-Face-Generation-VAE"


def _shape(weights, name: str) -> tuple[int, ...] | None:
    item = weights.get(name)
    return tuple(item.shape) if item is not None and hasattr(item, "shape") else None


def _count_stages(weights, prefix: str, layer: str) -> int:
    stages = 0
    while _shape(weights, f"{prefix}{layer}{stages + 1}/vars/0") is not None:
        stages += 1
    return stages


def _config(image_channels: int, channels: list[int], latent_dim: int, flat: int, kernel: int,
            what: str) -> ModelConfig:
    """The original architecture at the sizes found in a file."""
    side = math.isqrt(flat // channels[-1]) if flat % channels[-1] == 0 else 0
    if side < 1 or side * side * channels[-1] != flat:
        raise KerasFileError(
            f"The {what}'s dense layer has {flat} features, which is not a square feature map of "
            f"{channels[-1]} channels; this is not the original project's architecture"
        )
    base = MODEL_PRESETS["original"]
    return ModelConfig(
        image_size=side * 2 ** len(channels), image_channels=image_channels, channels=tuple(channels),
        latent_dim=latent_dim, kernel_size=kernel, leaky_slope=base.leaky_slope, bn_eps=base.bn_eps,
        padding=base.padding, flatten_order=base.flatten_order, head_activation=base.head_activation,
    )


def decoder_config_from_h5(weights, prefix: str = "") -> ModelConfig:
    """Sizes of an original-style decoder: Dense (latent, b*b*c), Conv2DTranspose (k, k, out, in)."""
    stages = _count_stages(weights, prefix, "convtr")
    dense = _shape(weights, f"{prefix}dense1/vars/0")
    rgb = _shape(weights, f"{prefix}conv1/vars/0")
    if not stages or dense is None or rgb is None:
        raise KerasFileError("The weights lack the decoder layers dense1, convtr1.. and conv1 of the original project")
    kernels = [_shape(weights, f"{prefix}convtr{i + 1}/vars/0") for i in range(stages)]
    # Stage i upsamples to convtr{i+1}'s output width; facevae lists channels encoder-first.
    channels = [k[2] for k in reversed(kernels)]
    if kernels[0][3] != channels[-1]:
        raise KerasFileError(f"convtr1 takes {kernels[0][3]} channels but the model is {channels[-1]} wide "
                             f"at the bottom; the decoder's layers do not fit together")
    return _config(rgb[3], channels, dense[0], dense[1], kernels[0][0], "decoder")


def encoder_config_from_h5(weights, prefix: str = "") -> ModelConfig:
    """Sizes of an original-style encoder: Conv2D (k, k, in, out), Dense (b*b*c, latent)."""
    stages = _count_stages(weights, prefix, "conv")
    mean = _shape(weights, f"{prefix}dense_mean/vars/0")
    if not stages or mean is None:
        raise KerasFileError("The weights lack the encoder layers conv1.. and dense_mean of the original project")
    kernels = [_shape(weights, f"{prefix}conv{i + 1}/vars/0") for i in range(stages)]
    return _config(kernels[0][2], [k[3] for k in kernels], mean[1], mean[0], kernels[0][0], "encoder")


def _load_into(module: torch.nn.Module, state: dict[str, torch.Tensor], file: Path) -> None:
    expected = module.state_dict()
    wrong = [f"{k}: file {tuple(v.shape)}, expected {tuple(expected[k].shape)}"
             for k, v in state.items() if k in expected and v.shape != expected[k].shape]
    if wrong:
        raise KerasFileError(f"{file}: layer shapes do not fit together ({'; '.join(wrong)})")
    module.load_state_dict(state)


def detect_kind(config: dict[str, Any], weights) -> str:
    """'decoder', 'encoder' or 'vae', from the weight groups (the class name may differ)."""
    if "enc" in weights and "dec" in weights:
        return "vae"
    if "convtr1" in weights and "dense1" in weights:
        return "decoder"
    if "conv1" in weights and "dense_mean" in weights:
        return "encoder"
    raise KerasFileError(
        f"This .keras file holds a '{config.get('class_name')}' whose weights are not the original "
        f"project's Encoder, Decoder or VAE (top-level groups: {', '.join(sorted(weights)) or 'none'})"
    )


def read_attribute_vectors(path: str | Path, latent_dim: int) -> dict[str, torch.Tensor]:
    """The original's attributes_embedings.json: {attribute name: [latent_dim floats]}."""
    path = Path(path)
    try:
        data = parse_json(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise KerasFileError(f"{path}: no such attribute-vector file") from None
    except (UnicodeDecodeError, ValueError) as error:  # ValueError: bad or too deeply nested JSON
        raise KerasFileError(f"{path} is not JSON ({error}); expected the original's "
                             f"attributes_embedings.json") from None
    if not isinstance(data, dict) or not data:
        raise KerasFileError(f"{path} must map attribute names to lists of {latent_dim} numbers")
    vectors: dict[str, torch.Tensor] = {}
    for name, values in data.items():
        if not isinstance(values, list) or not all(isinstance(v, (int, float)) for v in values):
            raise KerasFileError(f"{path}: attribute '{name}' is not a list of numbers")
        if not all(math.isfinite(v) for v in values):
            raise KerasFileError(f"{path}: attribute '{name}' holds NaN or infinite values; the file is damaged")
        if len(values) != latent_dim:
            raise KerasFileError(
                f"{path}: attribute '{name}' has {len(values)} numbers but the model's latent size is "
                f"{latent_dim}; these vectors belong to another model"
            )
        vectors[name] = torch.tensor(values, dtype=torch.float32)
    return vectors


def import_keras(model_file: str | Path, encoder_file: str | Path | None = None,
                 attributes_file: str | Path | None = None,
                 provenance: dict[str, Any] | None = None) -> FaceModel:
    """A FaceModel from the original's `.keras` files.

    model_file is a decoder or a whole VAE; encoder_file (optional) an encoder, for a
    decoder-only model_file; attributes_file (optional) the attribute-vector JSON.
    """
    model_file = Path(model_file)
    config_json, weights = read_keras_archive(model_file)
    kind = detect_kind(config_json, weights)
    if kind == "encoder":
        raise KerasFileError(
            f"{model_file} is an encoder; a model needs a decoder. Pass the decoder (or the whole "
            f"vae.keras) first and the encoder as {{option}}", option="encoder"
        )
    prefix = "dec/" if kind == "vae" else ""
    config = decoder_config_from_h5(weights, prefix)
    check_model_size(config, str(model_file))  # HDF5 can declare huge arrays it never stores
    decoder = Decoder(config)
    _load_into(decoder, decoder_state_from_h5(weights, len(config.channels), prefix), model_file)
    sources = {kind: str(model_file)}

    encoder = None
    if kind == "vae" or encoder_file is not None:
        if kind == "vae":
            if encoder_file is not None:
                raise KerasFileError(f"{model_file} is a whole VAE that already has an encoder; leave out {{option}}",
                                     option="encoder")
            enc_file, enc_weights, enc_prefix = model_file, weights, "enc/"
        else:
            enc_file = Path(encoder_file)
            enc_config, enc_weights = read_keras_archive(enc_file)
            if detect_kind(enc_config, enc_weights) != "encoder":
                raise KerasFileError(f"{enc_file} is not an encoder (it holds a '{enc_config.get('class_name')}')")
            enc_prefix = ""
            sources["encoder"] = str(enc_file)
        enc_model_config = encoder_config_from_h5(enc_weights, enc_prefix)
        if enc_model_config != config:
            raise KerasFileError(
                f"The encoder in {enc_file} does not match the decoder in {model_file} "
                f"(encoder: {enc_model_config}; decoder: {config})"
            )
        encoder = Encoder(config)
        _load_into(encoder, encoder_state_from_h5(enc_weights, len(config.channels), enc_prefix), enc_file)

    attributes = {}
    if attributes_file is not None:
        attributes = read_attribute_vectors(attributes_file, config.latent_dim)
        sources["attributes"] = str(attributes_file)
    info = {"source": "imported from the original TensorFlow/Keras project's files",
            "original_project": ORIGINAL_PROJECT, "imported_files": sources}
    return FaceModel(config, decoder, encoder, attributes, {},
                     Preprocessing(image_size=config.image_size, crop="squash"),
                     {**info, **(provenance or {})})
