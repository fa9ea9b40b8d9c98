"""Write a bundle as the original TensorFlow/Keras project's files.

    OUT/model_weights/decoder.keras
    OUT/model_weights/encoder.keras                      when the bundle has an encoder
    OUT/model_weights/vae.keras                          when the bundle has an encoder
    OUT/attributes_embedings/attributes_embedings.json   when the bundle has attribute vectors
    OUT/config/config.json                               the original's config keys

Copy OUT over a clone of the original project and its `gui.py` / `synthesis.py` use the
model: they build `VAE(...)` from config/config.json and call `load_weights("vae.keras")`.

The archives are written with zipfile and h5py directly (no Keras or TensorFlow needed), in
exactly the layout Keras 3 gives the original classes (checked against Keras 3.4.1's
decoder.keras and Keras 3.15's own saving): a stored zip of `metadata.json`, `config.json`
(module "variational_autoencoder", classes "Decoder", "Encoder", "VAE", with their
constructor arguments so `keras.models.load_model` works too) and `model.weights.h5`, whose
groups are the original's attribute names. Layers without weights (`activation`,
`flattening`, `layers/reshape`, `layers/sampler`) get empty groups, as Keras writes them.

Only models with the original's architecture can be exported: four stages of equal width,
3x3 kernels, RGB, TensorFlow 'same' padding, channels-last flatten, Keras's LeakyReLU 0.3
and BatchNormalization epsilon 1e-3 and, for the encoder, ReLU on both heads. Image size,
width and latent size may differ (the original's config.json carries them).
"""

from __future__ import annotations

import datetime as _dt
import io
import json
import zipfile
from pathlib import Path

import numpy as np
import torch

from .. import __version__
from ..atomic import staged_dir
from ..config import MODEL_PRESETS, ModelConfig
from ..errors import UserError
from ..model.bundle import FaceModel
from .keras_weights import decoder_layer_map, encoder_layer_map

KERAS_MODULE = "variational_autoencoder"
KERAS_LAYOUT_VERSION = "3.4.1"  # the Keras version that wrote the original's files
STAGES = 4


class KerasExportError(UserError):
    """A model the original project's classes cannot represent."""


def check_exportable(config: ModelConfig, with_encoder: bool) -> None:
    """Raise KerasExportError naming every setting the original architecture cannot express."""
    base = MODEL_PRESETS["original"]
    problems = []
    if len(config.channels) != STAGES or len(set(config.channels)) != 1:
        problems.append(f"channels {list(config.channels)} (the original has {STAGES} stages of one width)")
    for name in ("kernel_size", "image_channels", "padding", "flatten_order", "leaky_slope", "bn_eps"):
        if getattr(config, name) != getattr(base, name):
            problems.append(f"{name}={getattr(config, name)!r} (the original: {getattr(base, name)!r})")
    if with_encoder and config.head_activation != base.head_activation:
        problems.append(f"head_activation={config.head_activation!r} (the original: 'relu' on both heads)")
    if problems:
        raise KerasExportError(
            "This model cannot be written in the original Keras project's layout: "
            + "; ".join(problems)
            + ". Models of the 'original' preset export exactly (the default for new training, 'celeba64', has "
              "linear encoder heads, which the original's encoder cannot express); others can be exported to ONNX "
              "({option}; in Python facevae.interop.onnx)", option="format", value="onnx"
        )


def _keras_arrays(state: dict[str, torch.Tensor], rows: list[tuple[str, str, str]]) -> dict[str, list[np.ndarray]]:
    """facevae tensors -> {keras layer: [vars/0, vars/1, ...]} in Keras layouts."""
    layers: dict[str, list[np.ndarray]] = {}
    for kind, keras_name, ours in rows:
        if kind == "dense":  # Linear (out, in) -> Dense (in, out)
            arrays = [state[f"{ours}.weight"].T, state[f"{ours}.bias"]]
        elif kind == "conv":  # (out, in, k, k) / (in, out, k, k) -> (k, k, in, out) / (k, k, out, in)
            arrays = [state[f"{ours}.weight"].permute(2, 3, 1, 0), state[f"{ours}.bias"]]
        else:  # gamma, beta, moving mean, moving variance
            arrays = [state[f"{ours}.{n}"] for n in ("weight", "bias", "running_mean", "running_var")]
        layers[keras_name] = [np.ascontiguousarray(a.detach().cpu().numpy(), dtype=np.float32) for a in arrays]
    return layers


