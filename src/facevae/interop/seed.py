"""The seed's PyTorch port (`vae.pth`, or `encoder.pth` + `decoder.pth`) -> a bundle.

The seed saved `state_dict()`s of its `VAE_pt`, `Encoder_pt` and `Decoder_pt` modules:

    enc.conv1..conv4        Conv2d(3 or 128 -> 128, 3, stride 2, padding 1)
    enc.bn1..bn4            BatchNorm2d (eps 1e-5)
    enc.dense_mean          Linear(2048 -> 200), no activation
    enc.dense_log_var       Linear(2048 -> 200), no activation
    dec.dense1              Linear(200 -> 2048)
    dec.bn_dense            BatchNorm1d(2048)
    dec.convtr1..convtr4    ConvTranspose2d(128 -> 128, 3, stride 2, padding 1, output_padding 1)
    dec.bn1..bn4            BatchNorm2d
    dec.conv1               Conv2d(128 -> 3, 3, padding 1), then sigmoid

with PyTorch's defaults everywhere (LeakyReLU 0.01, symmetric padding, channels-first
flatten): exactly facevae's "seed" preset. `encoder.pth` / `decoder.pth` hold the same
names without the `enc.` / `dec.` prefix. Sizes are read from the weight shapes.

The seed's quirk: its decoder skips `bn_dense` when decoding a batch of one (a guard
against BatchNorm's training-mode error that also applies in eval mode). facevae always
applies it, so a single decoded face is the same as the same face in a batch; the seed's
own single-face output differs from both.
"""

from __future__ import annotations

import math
import pickle
import warnings
from pathlib import Path
from typing import Any

import torch

from ..config import MODEL_PRESETS, ModelConfig
from ..errors import UserError
from ..model.bundle import FaceModel, Preprocessing
from ..model.vae import Decoder, Encoder


class SeedFileError(UserError):
    """A file that is not a state dict of the seed's PyTorch port."""


def _reason(error: Exception) -> str:
    """The informative part of torch.load's error (it starts with advice to drop weights_only)."""
    text = str(error)
    if "WeightsUnpickler error:" in text:
        text = text.split("WeightsUnpickler error:", 1)[1].split("Check the documentation", 1)[0]
    text = " ".join(text.split())
    return text or type(error).__name__


def _read_state(path: str | Path) -> dict[str, torch.Tensor]:
    """A flat {name: tensor} from a `.pth` file, loaded with weights_only (no code runs)."""
    path = Path(path)
    if not path.is_file():
        raise SeedFileError(f"{path}: no such file")
    try:
        with warnings.catch_warnings():  # torch warns about pickle protocols it then refuses anyway
            warnings.simplefilter("ignore", UserWarning)
            data = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, AttributeError, OSError) as error:
        raise SeedFileError(
            f"{path} is not a plain PyTorch state dict ({_reason(error)}). facevae loads .pth files with "
            f"weights_only (tensors only, never code); expected the seed's vae.pth / encoder.pth / "
            f"decoder.pth written with torch.save(model.state_dict(), ...)"
        ) from None
    for wrapper in ("state_dict", "model_state_dict", "model"):  # common checkpoint shapes
        if isinstance(data, dict) and isinstance(data.get(wrapper), dict):
            data = data[wrapper]
    if not isinstance(data, dict) or not data or not all(
            isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in data.items()):
        raise SeedFileError(f"{path} holds a {type(data).__name__}, not a state dict (names -> tensors) "
                            f"of the seed's Encoder_pt / Decoder_pt / VAE_pt")
    return {k.removeprefix("module."): v for k, v in data.items()}


def _take(state: dict[str, torch.Tensor], prefix: str, file: Path) -> dict[str, torch.Tensor]:
    part = {k.removeprefix(prefix): v for k, v in state.items() if k.startswith(prefix)}
    if not part:
        raise SeedFileError(f"{file} has no '{prefix}*' tensors (it has: {', '.join(sorted(state)[:8])}...)")
    return part


def _count(state: dict[str, torch.Tensor], layer: str) -> int:
    n = 0
    while f"{layer}{n + 1}.weight" in state:
        n += 1
    return n


def _require(state: dict[str, torch.Tensor], names: list[str], what: str, file: Path) -> None:
    missing = [n for n in names if n not in state]
    if missing:
        raise SeedFileError(f"{file} is not the seed's {what}: it lacks {', '.join(missing[:6])}"
                            + (" ..." if len(missing) > 6 else ""))


