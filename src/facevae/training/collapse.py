"""Posterior collapse, detected and said: the encoder stops passing information (KL near 0
nats) or the decoder ignores its code (faces decoded from different codes nearly identical).

A collapsed VAE draws one average face whatever the code. The trainer calls
`CollapseWatch.check` at every logging step; when a sign of collapse has held for
`patience` steps it warns once, on the console (even with --quiet) and in TensorBoard.
"""

from __future__ import annotations

import math
import sys

import torch

from ..config import RunConfig
from ..model.vae import FaceVAE
from .monitor import RunMonitor

KL_NEAR_ZERO = 0.5  # nats per image, summed over the latent dimensions
SAMPLES_NEAR_IDENTICAL = 2 / 255  # mean absolute pixel difference between faces from different codes
SPREAD_CODES = 16  # codes decoded for the spread
BN_SETTLED = 3.0  # faces are compared after 3 / bn_momentum steps, once running statistics hold < 5 % of the init


@torch.no_grad()
def sample_spread(model: FaceVAE, latents: torch.Tensor) -> float:
    """Mean absolute pixel difference (images in [0, 1]) over all pairs of the faces decoded,
    in eval mode, from `latents` (K x latent_dim, K >= 2); the model is left in train mode."""
    model.eval()
    faces = model.decode(latents).float().flatten(1)  # K x (C*H*W)
    model.train()
    pairs = torch.cdist(faces, faces, p=1) / faces.shape[1]  # K x K mean absolute differences
    count = len(faces)
    return float(pairs.sum() / (count * (count - 1)))


def collapse_advice(config: RunConfig, sign: str, step: int, patience: int) -> str:
    """The warning: what was seen, the likely cause for this config, and the fix."""
    seen = f"WARNING: the VAE has collapsed (step {step:,}): {sign} for the last {patience:,} steps, so every face " \
           f"it draws is the same average face."
    if config.model.head_activation == "relu":
        cause = ("Likely cause: the ReLU on the encoder's mean and log-variance heads (model.head_activation = relu, "
                 "the original preset, kept for the published weights) has died: both heads output exactly 0, the "
                 "KL is 0 and no gradient can revive them. Fix: train new models without it, i.e. the default model "
                 "(drop --preset original, or --set model.head_activation=none), and start a new run.")
    else:
        cause = (f"Likely cause: the KL term outweighs the reconstruction (train.recon_weight = "
                 f"{config.train.recon_weight:g}, train.kl_weight = {config.train.kl_weight:g}). Fix: start a new run "
                 f"with a KL warm-up (--set train.kl_warmup_steps=2000), a lower train.kl_weight or a higher "
                 f"train.recon_weight; check too that the images are faces and not blank.")
    return f"{seen} {cause}"


class CollapseWatch:
    """Tracks since when a sign of collapse has held; says so once when it held for `patience` steps."""

    def __init__(self, config: RunConfig, latents: torch.Tensor, enabled: bool = True) -> None:
        self.config = config
        self.patience = config.train.collapse_patience_steps if enabled else 0  # 0: off (other DDP ranks)
        self.latents = latents[:SPREAD_CODES]  # K x latent_dim, fixed codes
        # Faces are decoded in eval mode, with batch norm's running statistics; until those have
        # settled, a healthy model's faces can all look alike, so the spread is not judged before.
        # (Frozen statistics, momentum 0, never settle: then only the KL is judged.)
        momentum = config.model.bn_momentum
        self.spread_from_step = math.ceil(BN_SETTLED / momentum) if momentum > 0 else math.inf
        self.since: int | None = None  # first step of the current stretch of collapse signs
        self.warning: str | None = None  # set once said

    def check(self, step: int, kl: float, model: FaceVAE, monitor: RunMonitor | None = None) -> str | None:
        """One logged window's mean KL at `step`: returns the warning the one time it is due,
        after printing it and adding it to TensorBoard's Text tab (`monitor`)."""
        if not self.patience or self.warning is not None:
            return None
        sign = self._sign(step, kl, model)
        if sign is None:
            self.since = None
            return None
        if self.since is None:
            self.since = step
        if step - self.since < self.patience:
            return None
        self.warning = collapse_advice(self.config, sign, step, step - self.since)
        print(self.warning, file=sys.stderr, flush=True)
        if monitor is not None:
            monitor.text("warnings/collapse", self.warning, step)
        return self.warning

    def _sign(self, step: int, kl: float, model: FaceVAE) -> str | None:
        if kl < KL_NEAR_ZERO:
            return f"the KL stayed below {KL_NEAR_ZERO} nats (now {kl:.3f})"
        if step < self.spread_from_step or len(self.latents) < 2:
            return None
        if (spread := sample_spread(model, self.latents)) < SAMPLES_NEAR_IDENTICAL:
            return (f"faces decoded from {len(self.latents)} different codes stayed nearly identical (mean pixel "
                    f"difference {255 * spread:.2f}/255)")
        return None
