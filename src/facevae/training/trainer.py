"""The training loop: the trainer owns it, the model only computes.

    trainer = Trainer(config, cache, run_dir, device=torch.device("cpu"))
    result = trainer.fit()          # "finished", "early_stopped" or "interrupted"

Speed: uint8 batches from the cache normalised on the device (training/data.py), bf16
autocast where it is faster (training/device.py), channels_last, fused Adam, optional
torch.compile, and no host-device synchronisation inside a step: the loss terms are
summed on the device and read every `log_every_steps` steps.

Nothing lost: `checkpoints/last.pt` every `checkpoint_every_steps` steps, at the end of
every epoch and on Ctrl-C (SIGINT) or SIGTERM; `checkpoints/best.pt` at each new best
validation loss. A NaN or infinite loss stops the run before anything is overwritten.
"""

from __future__ import annotations

import math
import signal
import threading
import time
from contextlib import contextmanager, nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
import torch.distributed as dist
from tqdm.auto import tqdm

from ..config import RunConfig, TrainConfig, to_dict
from ..data.cache import ImageCache
from ..errors import UserError
from ..model.losses import VAELoss, kl_weight_at, vae_loss
from ..model.vae import FaceVAE
from . import distributed
from .checkpoint import check_same_model, rng_state, save_checkpoint, set_rng_state
from .data import CacheBatches
from .device import autocast_dtype, fused_adam_supported
from .distributed import DistributedContext
from .monitor import RunMonitor

TERMS = ("total", "weighted_recon", "weighted_kl", "recon", "kl")  # what the meters sum
DDP_STOP_CHECK = 10  # steps between the ranks' checks for a stop request


class TrainingDivergedError(UserError):
    """The loss became NaN or infinite; the last good checkpoint is kept."""


class TrainingOutOfMemoryError(UserError):
    """A batch did not fit in GPU memory."""


@dataclass
class Progress:
    """Where training stands; saved in every checkpoint."""

    epoch: int = 0  # the epoch in progress (0-based)
    batch_in_epoch: int = 0  # batches of that epoch already trained on (at a step boundary)
    step: int = 0  # optimiser steps so far
    best_val: float = math.inf
    bad_validations: int = 0  # validations in a row without a new best (early stopping)
    images_seen: int = 0  # over all ranks


@dataclass
class FitResult:
    status: str  # "finished", "early_stopped", "interrupted"
    progress: Progress


class LRSchedule:
    """lr(step) = warm-up ramp x (constant | cosine decay to min_lr | plateau scale) x lr."""

    def __init__(self, config: TrainConfig, total_steps: int) -> None:
        self.config, self.total_steps = config, max(1, total_steps)
        self.plateau_scale, self.plateau_best, self.plateau_bad = 1.0, math.inf, 0

    def lr_at(self, step: int) -> float:
        c = self.config
        if c.lr_schedule == "cosine":
            progress = min(1.0, step / self.total_steps)
            lr = c.min_lr + (c.lr - c.min_lr) * 0.5 * (1.0 + math.cos(math.pi * progress))
        else:
            lr = c.lr * (self.plateau_scale if c.lr_schedule == "plateau" else 1.0)
        if step < c.warmup_steps:
            lr *= (step + 1) / c.warmup_steps
        return lr

    def on_validation(self, loss: float) -> None:
        """Plateau: multiply the lr by plateau_factor after plateau_patience validations without
        a 0.1 % improvement."""
        if self.config.lr_schedule != "plateau":
            return
        if loss < self.plateau_best * (1 - 1e-3):
            self.plateau_best, self.plateau_bad = loss, 0
        else:
            self.plateau_bad += 1
            if self.plateau_bad >= self.config.plateau_patience:
                self.plateau_scale *= self.config.plateau_factor
                self.plateau_bad = 0

    def state_dict(self) -> dict[str, Any]:
        return {"total_steps": self.total_steps, "plateau_scale": self.plateau_scale,
                "plateau_best": self.plateau_best, "plateau_bad": self.plateau_bad}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.plateau_scale, self.plateau_best = state["plateau_scale"], state["plateau_best"]
        self.plateau_bad = state["plateau_bad"]


class LossMeter:
    """Image-weighted sums of the loss terms, kept on the device (no sync per step), and
    the first step whose loss was not finite."""

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
        """Synchronises: the mean of each term over the images added."""
        sums = self.sums.tolist()
        return {name: value / max(self.count, 1) for name, value in zip(TERMS, sums)}


