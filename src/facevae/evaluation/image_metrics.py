"""Per-image reconstruction numbers: MSE, PSNR, SSIM, and the encoder's KL divergence.

Images are N x 3 x H x W float arrays in [0, 1]; every function returns N values, so a
report can average them or look at the worst. SSIM is scikit-image's structural_similarity
(Wang et al. 2004: 7 x 7 uniform windows, colour channels averaged), not a re-implementation.
"""

from __future__ import annotations

import numpy as np

from ..errors import UserError


def mse(images: np.ndarray, references: np.ndarray) -> np.ndarray:
    """Mean squared error per image, pixels in [0, 1]."""
    difference = np.asarray(images, np.float64) - np.asarray(references, np.float64)
    return (difference**2).reshape(len(difference), -1).mean(1)


def psnr(images: np.ndarray, references: np.ndarray) -> np.ndarray:
    """Peak signal-to-noise ratio per image in dB: 10 log10(1 / MSE) for a peak of 1;
    infinite for identical images."""
    errors = mse(images, references)
    with np.errstate(divide="ignore"):
        return np.where(errors > 0, 10 * np.log10(1.0 / np.maximum(errors, 1e-300)), np.inf)


def ssim(images: np.ndarray, references: np.ndarray) -> np.ndarray:
    """Structural similarity per image (1 = identical), from scikit-image."""
    try:
        from skimage.metrics import structural_similarity
    except ImportError:
        raise UserError("SSIM comes from scikit-image, which is not installed: pip install 'facevae[eval]'") from None

    images, references = np.asarray(images, np.float64), np.asarray(references, np.float64)
    return np.array([structural_similarity(a.transpose(1, 2, 0), b.transpose(1, 2, 0), channel_axis=2,
                                           data_range=1.0) for a, b in zip(images, references)])


def kl_divergence(mean: np.ndarray, log_var: np.ndarray) -> np.ndarray:
    """KL(N(mean, exp(log_var)) || N(0, I)) per image, summed over the D latent dimensions (nats)."""
    mean, log_var = np.asarray(mean, np.float64), np.asarray(log_var, np.float64)
    return 0.5 * (mean**2 + np.exp(log_var) - 1.0 - log_var).sum(1)
