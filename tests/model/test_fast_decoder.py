"""FastDecoder's inference-only paths against its own differentiable path and the plain decoder.
(tests/inference/test_pipeline.py compares it with the plain decoder across presets.)"""

import pytest
import torch

from facevae.config import ModelConfig
from facevae.model.fast_decoder import FastDecoder, FoldedUp, RGBAsMatmulTail
from facevae.model.vae import Decoder
from support.models import randomise_batchnorm

CONFIGS = {
    "tf_same k=3": ModelConfig(image_size=16, channels=(8, 6), latent_dim=4),
    "tf_same k=5": ModelConfig(image_size=16, channels=(8, 6), latent_dim=4, kernel_size=5),
    "symmetric k=3": ModelConfig(image_size=16, channels=(8, 6), latent_dim=4, padding="symmetric"),
    "channels_first k=7": ModelConfig(image_size=32, channels=(5, 6, 7), latent_dim=3, kernel_size=7,
                                      flatten_order="channels_first", padding="symmetric"),
}


def _decoder(config: ModelConfig) -> Decoder:
    torch.manual_seed(0)
    return randomise_batchnorm(Decoder(config), affine=True).eval()


@pytest.mark.parametrize("name", CONFIGS)
def test_fp32_fused_inference_path_equals_the_differentiable_path_and_the_decoder(name: str):
    decoder = _decoder(CONFIGS[name])
    fast = FastDecoder(decoder, "fp32")
    assert isinstance(fast.tail, RGBAsMatmulTail)
    if torch.backends.mkldnn.is_available():
        assert all(module.fused for module in fast.modules() if isinstance(module, FoldedUp))
    latents = torch.randn(5, decoder.config.latent_dim)
    with torch.inference_mode():
        plain, fused = decoder(latents), fast(latents)
    differentiable = fast(latents.clone().requires_grad_(True))  # autograd: PyTorch's ordinary ops
    assert differentiable.requires_grad
    assert fused.shape == plain.shape == (5, 3, decoder.config.image_size, decoder.config.image_size)
    assert (fused - plain).abs().max() < 1e-6
    assert (differentiable.detach() - plain).abs().max() < 1e-6


def test_bf16_keeps_the_phase_split_tail_and_unfused_stages():
    fast = FastDecoder(_decoder(CONFIGS["tf_same k=3"]), "bf16")
    assert not isinstance(fast.tail, RGBAsMatmulTail)
    assert not any(module.fused for module in fast.modules() if isinstance(module, FoldedUp))


def test_unknown_precision_is_refused():
    with pytest.raises(ValueError, match="precision"):
        FastDecoder(_decoder(CONFIGS["tf_same k=3"]), "fp16")
