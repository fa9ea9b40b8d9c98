"""The VAE objective as pure functions returning named terms.

    loss = recon_weight * reconstruction + kl_weight * KL

- reconstruction: per-pixel mean squared (or absolute) error between images in [0, 1],
  averaged over every pixel, channel and image, as Keras's `MeanSquaredError` does.
- KL: KL(q(z|x) || N(0, I)) in nats, summed over the latent dimensions and averaged over
  the batch.

The original project's `beta` (2000) is `recon_weight`: it multiplies the reconstruction
term. It is NOT beta-VAE's beta, which weights the KL term. Both views describe the same
objective up to a constant factor; `beta_vae_equivalent` and `recon_weight_for_beta`
convert between them (see docs/training.md).
"""

from __future__ import annotations

from typing import Literal, NamedTuple

import torch


class VAELoss(NamedTuple):
    """The terms of one batch's loss; every field is a scalar tensor."""

    total: torch.Tensor  # recon_weight * recon + kl_weight * kl: what is minimised
    recon: torch.Tensor  # per-pixel error, unweighted
    kl: torch.Tensor  # nats per image, unweighted
    weighted_recon: torch.Tensor  # recon_weight * recon (the original's logged "reconstruction")
    weighted_kl: torch.Tensor  # kl_weight * kl


def reconstruction_loss(recon: torch.Tensor, target: torch.Tensor, kind: Literal["mse", "l1"] = "mse") -> torch.Tensor:
    """Mean over all N x C x H x W elements of the squared ("mse") or absolute ("l1") error.

    Computed in float32 even when the inputs are bf16, so the mean of ~10^6 small numbers
    does not lose precision.
    """
    diff = recon.float() - target.float()
    if kind == "mse":
        return diff.square().mean()
    if kind == "l1":
        return diff.abs().mean()
    raise ValueError(f"unknown reconstruction loss '{kind}'; use 'mse' or 'l1'")


def kl_divergence(mean: torch.Tensor, log_var: torch.Tensor) -> torch.Tensor:
    """KL(N(mean, exp(log_var)) || N(0, I)) for N x latent_dim inputs: summed over the latent
    dimensions, averaged over the batch. -0.5 * sum(1 + log_var - mean^2 - exp(log_var))."""
    mean, log_var = mean.float(), log_var.float()
    per_image = -0.5 * (1.0 + log_var - mean.square() - log_var.exp()).sum(dim=1)  # N
    return per_image.mean()


def kl_weight_at(step: int, kl_weight: float, warmup_steps: int) -> float:
    """KL warm-up: the weight ramps linearly from 0 at step 0 to `kl_weight` at
    `warmup_steps` (and stays there). warmup_steps = 0 turns the ramp off."""
    if warmup_steps <= 0:
        return kl_weight
    return kl_weight * min(1.0, step / warmup_steps)


def vae_loss(recon: torch.Tensor, target: torch.Tensor, mean: torch.Tensor, log_var: torch.Tensor, *,
             recon_weight: float = 2000.0, kl_weight: float = 1.0,
             recon_loss: Literal["mse", "l1"] = "mse") -> VAELoss:
    """The full objective with every term named. Defaults are the original's recipe."""
    recon_term = reconstruction_loss(recon, target, recon_loss)
    kl_term = kl_divergence(mean, log_var)
    weighted_recon, weighted_kl = recon_weight * recon_term, kl_weight * kl_term
    return VAELoss(weighted_recon + weighted_kl, recon_term, kl_term, weighted_recon, weighted_kl)


def beta_vae_equivalent(recon_weight: float, kl_weight: float = 1.0, num_pixels: int = 64 * 64 * 3) -> float:
    """The beta of a beta-VAE with a summed Gaussian reconstruction term that has the same
    minimiser: loss / (recon_weight / num_pixels) = sum-of-squares + beta * KL.

    The original (recon_weight 2000, 64 x 64 x 3 pixels) is a beta-VAE with beta = 6.14.
    """
    return kl_weight * num_pixels / recon_weight


def recon_weight_for_beta(beta: float, num_pixels: int = 64 * 64 * 3) -> float:
    """The recon_weight (with kl_weight 1) that trains like a beta-VAE with this beta."""
    if beta <= 0:
        raise ValueError("beta must be positive")
    return num_pixels / beta


__all__ = ["VAELoss", "reconstruction_loss", "kl_divergence", "kl_weight_at", "vae_loss",
           "beta_vae_equivalent", "recon_weight_for_beta"]
