"""Reconstruction numbers against their formulas on inputs with known answers."""

from __future__ import annotations

import math

import numpy as np

from facevae.evaluation import image_metrics


def test_identical_images() -> None:
    images = np.random.default_rng(0).random((3, 3, 16, 16))
    assert np.all(image_metrics.mse(images, images) == 0)
    assert np.all(np.isinf(image_metrics.psnr(images, images)))
    np.testing.assert_allclose(image_metrics.ssim(images, images), 1.0)


def test_constant_offset_has_the_formula_psnr() -> None:
    references = np.full((2, 3, 16, 16), 0.4)
    images = references + 0.1  # MSE 0.01 -> PSNR 10 log10(1 / 0.01) = 20 dB
    np.testing.assert_allclose(image_metrics.mse(images, references), 0.01)
    np.testing.assert_allclose(image_metrics.psnr(images, references), 20.0)


def test_gaussian_noise_psnr_and_ssim() -> None:
    rng = np.random.default_rng(1)
    references = rng.uniform(0.3, 0.7, (4, 3, 32, 32))
    sigma = 0.05
    noisy = references + rng.normal(0, sigma, references.shape)
    psnr = image_metrics.psnr(noisy, references)
    np.testing.assert_allclose(psnr, 10 * math.log10(1 / sigma**2), atol=0.3)  # 26.0 dB
    ssim = image_metrics.ssim(noisy, references)
    assert np.all((ssim > 0) & (ssim < 0.99))
    much_noisier = references + rng.normal(0, 4 * sigma, references.shape)
    assert np.all(image_metrics.ssim(much_noisier, references) < ssim)


def test_kl_divergence_formula() -> None:
    zeros = np.zeros((2, 8))
    np.testing.assert_allclose(image_metrics.kl_divergence(zeros, zeros), 0.0)  # the prior itself
    np.testing.assert_allclose(image_metrics.kl_divergence(np.ones((1, 8)), zeros), 4.0)  # 0.5 * sum(mean^2)
    log_var = np.full((1, 1), math.log(4.0))  # variance 4: 0.5 * (4 - 1 - ln 4)
    np.testing.assert_allclose(image_metrics.kl_divergence(np.zeros((1, 1)), log_var), 0.5 * (3 - math.log(4)))
