"""One model's reconstruction of a split: codes, pictures, quality and speed.

Models with an encoder use the encoder's mean (what editing uses). Decoder-only models (e.g.
celeba64-original, published without its encoder) have no direct code for a photo, so
their codes come from bounded inversion (inference/inversion.py: a fixed number of Adam
steps on the code, from the prior's mean) and the report says so; KL is then undefined.

Speeds are images per second of the timed calls alone (reading the cache is not timed):
encode = encoder (or inversion), decode = the pipeline's decoder.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from tqdm.auto import tqdm

from ..data.cache import ImageCache
from ..errors import UserError
from ..inference.inversion import InversionSettings
from ..inference.pipeline import FacePipeline
from . import image_metrics

BATCH = 64  # images per encode/decode call


@dataclass
class Reconstruction:
    originals: torch.Tensor  # N x 3 x S x S in [0, 1]
    latents: torch.Tensor  # N x D: encoder means or inverted codes
    reconstructions: torch.Tensor  # N x 3 x S x S in [0, 1]
    metrics: dict[str, Any] = field(default_factory=dict)


def split_images(cache: ImageCache, split: str, max_images: int | None) -> torch.Tensor:
    """The first max_images images of a split ("all": the whole cache) as N x 3 x S x S floats in [0, 1]."""
    rows = (np.arange(len(cache)) if split == "all" else cache.split_indices(split))[:max_images]
    if len(rows) == 0:
        raise UserError(f"the {split} split of {cache.path} is empty; choose another ({{option}})", option="split")
    return cache.float_images(rows).contiguous()


def method(pipe: FacePipeline, invert_steps: int) -> str:
    if pipe.model.has_encoder:
        return "encoder mean"
    settings = InversionSettings()
    return (f"bounded inversion: no encoder, so each code is {invert_steps} Adam steps from the prior mean "
            f"(facevae edit's defaults: step size {settings.lr:g}, {settings.lr_schedule} schedule, "
            f"face weight {settings.face_weight:g}, prior weight {settings.prior_weight:g})")


def reconstruct(pipe: FacePipeline, images: torch.Tensor, invert_steps: int = 100, label: str = "",
                progress: bool = True) -> Reconstruction:
    """Encode (or invert) and decode `images` in batches, timing both; metrics averaged over images."""
    latents, log_vars, outputs = [], [], []
    encode_seconds = decode_seconds = 0.0
    bar = tqdm(total=len(images), desc=f"reconstructing {label}".strip(), unit="image", disable=not progress)
    for batch in images.split(BATCH):
        started = time.perf_counter()
        if pipe.model.has_encoder:
            mean, log_var = pipe.model.encode(batch)
            log_vars.append(log_var.float().cpu())
        else:
            mean = pipe.encode(batch, refine_steps=invert_steps, progress=progress).codes  # an inner "refining" bar
        encode_seconds += time.perf_counter() - started
        started = time.perf_counter()
        decoded = pipe.decode_tensor(mean).float().clamp(0, 1).cpu()
        decode_seconds += time.perf_counter() - started
        latents.append(mean.float().cpu())
        outputs.append(decoded)
        bar.update(len(batch))
    bar.close()
    codes, recon = torch.cat(latents), torch.cat(outputs)
    a, b = recon.numpy(), images.numpy()
    metrics = {"method": method(pipe, invert_steps), "decoder_only": not pipe.model.has_encoder,
               "images": len(images), "mse": float(image_metrics.mse(a, b).mean()),
               "psnr": float(image_metrics.psnr(a, b).mean()), "ssim": float(image_metrics.ssim(a, b).mean()),
               "kl": (float(image_metrics.kl_divergence(codes.numpy(), torch.cat(log_vars).numpy()).mean())
                      if log_vars else None),
               "encode_images_per_s": len(images) / max(encode_seconds, 1e-9),
               "decode_images_per_s": len(images) / max(decode_seconds, 1e-9)}
    return Reconstruction(images, codes, recon, metrics)
