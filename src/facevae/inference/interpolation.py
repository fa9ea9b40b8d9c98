"""Paths between latent codes, for morphs: linear and spherical interpolation."""

from __future__ import annotations

import torch


def slerp(start: torch.Tensor, end: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Spherical interpolation: N x D codes, T weights -> N x T x D.

    Directions move along the great circle; the norm moves linearly from |start| to |end|,
    so equal-norm endpoints keep their norm (linear interpolation shrinks it mid-way, into
    the low-density centre of the Gaussian prior).
    """
    norm_a, norm_b = start.norm(dim=1, keepdim=True), end.norm(dim=1, keepdim=True)  # N x 1
    unit_a, unit_b = start / norm_a.clamp_min(1e-12), end / norm_b.clamp_min(1e-12)
    cos = (unit_a * unit_b).sum(1, keepdim=True).clamp(-1.0, 1.0)
    angle = torch.acos(cos)[:, :, None]  # N x 1 x 1
    t = t[None, :, None]  # 1 x T x 1
    sin = torch.sin(angle)
    nearly_parallel = sin.abs() < 1e-6
    weight_a = torch.where(nearly_parallel, 1 - t, torch.sin((1 - t) * angle) / sin.clamp_min(1e-12))
    weight_b = torch.where(nearly_parallel, t, torch.sin(t * angle) / sin.clamp_min(1e-12))
    direction = weight_a * unit_a[:, None] + weight_b * unit_b[:, None]
    direction = direction / direction.norm(dim=2, keepdim=True).clamp_min(1e-12)
    return direction * ((1 - t) * norm_a[:, None] + t * norm_b[:, None])


def lerp(start: torch.Tensor, end: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """Linear interpolation: N x D codes, T weights -> N x T x D."""
    t = t[None, :, None]
    return (1 - t) * start[:, None] + t * end[:, None]
