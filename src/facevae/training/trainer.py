"""The training loop: the trainer owns it, the model only computes.

    trainer = Trainer(config, cache, run_dir, device=torch.device("cpu"))
    result = trainer.fit()          # "finished", "early_stopped", "interrupted" or "budget"

Speed: uint8 batches from the cache normalised on the device (training/data.py), bf16
autocast where the hardware has bf16 arithmetic (facevae.runtime), channels_last, fused Adam,
optional torch.compile, and no host-device synchronisation inside a step: the loss terms are
summed on the device (training/meters.py) and read every `log_every_steps` steps.

After each optimiser step the periodic actions run as StepHooks (training/hooks.py): log the
running losses (and watch for a collapsed VAE, training/collapse.py), validate, checkpoint.
The learning rate comes from training/schedule.py. New models start from Keras's
initialisation (train.init), as the original's did.

Nothing lost: `checkpoints/last.pt` every `checkpoint_every_steps` steps, at the end of
every epoch, on Ctrl-C (SIGINT) or SIGTERM and when the budget (training/budget.py) is
spent; `checkpoints/best.pt` at each new best validation loss. A NaN or infinite loss
stops the run before anything is overwritten.
"""

from __future__ import annotations

import math
import time
from contextlib import nullcontext
from dataclasses import asdict
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from tqdm.auto import tqdm

from ..config import RunConfig, to_dict
from ..data.cache import ImageCache
from ..errors import UserError
from ..model.losses import VAELoss, kl_weight_at, vae_loss
from ..model.vae import FaceVAE, init_like_keras
from ..runtime import fused_adam_supported, pick_runtime
from . import distributed
from .budget import Budget
from .checkpoint import check_same_model, rng_state, save_checkpoint, set_rng_state
from .collapse import CollapseWatch
from .data import CacheBatches
from .distributed import DistributedContext
from .failures import TrainingDivergedError, diverged_error, out_of_memory_error
from .hooks import EpochState, StepHook, run_due_hooks
from .meters import TERMS, LossMeter
from .monitor import RunMonitor, SampleGrids
from .schedule import LRSchedule
from .signals import StopRequest
from .state import FitResult, Progress

DDP_STOP_CHECK = 10  # steps between the ranks' checks for a stop request