class Trainer:
    def __init__(self, config: RunConfig, cache: ImageCache, run_dir: Path | None, *, device: torch.device,
                 context: DistributedContext = DistributedContext(), progress: bool = True) -> None:
        tc = self.train_config = config.train
        self.config, self.cache, self.run_dir, self.device, self.context = config, cache, run_dir, device, context
        self.dtype = autocast_dtype(device, tc.precision)
        if device.type == "cuda":  # the same shapes every step: let cuDNN time its algorithms once
            torch.backends.cudnn.benchmark = True
        self.show_progress = progress and context.is_main
        self.progress = Progress()
        self._stop_requested = False
        self.last_images_per_second = 0.0  # of the latest logging window
        self.last_validation: dict[str, float] | None = None
        self.history: list[dict[str, Any]] = []  # per epoch: mean train (and validation) loss terms

        train_kwargs = dict(rank=context.rank, world_size=context.world_size, channels_last=tc.channels_last,
                            workers=tc.num_workers, seed=tc.seed)
        self.train_batches = CacheBatches(cache, "train", tc.batch_size, device, shuffle=True,
                                          hflip=config.data.hflip, **train_kwargs)
        if len(self.train_batches.rows) == 0:
            raise UserError(f"The cache {cache.path} has no training images (split counts: "
                            f"{cache.meta.get('split_counts')}); prepare it with a non-empty training split")
        has_valid = len(cache.split_indices("valid")) > 0
        self.val_batches = (CacheBatches(cache, "valid", tc.batch_size, device, shuffle=False, pad_shards=False,
                                         **train_kwargs) if has_valid else None)

        torch.manual_seed(tc.seed)  # the same initial weights on every rank (DDP also broadcasts them)
        self.model = FaceVAE(config.model).to(device)
        if tc.channels_last:
            self.model.to(memory_format=torch.channels_last)
        if context.rank:  # a different sampling-noise stream per rank
            torch.manual_seed(tc.seed + 1_000_003 * context.rank)
        # eps 1e-7 is Keras's Adam default (PyTorch's is 1e-8), as in the original recipe.
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=tc.lr, eps=1e-7, weight_decay=tc.weight_decay,
                                          fused=True if fused_adam_supported(device) else None)
        self.train_module: torch.nn.Module = self.model
        if context.enabled:
            self.train_module = torch.nn.parallel.DistributedDataParallel(
                self.model, device_ids=[device.index] if device.type == "cuda" else None)
        if tc.compile:  # static shapes: one graph for full batches, one for an epoch's last batch
            self.train_module = torch.compile(self.train_module, dynamic=False)
        self.steps_per_epoch = -(-len(self.train_batches) // tc.grad_accum)
        self.schedule = LRSchedule(tc, self.steps_per_epoch * tc.epochs)
        self.monitor: RunMonitor | None = None

        # Fixed inputs for the per-epoch grids: the same faces every epoch, every resume.
        count = max(1, tc.sample_count)
        generator = torch.Generator().manual_seed(tc.seed)
        self.sample_latents = torch.randn(count, config.model.latent_dim, generator=generator).to(device)
        split = "valid" if has_valid else "train"
        rows = cache.split_indices(split)[: min(count, 32)]
        self.sample_images = torch.from_numpy(np.ascontiguousarray(cache.images[rows])).to(device)

    # --- resume ------------------------------------------------------------------------

    def restore(self, state: dict[str, Any], path: Path) -> None:
        """Continue from a checkpoint: weights, optimiser, schedule, progress and RNG states."""
        check_same_model(state, self.config.model, path)
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.schedule.load_state_dict(state["schedule"])
        self.progress = Progress(**state["progress"])
        rngs = state["rng"]
        if len(rngs) == self.context.world_size:
            set_rng_state(rngs[self.context.rank])
        else:  # another number of processes: fresh, still reproducible, noise streams
            torch.manual_seed(self.train_config.seed + 7919 * self.progress.step + 1_000_003 * self.context.rank)

    # --- the loop ----------------------------------------------------------------------

    def fit(self) -> FitResult:
        """Train until train.epochs, early stopping or an interrupt; returns why it ended."""
        if self.run_dir is not None and self.context.is_main:
            self.monitor = RunMonitor(self.run_dir, purge_step=self.progress.step or None)
        try:
            with self._stop_on_signals():
                while self.progress.epoch < self.train_config.epochs:
                    status = self.train_epoch()
                    if status is not None:
                        return FitResult(status, self.progress)
                return FitResult("finished", self.progress)
        finally:
            if self.monitor is not None:
                self.monitor.close()

    def train_epoch(self, max_steps: int | None = None) -> str | None:
        """Train the epoch in progress to its end (or for max_steps steps, for benchmarks).

        Returns None to go on, or "early_stopped" / "interrupted" / "paused" (max_steps)."""
        tc, p = self.train_config, self.progress
        epoch, n_batches, accum = p.epoch, len(self.train_batches), tc.grad_accum
        epoch_meter, window = LossMeter(self.device), LossMeter(self.device)
        bar = tqdm(total=n_batches, initial=p.batch_in_epoch, desc=f"epoch {epoch + 1}/{tc.epochs}", unit="batch",
                   disable=not self.show_progress, dynamic_ncols=True, leave=True)
        window_start, steps_here = time.perf_counter(), 0
        self.model.train()
        try:
            for index, images in enumerate(self.train_batches.batches(epoch, p.batch_in_epoch), start=p.batch_in_epoch):
                group_start = index - index % accum
                group_len = min(accum, n_batches - group_start)
                if index - group_start < group_len - 1:  # accumulate without syncing gradients
                    with self.train_module.no_sync() if self.context.enabled else nullcontext():
                        self._forward_backward(images, group_len, (window, epoch_meter))
                    continue
                self._forward_backward(images, group_len, (window, epoch_meter))
                self._optimizer_step()
                p.step, p.batch_in_epoch, steps_here = p.step + 1, index + 1, steps_here + 1
                bar.update(group_len)
                if tc.log_every_steps and p.step % tc.log_every_steps == 0:
                    self._log_window(window, time.perf_counter() - window_start, bar)
                    window, window_start = LossMeter(self.device), time.perf_counter()
                paused_at, status = time.perf_counter(), None  # images/s counts training time only
                if tc.val_every_steps and p.step % tc.val_every_steps == 0 and index + 1 < n_batches:
                    status = self._validate_and_track()
                if tc.checkpoint_every_steps and p.step % tc.checkpoint_every_steps == 0:
                    self.save("last")
                window_start += time.perf_counter() - paused_at
                if self._should_stop():
                    self._log_window(window, time.perf_counter() - window_start, bar)
                    self.save("last")
                    return "interrupted"
                if status is not None:
                    self.save("last")
                    return status
                if max_steps is not None and steps_here >= max_steps:
                    return "paused"
            self._log_window(window, time.perf_counter() - window_start, bar)
        finally:
            bar.close()
        train_means = self._log_epoch(epoch_meter, epoch)
        p.epoch, p.batch_in_epoch = epoch + 1, 0
        status = self._validate_and_track()
        self.history.append({"epoch": epoch + 1, "step": p.step, "train": train_means,
                             "valid": self.last_validation if self.val_batches is not None else None})
        self._write_samples(epoch + 1)
        self.save("last")
        return status

    def _should_stop(self) -> bool:
        """Whether Ctrl-C / SIGTERM arrived (on any rank). Ranks agree every DDP_STOP_CHECK
        steps: each check is a collective with a host sync, too costly for every GPU step."""
        if not self.context.enabled:
            return self._stop_requested
        if self.progress.step % DDP_STOP_CHECK:
            return False
        return distributed.any_rank(self._stop_requested, self.device)

    def _forward_backward(self, images: torch.Tensor, group_len: int, meters: tuple[LossMeter, ...]) -> None:
        try:
            terms = self._losses(self.train_module, images, self.progress.step)
            (terms.total / group_len).backward()
        except torch.cuda.OutOfMemoryError:
            raise self._out_of_memory() from None
        for meter in meters:
            meter.add(terms, len(images), self.progress.step)
        self.progress.images_seen += len(images) * self.context.world_size

    def _losses(self, module: torch.nn.Module, images: torch.Tensor, step: int,
                noise: torch.Generator | None = None) -> VAELoss:
        tc = self.train_config
        with torch.autocast(self.device.type, dtype=self.dtype or torch.float32, enabled=self.dtype is not None):
            if noise is None:
                recon, mean, log_var = module(images)
            else:  # validation: fixed noise, so epochs are compared on equal terms
                mean, log_var = self.model.encode(images)
                eps = torch.randn(mean.shape, generator=noise, device=mean.device, dtype=mean.dtype)
                recon = self.model.decode(FaceVAE.sample_latent(mean, log_var, eps))
        return vae_loss(recon, images, mean, log_var, recon_weight=tc.recon_weight,
                        kl_weight=kl_weight_at(step, tc.kl_weight, tc.kl_warmup_steps), recon_loss=tc.recon_loss)

    def _optimizer_step(self) -> None:
        tc = self.train_config
        if tc.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), tc.grad_clip, foreach=True)
        lr = self.schedule.lr_at(self.progress.step)
        for group in self.optimizer.param_groups:
            group["lr"] = lr
        self.optimizer.step()
        self.optimizer.zero_grad(set_to_none=True)

    # --- validation, logging, samples --------------------------------------------------

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        """Mean loss terms over the whole validation split (all ranks), in eval mode, with
        the same sampling noise every time and no augmentation."""
        assert self.val_batches is not None
        self.model.eval()
        meter = LossMeter(self.device)
        noise = torch.Generator(self.device).manual_seed(self.train_config.seed + 1)
        batches = tqdm(self.val_batches.batches(0), total=len(self.val_batches), desc="validation", unit="batch",
                       disable=not self.show_progress, leave=False, dynamic_ncols=True)
        for images in batches:
            meter.add(self._losses(self.model, images, self.progress.step, noise=noise), len(images), self.progress.step)
        self.model.train()
        totals = torch.cat([meter.sums, torch.tensor([meter.count], device=self.device, dtype=torch.float64)])
        totals = distributed.all_reduce_sum(totals).tolist()
        return {name: value / max(totals[-1], 1) for name, value in zip(TERMS, totals[:-1])}

    def _validate_and_track(self) -> str | None:
        """Validate, keep best.pt, step the plateau schedule; "early_stopped" when patience runs out."""
        p, tc = self.progress, self.train_config
        if self.val_batches is None:
            return None
        values = self.last_validation = self.validate()
        if not math.isfinite(values["total"]):
            raise self._diverged(p.step, "the validation loss")
        self._scalars({f"val/{name}": value for name, value in values.items()})
        if self.show_progress:
            tqdm.write(f"step {p.step}: validation loss {values['total']:.3f} (recon {values['weighted_recon']:.3f}, "
                       f"KL {values['kl']:.3f})")
        self.schedule.on_validation(values["total"])
        if values["total"] < p.best_val:
            p.best_val, p.bad_validations = values["total"], 0
            self.save("best")
        else:
            p.bad_validations += 1
        if tc.early_stopping_patience and p.bad_validations >= tc.early_stopping_patience:
            if self.show_progress:
                tqdm.write(f"Early stopping: no better validation loss in {p.bad_validations} validations")
            return "early_stopped"
        return None

    def _log_window(self, window: LossMeter, seconds: float, bar: tqdm | None) -> None:
        """Every log_every_steps steps: check for NaN, log the running losses and images/s."""
        if window.count == 0:
            return
        self._check_finite(window)
        means = window.means()
        rate = window.count * self.context.world_size / max(seconds, 1e-9)
        self._scalars({**{f"train/{name}": value for name, value in means.items()},
                       "train/lr": self.schedule.lr_at(self.progress.step), "train/images_per_s": rate,
                       "train/kl_weight": kl_weight_at(self.progress.step, self.train_config.kl_weight,
                                                       self.train_config.kl_warmup_steps)})
        if bar is not None:
            bar.set_postfix(loss=f"{means['total']:.3f}", recon=f"{means['weighted_recon']:.3f}",
                            kl=f"{means['kl']:.3f}", img_s=f"{rate:,.0f}", refresh=False)
        self.last_images_per_second = rate

    def _log_epoch(self, meter: LossMeter, epoch: int) -> dict[str, float] | None:
        """The epoch's mean training loss terms over all ranks, logged against the epoch number;
        None when this process trained no batch of it (resumed from a checkpoint written after
        the epoch's last batch but before its end: only the end is left to do)."""
        totals = torch.cat([meter.sums, torch.tensor([meter.count], device=self.device, dtype=torch.float64)])
        totals = distributed.all_reduce_sum(totals).tolist()
        if totals[-1] == 0:
            return None
        means = {name: value / totals[-1] for name, value in zip(TERMS, totals[:-1])}
        self._scalars({f"epoch/train_{name}": value for name, value in means.items()}, step=epoch + 1)
        if self.val_batches is None and means["total"] < self.progress.best_val:
            self.progress.best_val = means["total"]  # no validation split: best = lowest training loss
            self.save("best")
        return means

    def _scalars(self, values: dict[str, float], step: int | None = None) -> None:
        if self.monitor is not None:
            self.monitor.scalars(values, self.progress.step if step is None else step)

    @torch.no_grad()
    def _write_samples(self, epoch: int) -> None:
        """Faces from the fixed latent codes, and fixed validation images next to their
        reconstructions (from the encoder mean), as PNG grids and in TensorBoard."""
        if self.monitor is None:
            return
        self.model.eval()
        generated = self.model.decode(self.sample_latents).float()
        originals = self.sample_images.permute(0, 3, 1, 2).float().div(255.0)
        recon = self.model.decode(self.model.encode(originals)[0]).float()
        self.model.train()
        pairs = torch.stack([originals, recon], dim=1).flatten(0, 1)  # original, reconstruction, ...
        self.monitor.image_grid("generated", generated, epoch, columns=math.ceil(math.sqrt(len(generated))))
        self.monitor.image_grid("reconstructions", pairs, epoch, columns=8)
        self.monitor.flush()

    # --- safety ------------------------------------------------------------------------

    def _check_finite(self, window: LossMeter | None = None) -> None:
        """Raise (on every rank) if a loss in `window` or any weight is NaN or infinite."""
        bad_step = int(window.bad_step.item()) if window is not None else -1
        weights_bad = not bool(torch.stack([torch.isfinite(p).all() for p in self.model.parameters()]).all())
        if distributed.any_rank(bad_step >= 0 or weights_bad, self.device):
            raise self._diverged(bad_step if bad_step >= 0 else self.progress.step, "the training loss")

    def _diverged(self, step: int, what: str) -> TrainingDivergedError:
        tc = self.train_config
        kept = (f"The last good checkpoint, {self.run_dir / 'checkpoints' / 'last.pt'}, is intact"
                if self.run_dir is not None else "No checkpoint was written")
        return TrainingDivergedError(
            f"Training diverged: {what} became NaN or infinite at step {step} (epoch {self.progress.epoch + 1}). "
            f"{kept}. Likely causes: a learning rate too high (train.lr = {tc.lr:g}; try {tc.lr / 10:g}), "
            f"a reconstruction weight too large (train.recon_weight = {tc.recon_weight:g}), no gradient clipping "
            f"(try --set train.grad_clip=1.0), bf16 overflow (try --set train.precision=fp32), or damaged images. "
            f"Change the config, then continue with --resume"
        )

    def _out_of_memory(self) -> TrainingOutOfMemoryError:
        tc = self.train_config
        smaller = max(1, tc.batch_size // 2)
        return TrainingOutOfMemoryError(
            f"Out of GPU memory with a batch of {tc.batch_size} images on {self.device}. Use a smaller batch, e.g. "
            f"--set train.batch_size={smaller} --set train.grad_accum={tc.grad_accum * 2} (same effective batch), "
            f"turn off --compile, or free the GPU of other processes"
        )

    @contextmanager
    def _stop_on_signals(self) -> Iterator[None]:
        """Ctrl-C / SIGTERM: finish the step, save last.pt, stop. A second Ctrl-C stops at once."""
        if threading.current_thread() is not threading.main_thread():
            yield
            return

        def request_stop(signum: int, frame: Any) -> None:
            if self._stop_requested and signum == signal.SIGINT:
                raise KeyboardInterrupt
            self._stop_requested = True
            if self.context.is_main:
                tqdm.write("Stopping: saving a checkpoint after this step (Ctrl-C again to quit at once)")

        previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)

    # --- checkpoints -------------------------------------------------------------------

    def checkpoint_state(self) -> dict[str, Any]:
        rng = [rng_state()]
        if dist.is_initialized():
            gathered: list[Any] = [None] * self.context.world_size
            dist.all_gather_object(gathered, rng[0])
            rng = gathered
        return {"config": to_dict(self.config), "model": self.model.state_dict(),
                "optimizer": self.optimizer.state_dict(), "schedule": self.schedule.state_dict(),
                "progress": asdict(self.progress), "rng": rng,
                "data": {"cache": str(self.cache.path), "preprocessing": self.cache.meta.get("preprocessing", {}),
                         "source": self.cache.meta.get("source", {}),
                         "split_counts": self.cache.meta.get("split_counts", {})}}

    def save(self, name: str) -> Path | None:
        """Write checkpoints/NAME.pt (rank 0), after checking that nothing is NaN."""
        self._check_finite()
        if self.run_dir is None:
            return None
        state = self.checkpoint_state()  # every rank takes part in gathering the RNG states
        if not self.context.is_main:
            return None
        return save_checkpoint(state, self.run_dir / "checkpoints" / f"{name}.pt")
