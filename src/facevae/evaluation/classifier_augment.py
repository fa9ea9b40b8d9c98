"""Training augmentation for the attribute classifier: what makes its gradients point at
visible features rather than at pixel patterns no person would see.

    images = augment(images, Augmentation(shift=3, blur=0.5, noise=0.06), generator)

Each image of a batch (B x 3 x S x S in [0, 1]) gets, independently and reproducibly from
the generator:

- a small random affine move (translation up to `shift` pixels, scale 1 +- 5%, rotation
  +- 5 degrees; borders repeat the edge), so no single pixel position decides an attribute;
- with probability `blur`, a random mix with a blurred copy (half resolution), so the
  blurry faces a VAE decodes look like training data rather than a new domain;
- Gaussian noise of a random level in [0, noise], so the decision cannot hang on tiny
  perturbations: the classifier's input gradient, which guided edits follow, is smoothed.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..config import ConfigError

MAX_SCALE, MAX_DEGREES = 0.05, 5.0


@dataclass(frozen=True)
class Augmentation:
    """Strengths; all zero switches augmentation off."""

    shift: float = 0.0  # pixels of random translation
    blur: float = 0.0  # share of images mixed with a blurred copy
    noise: float = 0.0  # largest noise standard deviation, in [0, 1] pixel units

    def __post_init__(self) -> None:
        if self.shift < 0 or not 0 <= self.blur <= 1 or not 0 <= self.noise <= 0.5:
            raise ConfigError(f"augmentation needs shift >= 0, blur in [0, 1] and noise in [0, 0.5]; got {self}")

    @property
    def enabled(self) -> bool:
        return self.shift > 0 or self.blur > 0 or self.noise > 0


def augment(images: torch.Tensor, augmentation: Augmentation, generator: torch.Generator) -> torch.Tensor:
    """B x 3 x S x S in [0, 1] -> augmented copy, same shape; random numbers from `generator` (CPU)."""
    if not augmentation.enabled:
        return images
    count, size = images.shape[0], images.shape[-1]
    uniform = torch.rand(count, 6, generator=generator).to(images.device)  # B x 6 draws in [0, 1)
    images = images.float()
    if augmentation.shift > 0:
        images = _affine(images, uniform[:, :4], augmentation.shift / size * 2)
    if augmentation.blur > 0:
        chosen = (uniform[:, 4] < augmentation.blur).float() * uniform[:, 4] / augmentation.blur  # B mix weights
        images = torch.lerp(images, _blur(images), chosen.view(-1, 1, 1, 1))
    if augmentation.noise > 0:
        sigma = uniform[:, 5].view(-1, 1, 1, 1) * augmentation.noise
        noise = torch.randn(images.shape, generator=generator).to(images.device)
        images = (images + sigma * noise).clamp_(0.0, 1.0)
    return images


def _affine(images: torch.Tensor, draws: torch.Tensor, max_shift: float) -> torch.Tensor:
    """Random translation (max_shift in [-1, 1] grid units), scale and rotation per image."""
    centred = draws * 2 - 1  # B x 4 in [-1, 1)
    angle = centred[:, 0] * math.radians(MAX_DEGREES)
    scale = 1 + centred[:, 1] * MAX_SCALE
    cos, sin = torch.cos(angle) * scale, torch.sin(angle) * scale
    theta = torch.stack([torch.stack([cos, -sin, centred[:, 2] * max_shift], 1),
                         torch.stack([sin, cos, centred[:, 3] * max_shift], 1)], 1)  # B x 2 x 3
    grid = F.affine_grid(theta, list(images.shape), align_corners=False)
    return F.grid_sample(images, grid, mode="bilinear", padding_mode="border", align_corners=False)


def _blur(images: torch.Tensor) -> torch.Tensor:
    """A blurred copy of B x 3 x S x S images: 2 x 2 average pooling, then bilinear upsampling
    (about as soft as a VAE's decoded faces, and far cheaper on a CPU than a depthwise Gaussian)."""
    return F.interpolate(F.avg_pool2d(images, 2), size=images.shape[-2:], mode="bilinear", align_corners=False)