class Trainer:
    def __init__(self, config: RunConfig, cache: ImageCache, run_dir: Path | None, *, device: torch.device,
                 context: DistributedContext = DistributedContext(), progress: bool = True,
                 budget: Budget | None = None) -> None:
        tc = self.train_config = config.train
        self.config, self.cache, self.run_dir, self.device, self.context = config, cache, run_dir, device, context
        self.runtime = pick_runtime(device, tc.precision)
        self.dtype = self.runtime.autocast_dtype  # None: plain fp32
        if device.type == "cuda":  # the same shapes every step: let cuDNN time its algorithms once
            torch.backends.cudnn.benchmark = True
        self.show_progress = progress and context.is_main
        self.progress = Progress()
        self.stop = StopRequest(announce=context.is_main)
        self.budget = budget or Budget()
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
        self.model = FaceVAE(config.model)
        if tc.init == "keras":
            init_like_keras(self.model)
        self.model.to(device)
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
        self.step_hooks = [StepHook(tc.log_every_steps, self._log_window, pauses_training=False),
                           StepHook(tc.val_every_steps, self._validate_mid_epoch),
                           StepHook(tc.checkpoint_every_steps, lambda state: self._save_last())]

        self.samples = SampleGrids(cache, "valid" if has_valid else "train", tc.sample_count,
                                   config.model.latent_dim, tc.seed, device)
        self.collapse = CollapseWatch(config, self.samples.latents, enabled=context.is_main)

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
        """Train until train.epochs, early stopping, an interrupt or the budget; returns why it ended."""
        if self.run_dir is not None and self.context.is_main:
            self.monitor = RunMonitor(self.run_dir, purge_step=self.progress.step or None)
        self.budget.start()
        try:
            with self.stop.installed():
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
        epoch, n_batches = p.epoch, len(self.train_batches)
        bar = tqdm(total=n_batches, initial=p.batch_in_epoch, desc=f"epoch {epoch + 1}/{tc.epochs}", unit="batch",
                   disable=not self.show_progress, dynamic_ncols=True, leave=True)
        state = EpochState(LossMeter(self.device), LossMeter(self.device), time.perf_counter(), bar)
        steps_here = 0
        self.model.train()
        try:
            for index, images in enumerate(self.train_batches.batches(epoch, p.batch_in_epoch), start=p.batch_in_epoch):
                if not self._train_batch(index, images, state):
                    continue  # gradients accumulate until the group's last batch
                state.at_epoch_end, steps_here = index + 1 == n_batches, steps_here + 1
                status = self._after_step(state)
                if status is not None:
                    return status
                if max_steps is not None and steps_here >= max_steps:
                    return "paused"
            self._log_window(state)
        finally:
            bar.close()
        return self._end_epoch(state.epoch_meter, epoch)

    def _train_batch(self, index: int, images: torch.Tensor, state: EpochState) -> bool:
        """Forward and backward one batch of an accumulation group of grad_accum batches (the
        epoch's last group may be shorter); the group's last batch also steps the optimiser.
        Returns whether it did."""
        accum, n_batches, p = self.train_config.grad_accum, len(self.train_batches), self.progress
        group_start = index - index % accum
        group_len = min(accum, n_batches - group_start)
        meters = (state.window, state.epoch_meter)
        if index - group_start < group_len - 1:  # accumulate without syncing gradients across ranks
            with self.train_module.no_sync() if self.context.enabled else nullcontext():
                self._forward_backward(images, group_len, meters)
            return False
        self._forward_backward(images, group_len, meters)
        self._optimizer_step()
        p.step, p.batch_in_epoch = p.step + 1, index + 1
        state.bar.update(group_len)
        return True

    def _after_step(self, state: EpochState) -> str | None:
        """The periodic hooks, then a stop request or a hook's status ends the epoch early."""
        status = run_due_hooks(self.step_hooks, self.progress.step, state)
        stop = self._stop_reason()
        if stop is not None:
            self._log_window(state)
            self._save_last()
            return stop
        if status is not None:
            self._save_last()
        return status

    def _end_epoch(self, epoch_meter: LossMeter, epoch: int) -> str | None:
        """After the epoch's last step: epoch means, validation, samples, last.pt."""
        p = self.progress
        train_means = self._log_epoch(epoch_meter, epoch)
        p.epoch, p.batch_in_epoch = epoch + 1, 0
        status = self._validate_and_track()
        self.history.append({"epoch": epoch + 1, "step": p.step, "train": train_means,
                             "valid": self.last_validation if self.val_batches is not None else None})
        if self.monitor is not None:
            self.samples.write(self.model, self.monitor, epoch + 1)
        self._save_last()
        return status

    def _save_last(self) -> None:
        self.save("last")

    def _stop_reason(self) -> str | None:
        """"interrupted" when Ctrl-C / SIGTERM arrived (on any rank), "budget" when --max-steps or
        --minutes is spent, else None. Ranks agree on signals and time every DDP_STOP_CHECK steps:
        each check is a collective with a host sync, too costly for every GPU step."""
        if self.budget.steps_spent(self.progress.step):
            return "budget"  # the same step on every rank: no collective needed
        if not self.context.enabled:
            signalled, timed_out = self.stop.requested, self.budget.time_spent()
        elif self.progress.step % DDP_STOP_CHECK:
            return None
        else:
            signalled = distributed.any_rank(self.stop.requested, self.device)
            timed_out = distributed.any_rank(self.budget.time_spent(), self.device)
        return "interrupted" if signalled else "budget" if timed_out else None

    def _forward_backward(self, images: torch.Tensor, group_len: int, meters: tuple[LossMeter, ...]) -> None:
        try:
            terms = self._losses(self.train_module, images, self.progress.step)
            (terms.total / group_len).backward()
        except torch.cuda.OutOfMemoryError:
            raise out_of_memory_error(self.train_config, self.device) from None
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
            losses = self._losses(self.model, images, self.progress.step, noise=noise)
            meter.add(losses, len(images), self.progress.step)
        self.model.train()
        return meter.global_means() or dict.fromkeys(TERMS, 0.0)

    def _validate_mid_epoch(self, state: EpochState) -> str | None:
        """The val_every_steps hook; the epoch's last step validates at the epoch's end instead."""
        return None if state.at_epoch_end else self._validate_and_track()

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

    def _log_window(self, state: EpochState) -> None:
        """Every log_every_steps steps: check for NaN, log the running losses and images/s,
        and start a new window."""
        window, seconds = state.window, time.perf_counter() - state.window_start
        state.window, state.window_start = LossMeter(self.device), time.perf_counter()
        if window.count == 0:
            return
        self._check_finite(window)
        means = window.means()
        rate = window.count * self.context.world_size / max(seconds, 1e-9)
        self._scalars({**{f"train/{name}": value for name, value in means.items()},
                       "train/lr": self.schedule.lr_at(self.progress.step), "train/images_per_s": rate,
                       "train/kl_weight": kl_weight_at(self.progress.step, self.train_config.kl_weight,
                                                       self.train_config.kl_warmup_steps)})
        self.collapse.check(self.progress.step, means["kl"], self.model, self.monitor)
        state.bar.set_postfix(loss=f"{means['total']:.3f}", recon=f"{means['weighted_recon']:.3f}",
                              kl=f"{means['kl']:.3f}", img_s=f"{rate:,.0f}", refresh=False)
        self.last_images_per_second = rate

    def _log_epoch(self, meter: LossMeter, epoch: int) -> dict[str, float] | None:
        """The epoch's mean training loss terms over all ranks, logged against the epoch number;
        None when this process trained no batch of it (resumed from a checkpoint written after
        the epoch's last batch but before its end: only the end is left to do)."""
        means = meter.global_means()
        if means is None:
            return None
        self._scalars({f"epoch/train_{name}": value for name, value in means.items()}, step=epoch + 1)
        if self.val_batches is None and means["total"] < self.progress.best_val:
            self.progress.best_val = means["total"]  # no validation split: best = lowest training loss
            self.save("best")
        return means

    def _scalars(self, values: dict[str, float], step: int | None = None) -> None:
        if self.monitor is not None:
            self.monitor.scalars(values, self.progress.step if step is None else step)

    # --- safety ------------------------------------------------------------------------

    def _check_finite(self, window: LossMeter | None = None) -> None:
        """Raise (on every rank) if a loss in `window` or any weight is NaN or infinite."""
        bad_step = int(window.bad_step.item()) if window is not None else -1
        weights_bad = not bool(torch.stack([torch.isfinite(p).all() for p in self.model.parameters()]).all())
        if distributed.any_rank(bad_step >= 0 or weights_bad, self.device):
            raise self._diverged(bad_step if bad_step >= 0 else self.progress.step, "the training loss")

    def _diverged(self, step: int, what: str) -> TrainingDivergedError:
        last = self.run_dir / "checkpoints" / "last.pt" if self.run_dir is not None else None
        return diverged_error(self.train_config, what, step, self.progress.epoch, last)

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
