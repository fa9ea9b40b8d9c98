"""Reading the original project's `.keras` archives into facevae state dicts (no Keras needed).

A `.keras` file is a zip with `config.json`, `metadata.json` and `model.weights.h5`. In
the weights file each layer is an HDF5 group named after the attribute in the original
code (`dense1`, `bn_dense`, `convtr1`..`convtr4`, `bn1`..`bn4`, `conv1` for the decoder;
`conv1`..`conv4`, `bn1`..`bn4`, `dense_mean`, `dense_log_var` for the encoder) holding
`vars/0`, `vars/1`, ... A whole VAE nests them under `enc/` and `dec/`.

Kernel layouts: Dense (in, out) -> Linear (out, in); Conv2D (kh, kw, in, out) -> Conv2d
(out, in, kh, kw); Conv2DTranspose (kh, kw, out, in) -> ConvTranspose2d (in, out, kh, kw).
BatchNormalization stores gamma, beta, moving mean, moving variance.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import torch

from ..errors import UserError
from ..files import parse_json
from ..model.bundle import MAX_PARAMETERS


class KerasFileError(UserError):
    """A file that is not a readable `.keras` archive of the original project."""


# What an archive member may unpack to: the weights of the largest model facevae loads
# (model.bundle.MAX_PARAMETERS float32 numbers) plus room for HDF5's own structures.
MAX_MEMBER_BYTES = {"config.json": 16 * 2**20, "model.weights.h5": MAX_PARAMETERS * 4 + 64 * 2**20}


def _check_declared_sizes(archive: zipfile.ZipFile, path: Path) -> None:
    """Refuse members whose declared (uncompressed) size is beyond any facevae model, before
    reading them: a few MB of zip can unpack to gigabytes."""
    for name, limit in MAX_MEMBER_BYTES.items():
        size = archive.getinfo(name).file_size
        if size > limit:
            raise KerasFileError(
                f"{path}: its {name} unpacks to {size / 2**20:,.0f} MiB, more than any facevae model needs "
                f"({limit / 2**20:,.0f} MiB); the file is damaged or not the original project's model"
            )


def _dense(prefix: str, ours: str, group) -> dict[str, np.ndarray]:
    return {f"{ours}.weight": group[f"{prefix}/vars/0"][()].T, f"{ours}.bias": group[f"{prefix}/vars/1"][()]}


def _conv(prefix: str, ours: str, group) -> dict[str, np.ndarray]:
    # (kh, kw, a, b) -> (b, a, kh, kw): the same permutation serves Conv2D and Conv2DTranspose.
    return {f"{ours}.weight": group[f"{prefix}/vars/0"][()].transpose(3, 2, 0, 1),
            f"{ours}.bias": group[f"{prefix}/vars/1"][()]}


def _bn(prefix: str, ours: str, group) -> dict[str, np.ndarray]:
    names = ("weight", "bias", "running_mean", "running_var")
    return {f"{ours}.{name}": group[f"{prefix}/vars/{i}"][()] for i, name in enumerate(names)}


def decoder_layer_map(stages: int) -> list[tuple[str, str, str]]:
    """(kind, keras layer, facevae module) for the original decoder."""
    rows = [("dense", "dense1", "dense"), ("bn", "bn_dense", "dense_bn")]
    for i in range(stages):
        rows += [("conv", f"convtr{i + 1}", f"stages.{i}.conv"), ("bn", f"bn{i + 1}", f"stages.{i}.bn")]
    return rows + [("conv", "conv1", "to_rgb")]


def encoder_layer_map(stages: int) -> list[tuple[str, str, str]]:
    rows = []
    for i in range(stages):
        rows += [("conv", f"conv{i + 1}", f"stages.{i}.conv"), ("bn", f"bn{i + 1}", f"stages.{i}.bn")]
    return rows + [("dense", "dense_mean", "mean"), ("dense", "dense_log_var", "log_var")]


_READERS = {"dense": _dense, "conv": _conv, "bn": _bn}


def read_keras_archive(path: str | Path) -> tuple[dict, "h5py.File"]:  # noqa: F821
    """Open a `.keras` zip: (its config.json, the h5py File of its weights)."""
    import h5py

    path = Path(path)
    if not path.is_file():
        raise KerasFileError(f"{path}: no such file")
    try:
        archive = zipfile.ZipFile(path)
        names = set(archive.namelist())
        if not {"config.json", "model.weights.h5"} <= names:
            raise KerasFileError(
                f"{path} is a zip but not a Keras 3 archive: it lacks config.json or model.weights.h5 "
                f"(has: {', '.join(sorted(names)) or 'nothing'})"
            )
        _check_declared_sizes(archive, path)
        config = parse_json(archive.read("config.json"))
        weights = h5py.File(io.BytesIO(archive.read("model.weights.h5")), "r")
    except (zipfile.BadZipFile, EOFError, OSError, ValueError) as error:  # ValueError: bad JSON, bad text
        raise KerasFileError(
            f"{path} is not a readable .keras file ({error}); was the download interrupted? "
            f"Fetch it again or point to an intact copy"
        ) from None
    return config, weights


def _convert(group, rows: list[tuple[str, str, str]], prefix: str) -> dict[str, torch.Tensor]:
    state: dict[str, torch.Tensor] = {}
    for kind, keras_name, ours in rows:
        base = f"{prefix}{keras_name}" if prefix else keras_name
        try:
            arrays = _READERS[kind](base, ours, group)
        except KeyError:
            raise KerasFileError(f"The weights lack layer '{base}' expected in the original architecture") from None
        state.update({k: torch.from_numpy(np.ascontiguousarray(v, dtype=np.float32)) for k, v in arrays.items()})
    return state


def decoder_state_from_h5(weights, stages: int, prefix: str = "") -> dict[str, torch.Tensor]:
    """Decoder state dict (keys relative to facevae's Decoder)."""
    return _convert(weights, decoder_layer_map(stages), prefix)


def encoder_state_from_h5(weights, stages: int, prefix: str = "") -> dict[str, torch.Tensor]:
    """Encoder state dict (keys relative to facevae's Encoder)."""
    return _convert(weights, encoder_layer_map(stages), prefix)
