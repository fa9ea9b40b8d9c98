"""Discovered directions for models without labels: closed-form factorisation of the
decoder's first layer (SeFa, Shen & Zhou, CVPR 2021).

The decoder's first step is a dense layer and batch norm, y = gamma * (W z + b - mu) / sigma + beta,
so a move z -> z + t n changes the layer's output by t * A n with A = diag(gamma / sigma) W
(features x D). The unit directions n that change that output most are the top eigenvectors
of A^T A (D x D); everything after the layer only sees the output, so these are the codes'
most influential directions. (The paper uses W alone; folding the inference-time batch-norm
scale in measures the change the next layer actually receives.)

Deterministic: eigh of a symmetric matrix in float64, ordered by eigenvalue (largest first),
and each eigenvector's sign fixed so that its largest-magnitude entry is positive. The
directions are orthonormal, so strength 1 moves a code one prior standard deviation along it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch

from ..edit_choices import DEFAULT_STRENGTHS, strength_label
from ..errors import UserError
from ..model.vae import Decoder

if TYPE_CHECKING:
    from .pipeline import FacePipeline, SynthesisResult

DISCOVERED_PREFIX = "discovered_"


def first_layer_matrix(decoder: Decoder) -> torch.Tensor:
    """A = diag(gamma / sqrt(running_var + eps)) W: the first layer's linear map (features x D, float64)."""
    weight = decoder.dense.weight.detach().double()  # features x D
    bn = decoder.dense_bn
    scale = bn.weight.detach().double() / torch.sqrt(bn.running_var.detach().double() + bn.eps)  # features
    return scale[:, None] * weight


def sefa_directions(decoder: Decoder, count: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The top `count` directions (count x D, orthonormal rows, float32) and each one's share of
    the eigenvalues' total (count, float64, descending): how much of the first layer's
    response to a random move it carries."""
    matrix = first_layer_matrix(decoder)
    latent_dim = matrix.shape[1]
    if not 1 <= count <= latent_dim:
        raise UserError(f"the number of directions must be between 1 and the latent size {latent_dim}, got {count}")
    values, vectors = torch.linalg.eigh(matrix.T @ matrix)  # ascending; columns are eigenvectors
    order = torch.argsort(values, descending=True)[:count]
    directions = vectors[:, order].T  # count x D
    largest = directions.abs().argmax(dim=1)
    signs = torch.sign(directions[torch.arange(count), largest])
    return (directions * signs[:, None]).float(), values[order] / values.sum()


def parse_names(specs: list[str], count: int) -> dict[int, str]:
    """`INDEX=NAME` options -> {index: name}; indices within [0, count)."""
    names: dict[int, str] = {}
    for spec in specs:
        index, sep, name = spec.partition("=")
        if not sep or not index.strip().isdigit() or not name.strip():
            raise UserError(f"'{spec}' is not INDEX=NAME, e.g. 3=Pose")
        if int(index) >= count:
            raise UserError(f"'{spec}' names direction {int(index)}, but there are only {count} directions "
                            f"(0 to {count - 1})")
        names[int(index)] = name.strip()
    return names


def direction_names(count: int, names: dict[int, str]) -> list[str]:
    """discovered_0, discovered_1, ... with the user's names where given."""
    return [names.get(i, f"{DISCOVERED_PREFIX}{i}") for i in range(count)]


def direction_grid(pipeline: "FacePipeline", directions: torch.Tensor, names: list[str],
                   strengths: tuple[float, ...] = DEFAULT_STRENGTHS, seed: int = 0) -> "SynthesisResult":
    """One row per direction: the same face (from `seed`) moved by each strength along it."""
    base = pipeline.sample_latents(1, seed)[0]  # D
    steps = torch.tensor(strengths, dtype=torch.float32, device=base.device)  # S
    codes = base + steps[None, :, None] * directions.to(base.device)[:, None, :]  # K x S x D
    result = pipeline.decode(codes.reshape(-1, pipeline.latent_dim), columns=len(strengths))
    result.row_labels = list(names)
    result.column_labels = [strength_label(s) for s in strengths]
    result.marked_column = strengths.index(0) if 0 in strengths else None
    return result
