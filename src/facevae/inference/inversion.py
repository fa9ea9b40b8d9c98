"""Photo -> latent code: the encoder's mean, optionally refined by a bounded number of optimisation steps.

Refinement minimises, per image, the maximum-a-posteriori objective of the VAE

    mean(w * (decode(z) - image)^2) + prior_weight * mean(z^2)

with Adam on z alone (the decoder's weights never change, nor get gradients), starting from the
encoder mean, or, for a model without an encoder (the pretrained decoder-only model), from the
prior's mean. The prior term keeps z small in the directions the decoder ignores, where
attribute vectors are meaningless. The original loss, 2000 x MSE + KL, would correspond to
prior_weight = 0.5 * 200 / 2000 = 0.05, which blurs likenesses; 0 lets the code's norm drift.

w weights the pixels: 1 + face_weight on the face itself (FACE_REGION of the CelebA frame, an
ellipse with soft edges, put through the bundle's own preprocessing so it lands where the
face is in the model's input), normalised to mean 1. Hair and background then matter less than
the person. The step size follows a cosine from lr down to lr * final_lr_fraction, so the
last steps settle instead of oscillating around the fit.

InversionSettings()'s defaults were chosen with benchmarks/photos.py on real photos, which
also keeps the earlier fixed-step-size, unweighted optimisation (its BASELINE) and the
experiments (several starting codes per photo) to compare against.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass

import torch
from PIL import Image, ImageDraw, ImageFilter
from tqdm.auto import tqdm

from ..errors import UserError
from ..model.bundle import FaceModel, Preprocessing
from .adam import Adam

MAX_REFINE_STEPS = 5000
# Decoder-only models have nothing to start from but the prior's mean, so they always refine.
DECODER_ONLY_STEPS = 60


@dataclass(frozen=True)
class InversionSettings:
    """How latents are fitted to images (see the module docstring)."""

    lr: float = 0.3
    prior_weight: float = 0.001
    face_weight: float = 10.0  # extra weight on face pixels; 0 = every pixel alike
    lr_schedule: str = "cosine"  # "constant" or "cosine"
    final_lr_fraction: float = 0.05  # the cosine's end, as a fraction of lr

    def __post_init__(self) -> None:
        if self.lr_schedule not in ("constant", "cosine"):
            raise UserError(f"lr_schedule must be 'constant' or 'cosine', not {self.lr_schedule!r}")
        if self.lr <= 0 or self.face_weight < 0 or self.prior_weight < 0:
            raise UserError("inversion settings need lr > 0, face_weight >= 0 and prior_weight >= 0")

# Called between refinement steps when set; it raises to abandon the work. The server sets it
# around each job (facevae.app.server.batching), so refinement stops once its request has timed out.
STOP_CHECK: ContextVar[Callable[[], None] | None] = ContextVar("facevae_stop_check", default=None)


def invert(model: FaceModel, images: torch.Tensor, refine_steps: int = 0, decoder: torch.nn.Module | None = None,
           settings: InversionSettings | None = None, progress: bool = False) -> torch.Tensor:
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
    settings = settings or InversionSettings()
    weights = face_weights(model.preprocessing, settings.face_weight).to(model.device)
    return refine(decoder or model.decoder, images, start, refine_steps, settings, weights, progress)


def face_weights(preprocessing: Preprocessing, face_weight: float) -> torch.Tensor:
    """1 x S x S pixel weights with mean 1: 1 + face_weight on the face, 1 elsewhere (before normalising)."""
    from ..imaging import preprocess
    from .face import CELEBA_SIZE, FACE_REGION

    size = preprocessing.image_size
    if face_weight == 0:
        return torch.ones(1, size, size)
    mask = Image.new("L", CELEBA_SIZE, 0)
    ImageDraw.Draw(mask).ellipse(FACE_REGION, fill=255)
    mask = mask.filter(ImageFilter.GaussianBlur(6)).convert("RGB")  # soft edges: no seam in the fit
    face = preprocess(mask, preprocessing)[:1]  # 1 x S x S in [0, 1]
    weights = 1 + face_weight * face
    return weights / weights.mean()


def refine(decoder: torch.nn.Module, images: torch.Tensor, start: torch.Tensor, steps: int,
           settings: InversionSettings | None = None, weights: torch.Tensor | None = None,
           progress: bool = False) -> torch.Tensor:
    """Adam on the latents only; returns N x D codes (detached). weights: 1 x S x S or None;
    settings: None for InversionSettings()'s defaults."""
    settings = settings or InversionSettings()
    weights = torch.ones(1, *images.shape[2:], device=images.device) if weights is None else weights
    was_training = decoder.training
    decoder.eval()
    frozen = [p for p in decoder.parameters() if p.requires_grad]
    for parameter in frozen:
        parameter.requires_grad_(False)
    try:
        with torch.enable_grad(), tqdm(total=steps, desc="refining", unit="step", disable=not progress,
                                       leave=False) as bar:
            return _optimise(decoder, images, start, steps, settings, weights, bar)
    finally:
        for parameter in frozen:
            parameter.requires_grad_(True)
        decoder.train(was_training)


def _optimise(decoder: torch.nn.Module, images: torch.Tensor, start: torch.Tensor, total: int,
              settings: InversionSettings, weights: torch.Tensor, bar) -> torch.Tensor:
    """Adam for `total` steps -> N x D codes, detached."""
    latent = start.detach().clone().requires_grad_(True)
    optimiser = Adam([latent], lr=_lr(settings, 0, total))
    stop_check = STOP_CHECK.get()
    for step in range(total):
        if stop_check is not None:
            stop_check()
        optimiser.lr = _lr(settings, step, total)
        optimiser.zero_grad()
        recon = decoder(latent)
        # per image; summed, so each image's gradient is independent of the batch
        losses = (weights * (recon - images) ** 2).flatten(1).mean(1) + settings.prior_weight * (latent**2).mean(1)
        losses.sum().backward()
        optimiser.step()
        bar.update(1)
    return latent.detach()


def _lr(settings: InversionSettings, step: int, total: int) -> float:
    if settings.lr_schedule == "constant" or total <= 1:
        return settings.lr
    low = settings.lr * settings.final_lr_fraction
    return low + 0.5 * (settings.lr - low) * (1 + math.cos(math.pi * step / (total - 1)))