def _write_layers(root, layers: dict[str, list[np.ndarray]], empty: list[str]) -> None:
    for name, arrays in layers.items():
        group = root.create_group(f"{name}/vars")
        for i, array in enumerate(arrays):
            group.create_dataset(str(i), data=array)
    for name in empty:  # layers without weights: Keras writes an empty vars group for each
        root.create_group(f"{name}/vars")
    root.create_group("vars")  # the model's own variables (none)


def _decoder_groups(model: FaceModel) -> tuple[dict[str, list[np.ndarray]], list[str]]:
    state = {k: v for k, v in model.decoder.state_dict().items()}
    return _keras_arrays(state, decoder_layer_map(STAGES)), ["activation", "layers/reshape"]


def _encoder_groups(model: FaceModel) -> tuple[dict[str, list[np.ndarray]], list[str]]:
    state = {k: v for k, v in model.encoder.state_dict().items()}
    return _keras_arrays(state, encoder_layer_map(STAGES)), ["activation", "flattening", "layers/sampler"]


def _dtype() -> dict:
    return {"module": "keras", "class_name": "DTypePolicy", "config": {"name": "float32"}, "registered_name": None}


def _archive(path: Path, class_name: str, name: str, arguments: dict, build_shape: list | None, fill) -> None:
    """Write one `.keras` zip atomically; fill(h5 root group) writes the weights."""
    import h5py

    config = {"module": KERAS_MODULE, "class_name": class_name,
              "config": {"name": name, "trainable": True, "dtype": _dtype(), **arguments},
              "registered_name": class_name}
    if build_shape is not None:
        config["build_config"] = {"input_shape": build_shape}
    metadata = {"keras_version": KERAS_LAYOUT_VERSION,
                "date_saved": _dt.datetime.now().strftime("%Y-%m-%d@%H:%M:%S"),
                "written_by": f"facevae {__version__}"}
    weights = io.BytesIO()
    with h5py.File(weights, "w") as h5:
        fill(h5)
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:  # inside export_keras's staging folder
        archive.writestr("metadata.json", json.dumps(metadata))
        archive.writestr("config.json", json.dumps(config))
        archive.writestr("model.weights.h5", weights.getvalue())


def original_config(config: ModelConfig) -> dict:
    """The original project's config/config.json for this model (training keys at its defaults)."""
    return {"embedding_size": config.latent_dim, "num_channels": config.channels[0], "beta": 2000,
            "input_img_size": config.image_size, "batch_size": 128, "lr": 0.0005, "max_epoch": 12,
            "dataset_dir": "data/celeba", "model_save_path": "model_weights/"}


def export_keras(model: FaceModel, out: str | Path) -> Path:
    """Write the original project's files for `model` into the folder `out` (atomically)."""
    config = model.config
    check_exportable(config, model.has_encoder)
    side, width, latent = config.image_size, config.channels[0], config.latent_dim
    decoder_args = {"shape_before_flattening": [config.bottom_size, config.bottom_size, width], "num_channels": width}
    encoder_args = {"embedding_size": latent, "num_channels": width}
    out = Path(out)
    with staged_dir(out) as tmp:
        weights_dir = tmp / "model_weights"
        weights_dir.mkdir()
        dec_layers, dec_empty = _decoder_groups(model)
        _archive(weights_dir / "decoder.keras", "Decoder", "decoder", decoder_args, [None, latent],
                 lambda h5: _write_layers(h5, dec_layers, dec_empty))
        if model.has_encoder:
            enc_layers, enc_empty = _encoder_groups(model)
            _archive(weights_dir / "encoder.keras", "Encoder", "encoder", encoder_args, [None, side, side, 3],
                     lambda h5: _write_layers(h5, enc_layers, enc_empty))

            def fill_vae(h5) -> None:
                _write_layers(h5.create_group("enc"), enc_layers, enc_empty)
                _write_layers(h5.create_group("dec"), dec_layers, dec_empty)
                h5.create_group("vars")  # the VAE's own variables (none)

            vae_args = {"input_img_size": side, "embedding_size": latent, "num_channels": width, "beta": 2000}
            _archive(weights_dir / "vae.keras", "VAE", "vae", vae_args, None, fill_vae)
        if model.attributes:
            (tmp / "attributes_embedings").mkdir()
            vectors = {name: [float(x) for x in v.detach().cpu().float()] for name, v in model.attributes.items()}
            (tmp / "attributes_embedings" / "attributes_embedings.json").write_text(json.dumps(vectors), "utf-8")
        (tmp / "config").mkdir()
        (tmp / "config" / "config.json").write_text(json.dumps(original_config(config), indent=4) + "\n", "utf-8")
    return out
