"""Tiny models for tests: configurations, random weights, non-trivial batch-norm statistics."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch.nn.modules.batchnorm import _BatchNorm

from facevae.config import ModelConfig
from facevae.model.bundle import FaceModel, Preprocessing
from facevae.model.vae import Decoder, Encoder

# 32x32 images, three stages, a 16-d latent, the seed's conventions (symmetric padding,
# channels-first flatten, no activation on the encoder's heads).
TINY_MODEL = ModelConfig(
    image_size=32, channels=(8, 16, 16), latent_dim=16, leaky_slope=0.2, bn_eps=1e-5,
    padding="symmetric", flatten_order="channels_first", head_activation="none",
)

# The original's architecture at a tiny size: 4 stages of 8 channels, 32x32, latent 16,
# TF padding, Keras defaults and ReLU heads: exportable to .keras, quick to run.
SMALL_ORIGINAL = ModelConfig(image_size=32, channels=(8, 8, 8, 8), latent_dim=16, head_activation="relu")


def plain_decode(model: FaceModel, latents: torch.Tensor) -> torch.Tensor:
    """N x D codes through the model's own float32 decoder (not the pipeline's FastDecoder):
    what importers and exporters must reproduce. N x 3 x S x S in [0, 1]."""
    with torch.inference_mode():
        return model.decoder(latents.to(model.device, torch.float32))


def randomise_batchnorm(module: torch.nn.Module, generator: torch.Generator | None = None,
                        affine: bool = False) -> torch.nn.Module:
    """Non-trivial running statistics in every batch-norm layer of `module` (and, with
    affine=True, scales and shifts), so that eval mode normalises with more than the identity.
    Draws from `generator`, else from torch's global generator; returns `module`."""
    with torch.no_grad():
        for layer in module.modules():
            if not isinstance(layer, _BatchNorm):
                continue
            layer.running_mean.normal_(0, 0.1, generator=generator)
            layer.running_var.uniform_(0.5, 1.5, generator=generator)
            if affine:
                layer.weight.normal_(1.0, 0.2, generator=generator)
                layer.bias.normal_(0.0, 0.2, generator=generator)
    return module


def make_tiny_model(seed: int = 0, config: ModelConfig = TINY_MODEL) -> FaceModel:
    """Random initialisation with non-trivial batch-norm statistics, an encoder, and two
    attribute vectors; preprocessing at the model's own image size."""
    torch.manual_seed(seed)
    decoder, encoder = Decoder(config), Encoder(config)
    for module in (decoder, encoder):
        randomise_batchnorm(module)
    generator = torch.Generator().manual_seed(seed)
    attributes = {name: torch.randn(config.latent_dim, generator=generator) for name in ("Smiling", "Eyeglasses")}
    return FaceModel(config, decoder, encoder, attributes, {"Smiling": [5, 5], "Eyeglasses": [3, 7]},
                     preprocessing=Preprocessing(image_size=config.image_size),
                     provenance={"source": "tests: random initialisation"})


def small_model(config: ModelConfig = SMALL_ORIGINAL, seed: int = 0, encoder: bool = True) -> FaceModel:
    """Random weights in every tensor (not the initialisation's), non-trivial batch norm, two
    attribute vectors: for conversion tests, where default values could hide a swapped array."""
    generator = torch.Generator().manual_seed(seed)
    modules = [Decoder(config)] + ([Encoder(config)] if encoder else [])
    with torch.no_grad():
        for module in modules:
            for tensor in module.parameters():
                tensor.copy_(torch.randn(tensor.shape, generator=generator) * 0.3)
            randomise_batchnorm(module, generator, affine=True)
    attributes = {name: torch.randn(config.latent_dim, generator=generator) for name in ("Smiling", "Eyeglasses")}
    return FaceModel(config, modules[0], modules[1] if encoder else None, attributes, {"Smiling": [5, 5]},
                     provenance={"source": "tests: random weights"})


@contextmanager
def torch_threads(count: int) -> Iterator[None]:
    """torch's intra-op threads set to `count` inside, restored after (tiny models optimise
    faster on one thread, and far faster on a busy machine)."""
    before = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(before)
