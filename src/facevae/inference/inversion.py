"""Photo -> latent code: the encoder's mean, optionally refined by a few optimisation steps.

Refinement minimises, per image, the maximum-a-posteriori objective of the VAE

    mean((decode(z) - image)^2) + prior_weight * mean(z^2)

with Adam, starting from the encoder mean (or from the prior's mean, zeros, when the model
has no encoder). The prior term keeps z small in the directions the decoder ignores, where
attribute vectors are meaningless. The original loss, 2000 x MSE + KL, would correspond to
prior_weight = 0.5 * 200 / 2000 = 0.05; on the pretrained decoder that blurs likenesses
(100 steps on generated faces: pixel MSE 5e-4 at 0.05, 1e-4 at 0.01, 3e-5 at 0.002; with 0
the code's norm drifts up along ignored directions), so the default is 0.01.
Only the latent is optimised; the decoder's weights never change (they do not even get
gradients), and the number of steps is bounded.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Callable

import torch
from tqdm.auto import tqdm

from ..errors import UserError
from ..hub.bundle import FaceModel

MAX_REFINE_STEPS = 5000
# Decoder-only models have nothing to start from but the prior's mean, so they always refine.
DECODER_ONLY_STEPS = 100
DEFAULT_LR = 0.1
DEFAULT_PRIOR_WEIGHT = 0.01
# Called between refinement steps when set; it raises to abandon the work. The server sets it
# around each job (facevae.app.server.batching), so refinement stops once its request has timed out.
STOP_CHECK: ContextVar[Callable[[], None] | None] = ContextVar("facevae_stop_check", default=None)


def invert(model: FaceModel, images: torch.Tensor, refine_steps: int = 0, decoder: torch.nn.Module | None = None,
           lr: float = DEFAULT_LR, prior_weight: float = DEFAULT_PRIOR_WEIGHT, progress: bool = False,
           ) -> torch.Tensor:
    """N x 3 x S x S images in [0, 1] -> N x D latent codes.

    decoder: the module to optimise through (e.g. the pipeline's FastDecoder); default the
    model's own. refine_steps = 0 with an encoder returns the encoder mean as is; a model
    without an encoder has nothing to start from, so refine_steps = 0 means DECODER_ONLY_STEPS.
    """
    if not 0 <= refine_steps <= MAX_REFINE_STEPS:
        raise UserError(f"refine_steps must be between 0 and {MAX_REFINE_STEPS}, got {refine_steps}")
    images = images.to(model.device, torch.float32)
    if model.has_encoder:
        start = model.encode(images)[0].clone()  # the mean, never a sample
    else:
        start = torch.zeros(len(images), model.latent_dim, device=model.device)
        refine_steps = refine_steps or DECODER_ONLY_STEPS
    if refine_steps == 0:
        return start
    return refine(decoder or model.decoder, images, start, refine_steps, lr, prior_weight, progress)


def refine(decoder: torch.nn.Module, images: torch.Tensor, start: torch.Tensor, steps: int,
           lr: float = DEFAULT_LR, prior_weight: float = DEFAULT_PRIOR_WEIGHT, progress: bool = False,
           ) -> torch.Tensor:
    """Adam on the latents only; returns N x D codes (detached)."""
    was_training = decoder.training
    decoder.eval()
    frozen = [p for p in decoder.parameters() if p.requires_grad]
    for parameter in frozen:
        parameter.requires_grad_(False)
    latent = start.detach().clone().requires_grad_(True)
    optimiser = torch.optim.Adam([latent], lr=lr)
    try:
        with torch.enable_grad():
            stop_check = STOP_CHECK.get()
            for _ in tqdm(range(steps), desc="refining", unit="step", disable=not progress, leave=False):
                if stop_check is not None:
                    stop_check()
                optimiser.zero_grad(set_to_none=True)
                recon = decoder(latent)
                # Summed over images, so each image's gradient is independent of the batch.
                loss = ((recon - images) ** 2).flatten(1).mean(1).sum() + prior_weight * (latent**2).mean(1).sum()
                loss.backward()
                optimiser.step()
    finally:
        for parameter in frozen:
            parameter.requires_grad_(True)
        decoder.train(was_training)
    return latent.detach()