def _config(image_channels: int, channels: list[int], latent_dim: int, flat: int, kernel: int,
            file: Path) -> ModelConfig:
    side = math.isqrt(flat // channels[-1]) if flat % channels[-1] == 0 else 0
    if side < 1 or side * side * channels[-1] != flat:
        raise SeedFileError(f"{file}: the dense layer's {flat} features are not a square map of "
                            f"{channels[-1]} channels; not the seed's architecture")
    seed = MODEL_PRESETS["seed"]
    return ModelConfig(image_size=side * 2 ** len(channels), image_channels=image_channels, channels=tuple(channels),
                       latent_dim=latent_dim, kernel_size=kernel, leaky_slope=seed.leaky_slope, bn_eps=seed.bn_eps,
                       padding=seed.padding, flatten_order=seed.flatten_order, head_activation=seed.head_activation)


def decoder_from_seed(state: dict[str, torch.Tensor], file: Path) -> Decoder:
    stages = _count(state, "convtr")
    _require(state, ["dense1.weight", "dense1.bias", "bn_dense.weight", "conv1.weight", "convtr1.weight"],
             "decoder", file)
    # ConvTranspose2d weights are (in, out, k, k); stage i outputs convtr{i+1}'s out channels.
    outs = [state[f"convtr{i + 1}.weight"].shape[1] for i in range(stages)]
    dense = state["dense1.weight"].shape  # (flat, latent)
    config = _config(state["conv1.weight"].shape[0], list(reversed(outs)), dense[1], dense[0],
                     state["convtr1.weight"].shape[-1], file)
    names = {"dense1": "dense", "bn_dense": "dense_bn", "conv1": "to_rgb"}
    names.update({f"convtr{i + 1}": f"stages.{i}.conv" for i in range(stages)})
    names.update({f"bn{i + 1}": f"stages.{i}.bn" for i in range(stages)})
    decoder = Decoder(config)
    _load(decoder, state, names, file)
    return decoder


def encoder_from_seed(state: dict[str, torch.Tensor], file: Path) -> Encoder:
    stages = _count(state, "conv")
    _require(state, ["conv1.weight", "dense_mean.weight", "dense_log_var.weight"], "encoder", file)
    convs = [state[f"conv{i + 1}.weight"].shape for i in range(stages)]  # (out, in, k, k)
    mean = state["dense_mean.weight"].shape  # (latent, flat)
    config = _config(convs[0][1], [c[0] for c in convs], mean[0], mean[1], convs[0][-1], file)
    names = {"dense_mean": "mean", "dense_log_var": "log_var"}
    names.update({f"conv{i + 1}": f"stages.{i}.conv" for i in range(stages)})
    names.update({f"bn{i + 1}": f"stages.{i}.bn" for i in range(stages)})
    encoder = Encoder(config)
    _load(encoder, state, names, file)
    return encoder


def _load(module: torch.nn.Module, state: dict[str, torch.Tensor], names: dict[str, str], file: Path) -> None:
    """Rename seed layers to facevae modules and load, naming any missing, extra or misshapen tensor."""
    renamed: dict[str, torch.Tensor] = {}
    unknown = []
    for key, value in state.items():
        layer, _, leaf = key.rpartition(".")
        if layer not in names:
            unknown.append(key)
            continue
        renamed[f"{names[layer]}.{leaf}"] = value
    expected = module.state_dict()
    missing = [k for k in expected if k not in renamed and not k.endswith("num_batches_tracked")]
    wrong = [f"{k} {tuple(v.shape)} (expected {tuple(expected[k].shape)})"
             for k, v in renamed.items() if k in expected and v.shape != expected[k].shape]
    extra = unknown + [k for k in renamed if k not in expected]
    if missing or wrong or extra:
        details = "; ".join(filter(None, [f"missing {', '.join(missing)}" if missing else "",
                                          f"wrong shapes {', '.join(wrong)}" if wrong else "",
                                          f"unexpected {', '.join(extra)}" if extra else ""]))
        raise SeedFileError(f"{file} does not fit the seed's architecture ({details})")
    for key in expected:
        if key.endswith("num_batches_tracked") and key not in renamed:
            renamed[key] = expected[key]
    module.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in renamed.items()})


def import_seed(vae: str | Path | None = None, encoder: str | Path | None = None,
                decoder: str | Path | None = None, provenance: dict[str, Any] | None = None) -> FaceModel:
    """A FaceModel from the seed's `vae.pth`, or its `decoder.pth` (+ optional `encoder.pth`)."""
    sources: dict[str, str] = {}
    if vae is not None:
        if encoder is not None or decoder is not None:
            raise SeedFileError("Give either vae.pth or the encoder and decoder files, not both")
        file = Path(vae)
        state = _read_state(file)
        dec = decoder_from_seed(_take(state, "dec.", file), file)
        enc = encoder_from_seed(_take(state, "enc.", file), file)
        sources["vae"] = str(file)
    else:
        if decoder is None:
            raise SeedFileError("A model needs a decoder: give vae.pth, or decoder.pth as {option} (and encoder.pth)",
                                option="decoder")
        file = Path(decoder)
        state = _read_state(file)
        dec = decoder_from_seed(_take(state, "dec.", file) if any(k.startswith("dec.") for k in state) else state, file)
        sources["decoder"] = str(file)
        enc = None
        if encoder is not None:
            enc_file = Path(encoder)
            enc_state = _read_state(enc_file)
            if any(k.startswith("enc.") for k in enc_state):
                enc_state = _take(enc_state, "enc.", enc_file)
            enc = encoder_from_seed(enc_state, enc_file)
            sources["encoder"] = str(enc_file)
    if enc is not None and enc.config != dec.config:
        raise SeedFileError(f"The encoder and decoder have different sizes (encoder {enc.config}, "
                            f"decoder {dec.config})")
    info = {"source": "imported from the seed's PyTorch port (.pth state dicts)", "imported_files": sources,
            "note": "the seed's decoder skipped bn_dense for a batch of one; facevae always applies it"}
    return FaceModel(dec.config, dec, enc, {}, {}, Preprocessing(image_size=dec.config.image_size, crop="squash"),
                     {**info, **(provenance or {})})
