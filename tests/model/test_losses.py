import math

import numpy as np
import pytest
import torch

from facevae.model.losses import (
    beta_vae_equivalent,
    kl_divergence,
    kl_weight_at,
    recon_weight_for_beta,
    reconstruction_loss,
    vae_loss,
)


def test_mse_is_the_mean_over_every_pixel_like_keras() -> None:
    rng = np.random.default_rng(0)
    target, recon = rng.random((2, 3, 4, 5)), rng.random((2, 3, 4, 5))
    # Keras's MeanSquaredError on NHWC: mean over channels, then over everything else.
    keras = ((recon.transpose(0, 2, 3, 1) - target.transpose(0, 2, 3, 1)) ** 2).mean(axis=-1).mean()
    assert reconstruction_loss(torch.tensor(recon), torch.tensor(target)).item() == pytest.approx(keras, rel=1e-6)


def test_l1_by_hand() -> None:
    recon, target = torch.tensor([[0.0, 0.5], [1.0, 0.25]]), torch.tensor([[1.0, 0.5], [0.0, 0.75]])
    assert reconstruction_loss(recon, target, "l1").item() == pytest.approx((1 + 0 + 1 + 0.5) / 4)
    with pytest.raises(ValueError, match="unknown reconstruction loss"):
        reconstruction_loss(recon, target, "huber")  # type: ignore[arg-type]


def test_kl_by_hand_and_against_torch_distributions() -> None:
    mean = torch.tensor([[1.0, 0.0], [0.0, 0.0]])
    log_var = torch.tensor([[0.0, math.log(2.0)], [0.0, 0.0]])
    # image 1: -0.5 * [(1 + 0 - 1 - 1) + (1 + ln 2 - 0 - 2)] = 1 - ln(2) / 2; image 2: 0
    assert kl_divergence(mean, log_var).item() == pytest.approx((1 - math.log(2) / 2) / 2, rel=1e-6)
    rng = torch.Generator().manual_seed(0)
    mean, log_var = torch.randn(6, 5, generator=rng), torch.randn(6, 5, generator=rng)
    reference = torch.distributions.kl_divergence(torch.distributions.Normal(mean, (0.5 * log_var).exp()),
                                                  torch.distributions.Normal(0.0, 1.0)).sum(1).mean()
    assert kl_divergence(mean, log_var).item() == pytest.approx(reference.item(), rel=1e-5)


def test_total_is_recon_weight_times_recon_plus_kl_weight_times_kl() -> None:
    recon, target = torch.full((2, 3, 2, 2), 0.5), torch.zeros(2, 3, 2, 2)  # MSE 0.25
    mean, log_var = torch.ones(2, 4), torch.zeros(2, 4)  # KL 0.5 * 4 = 2 per image
    terms = vae_loss(recon, target, mean, log_var, recon_weight=2000.0, kl_weight=0.5)
    assert terms.recon.item() == pytest.approx(0.25)
    assert terms.kl.item() == pytest.approx(2.0)
    assert terms.weighted_recon.item() == pytest.approx(500.0)
    assert terms.weighted_kl.item() == pytest.approx(1.0)
    assert terms.total.item() == pytest.approx(501.0)


def test_bf16_inputs_are_reduced_in_float32() -> None:
    recon = torch.full((4, 3, 64, 64), 0.3, dtype=torch.bfloat16)
    terms = vae_loss(recon, torch.zeros(4, 3, 64, 64), torch.zeros(4, 8, dtype=torch.bfloat16),
                     torch.zeros(4, 8, dtype=torch.bfloat16))
    assert terms.total.dtype == torch.float32
    assert terms.recon.item() == pytest.approx(recon[0, 0, 0, 0].float().item() ** 2, rel=1e-6)


def test_kl_warmup_ramps_linearly() -> None:
    assert kl_weight_at(0, 1.0, 100) == 0.0
    assert kl_weight_at(50, 1.0, 100) == pytest.approx(0.5)
    assert kl_weight_at(100, 2.0, 100) == 2.0
    assert kl_weight_at(10_000, 2.0, 100) == 2.0
    assert kl_weight_at(0, 3.0, 0) == 3.0


def test_beta_vae_view_of_the_original_recipe() -> None:
    # 2000 x mean over 64*64*3 pixels + KL  ==  (2000 / 12288) x (sum of squares + 6.144 x KL)
    assert beta_vae_equivalent(2000.0) == pytest.approx(12288 / 2000)
    assert recon_weight_for_beta(beta_vae_equivalent(2000.0)) == pytest.approx(2000.0)
    recon, target = torch.rand(3, 3, 64, 64), torch.rand(3, 3, 64, 64)
    mean, log_var = torch.randn(3, 8), torch.randn(3, 8)
    original = vae_loss(recon, target, mean, log_var).total
    sum_of_squares = ((recon - target) ** 2).sum() / 3
    beta_form = sum_of_squares + beta_vae_equivalent(2000.0) * kl_divergence(mean, log_var)
    assert original.item() == pytest.approx((2000 / 12288) * beta_form.item(), rel=1e-5)
