"""Small random models in the original project's architecture (4 equal stages, TF padding,
Keras defaults) for conversion tests: exportable to .keras, quick to run."""

from __future__ import annotations

import torch

from facevae.config import ModelConfig
from facevae.hub.bundle import FaceModel
from facevae.model.vae import Decoder, Encoder

# The original's architecture at a tiny size: 4 stages of 8 channels, 32x32, latent 16.
SMALL_ORIGINAL = ModelConfig(image_size=32, channels=(8, 8, 8, 8), latent_dim=16)


def small_model(config: ModelConfig = SMALL_ORIGINAL, seed: int = 0, encoder: bool = True) -> FaceModel:
    """Random weights, non-trivial batch-norm statistics, two attribute vectors."""
    generator = torch.Generator().manual_seed(seed)
    decoder = Decoder(config)
    modules = [decoder] + ([Encoder(config)] if encoder else [])
    with torch.no_grad():
        for module in modules:
            for name, tensor in list(module.named_parameters()) + list(module.named_buffers()):
                if name.endswith("num_batches_tracked"):
                    continue
                if name.endswith(("running_var", "bn.weight", "dense_bn.weight")):
                    tensor.copy_(torch.rand(tensor.shape, generator=generator) + 0.5)
                else:
                    tensor.copy_(torch.randn(tensor.shape, generator=generator) * 0.3)
    attributes = {name: torch.randn(config.latent_dim, generator=generator) for name in ("Smiling", "Eyeglasses")}
    return FaceModel(config, decoder, modules[1] if encoder else None, attributes, {"Smiling": [5, 5]},
                     provenance={"source": "tests: random weights"})
