"""Running sums of the loss terms, kept on the device so that a step never waits for the host."""

from __future__ import annotations

import torch

from ..model.losses import VAELoss
from . import distributed

TERMS = ("total", "weighted_recon", "weighted_kl", "recon", "kl")  # the VAELoss fields summed


class LossMeter:
    """Image-weighted sums of the loss terms (a len(TERMS) float64 vector on the device), the
    image count, and the first step whose loss was not finite (-1: none)."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.sums = torch.zeros(len(TERMS), device=device, dtype=torch.float64)
        self.count = 0
        self.bad_step = torch.full((), -1, device=device, dtype=torch.int64)

    def add(self, terms: VAELoss, batch_size: int, step: int) -> None:
        values = torch.stack([getattr(terms, name).detach() for name in TERMS]).double()
        self.sums += values * batch_size
        self.count += batch_size
        bad = ~torch.isfinite(terms.total.detach())
        self.bad_step = torch.where(bad & (self.bad_step < 0), step, self.bad_step)

    def means(self) -> dict[str, float]:
        """Synchronises: the mean of each term over the images added (this process only)."""
        sums = self.sums.tolist()
        return {name: value / max(self.count, 1) for name, value in zip(TERMS, sums)}

    def global_means(self) -> dict[str, float] | None:
        """The means over the images of all ranks; None when no rank added any."""
        totals = torch.cat([self.sums, torch.tensor([self.count], device=self.device, dtype=torch.float64)])
        totals = distributed.all_reduce_sum(totals).tolist()
        if totals[-1] == 0:
            return None
        return {name: value / totals[-1] for name, value in zip(TERMS, totals[:-1])}
