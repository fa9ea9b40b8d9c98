"""A training run from start to bundle: `train(config, data, out)` -> the run folder.

    RUN_DIR/
      config.json              the resolved config (model, data, train)
      checkpoints/last.pt      to resume (--resume); written every N steps, each epoch, on Ctrl-C
      checkpoints/best.pt      the best validation loss so far
      tensorboard/             losses, learning rate, images/s, sample grids
      samples/                 the same grids as PNG, one pair per epoch
      bundle/                  the inference artifact, from best.pt, when training ends

`facevae.load(RUN_DIR)` loads the bundle. The same function runs under torchrun: every
process calls it, rank 0 alone writes.
"""

from __future__ import annotations

import dataclasses
import errno
import json
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
import torch.distributed as dist

from ..config import RunConfig, from_dict, to_dict
from ..data.cache import ImageCache, is_cache
from ..errors import UserError
from ..imaging import write_atomic
from ..model.bundle import FaceModel, Preprocessing, save_bundle
from ..model.losses import beta_vae_equivalent
from ..model.vae import FaceVAE
from ..runtime import resolve_device
from . import distributed
from .budget import Budget
from .checkpoint import CheckpointError, load_checkpoint, write_failure
from .trainer import Trainer

CHECKPOINTS = "checkpoints"
DISK_ERRORS = (errno.ENOSPC, errno.EDQUOT, errno.EROFS, errno.EACCES, errno.EPERM)


class RunWriteError(UserError):
    """A file of the run could not be written (a full or read-only disk)."""


class TrainingInterrupted(KeyboardInterrupt):
    """Ctrl-C (or SIGTERM) stopped training after last.pt was saved; resume with --resume."""


def _say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _open_cache(data: str | Path, config: RunConfig, context: distributed.DistributedContext,
                progress: bool) -> ImageCache:
    """Rank 0 opens the cache, preparing it first from a raw folder; the others then open it."""
    from ..data.prepare import ensure_cache

    path = [None]
    if context.is_main:
        cache = ensure_cache(data, config.data, config.model.image_size, progress=progress)
        path = [str(cache.path)]
    if dist.is_initialized():
        dist.broadcast_object_list(path, src=0)
    return cache if context.is_main else ImageCache.open(path[0])


def train(config: RunConfig, data: str | Path, out: str | Path, resume: bool = False, progress: bool = True,
          budget: Budget | None = None) -> Path:
    """Train on a prepared cache (or a raw folder, prepared first) into the run folder `out`.

    resume=True continues from out/checkpoints/last.pt with its optimiser, schedule, step
    and RNG states; the model config must be the checkpoint's. Raises TrainingInterrupted
    (a KeyboardInterrupt) after saving when stopped by Ctrl-C. A spent `budget` (--max-steps,
    --minutes) stops the same way, saving last.pt, then writes the bundle and returns.
    """
    run_dir = Path(out).expanduser()
    last = run_dir / CHECKPOINTS / "last.pt"
    if resume and not last.is_file():
        raise CheckpointError(f"Cannot resume: {last} does not exist. Check --out, or start a new run without --resume")
    if not resume and last.is_file():
        raise UserError(f"{run_dir} already holds a training run ({last}). Continue it with --resume, "
                        f"or choose another --out")
    context = distributed.context_from_env()
    device = distributed.init(context, resolve_device(config.train.device))
    try:
        with _disk_errors_explained(last):
            _train(config, data, run_dir, resume, progress, context, device, budget or Budget())
    finally:
        distributed.shutdown()
    return run_dir


def _train(config: RunConfig, data: str | Path, run_dir: Path, resume: bool, progress: bool,
           context: distributed.DistributedContext, device: torch.device, budget: Budget) -> None:
    last = run_dir / CHECKPOINTS / "last.pt"
    cache = _open_cache(data, config, context, progress)
    config = dataclasses.replace(config, data=dataclasses.replace(config.data, path=str(data)))
    trainer = Trainer(config, cache, run_dir, device=device, context=context, progress=progress, budget=budget)
    if resume:
        trainer.restore(load_checkpoint(last, device), last)
    if budget.steps_spent(trainer.progress.step):
        raise UserError(f"--max-steps {budget.max_steps} is spent already: {run_dir} is at step "
                        f"{trainer.progress.step}. Pass a larger --max-steps to train further")
    if context.is_main:
        run_dir.mkdir(parents=True, exist_ok=True)
        for partial in (run_dir / CHECKPOINTS).glob(".*.partial"):  # left by a killed process
            partial.unlink(missing_ok=True)
        write_atomic(run_dir / "config.json", json.dumps(to_dict(config), indent=2).encode())
        _say(_summary(trainer, run_dir, resume))
    result = trainer.fit()
    if result.status == "interrupted":
        raise TrainingInterrupted(
            f"Training stopped at step {result.progress.step} (epoch {result.progress.epoch + 1}); "
            f"saved {last}. Continue with: facevae train --out {run_dir} --resume")
    if context.is_main:
        bundle = make_bundle(run_dir, device=device, progress=progress)
        ended = (f"stopped by its budget ({budget.describe()}) at step {result.progress.step} (epoch "
                 f"{result.progress.epoch + 1}); saved {last}, continue with: facevae train --out {run_dir} --resume"
                 if result.status == "budget" else f"{result.status.replace('_', ' ')} at step {result.progress.step}")
        best = result.progress.best_val
        _say(f"Training {ended}. " + (f"Best validation loss {best:.4f}. " if best != float("inf") else "")
             + f"Bundle: {bundle}  (facevae.load('{run_dir}'))")
    distributed.barrier()


@contextmanager
def _disk_errors_explained(last: Path) -> Iterator[None]:
    """A write that fails for lack of space or permission (config.json, samples, TensorBoard,
    the bundle) becomes a message saying so and what is safe on disk, not a traceback."""
    try:
        yield
    except OSError as error:
        if error.errno not in DISK_ERRORS:
            raise
        where = Path(error.filename) if error.filename else last.parent.parent
        then = "continue with --resume" if last.is_file() else "start the run again"
        raise RunWriteError(write_failure(where, error, then)) from None


def _summary(trainer: Trainer, run_dir: Path, resume: bool) -> str:
    config, tc = trainer.config, trainer.train_config
    params = sum(p.numel() for p in trainer.model.parameters())
    valid = len(trainer.val_batches.rows) if trainer.val_batches is not None else 0
    size = config.model.image_size
    pixels = size * size * config.model.image_channels
    start = (f"resuming at step {trainer.progress.step} (epoch {trainer.progress.epoch + 1})" if resume
             else "starting")
    return "\n".join([
        f"Training {run_dir} ({start}): {params / 1e6:.2f} M parameters, {size}x{size} images, "
        f"{len(trainer.train_batches.rows):,} training / {valid:,} validation images",
        f"  batch {tc.batch_size} x {tc.grad_accum} accumulation x {trainer.context.world_size} process(es), "
        f"{trainer.steps_per_epoch:,} steps per epoch, {tc.epochs} epochs, lr {tc.lr:g} ({tc.lr_schedule})",
        f"  loss = {tc.recon_weight:g} x {tc.recon_loss.upper()} + {tc.kl_weight:g} x KL (the reconstruction weight is "
        f"the original's 'beta'; as a beta-VAE: "
        f"beta = {beta_vae_equivalent(tc.recon_weight, tc.kl_weight, pixels):.3g})",
        f"  device: {trainer.runtime.describe()}; TensorBoard: tensorboard --logdir {run_dir}",
    ] + ([f"  budget: stop {trainer.budget.describe()} (as Ctrl-C does), then write the bundle"]
         if trainer.budget.describe() else []))


def make_bundle(run_dir: str | Path, checkpoint: str = "best", out: str | Path | None = None, *,
                attributes: bool = True, device: str | torch.device = "cpu", progress: bool = True) -> Path:
    """Write the inference bundle of a run from checkpoints/{best,last}.pt (default RUN_DIR/bundle).

    attributes: when the training cache has labels, also store attribute vectors (mean code
    with the attribute minus mean code without, over the training split), as the original
    project did after training; this encodes the training split once on `device`.
    """
    run_dir = Path(run_dir).expanduser()
    if checkpoint not in ("best", "last"):
        raise UserError(f"--checkpoint must be best or last, not {checkpoint!r}")
    path = run_dir / CHECKPOINTS / f"{checkpoint}.pt"
    if checkpoint == "best" and not path.is_file() and (run_dir / CHECKPOINTS / "last.pt").is_file():
        _say(f"{path} does not exist yet (no validation has run): using last.pt")
        path = run_dir / CHECKPOINTS / "last.pt"
    if not path.is_file():
        raise CheckpointError(f"{path} does not exist: is {run_dir} a facevae training run (facevae train --out)?")
    state = load_checkpoint(path)
    config = from_dict(RunConfig, state["config"])
    model = FaceVAE(config.model)
    model.load_state_dict(state["model"])
    made = state["data"].get("preprocessing", {})
    preprocessing = Preprocessing(image_size=int(made.get("image_size", config.model.image_size)),
                                  crop=made.get("crop", "squash"), crop_size=int(made.get("crop_size", 148)))
    trained = state["progress"]  # not `progress`: that flag decides whether bars are shown
    provenance = {
        "source": f"facevae training run {run_dir.resolve()}",
        "checkpoint": path.name, "epoch": trained["epoch"], "step": trained["step"],
        "best_validation_loss": trained["best_val"] if trained["best_val"] != float("inf") else None,
        "data": state["data"],
        "train_config": state["config"]["train"], "trained_with": f"torch {torch.__version__.split('+')[0]}",
    }
    face_model = FaceModel(config.model, model.decoder, model.encoder, preprocessing=preprocessing,
                           provenance=provenance).to(device)
    if attributes:
        _add_attribute_vectors(face_model, Path(state["data"]["cache"]), progress)
    return save_bundle(face_model, Path(out).expanduser() if out else run_dir / "bundle")


def _add_attribute_vectors(model: FaceModel, cache_path: Path, progress: bool) -> None:
    """Attribute vectors from the training cache's labels, if it has any and is still there."""
    from ..inference.attributes import compute_attribute_vectors

    if not is_cache(cache_path):
        _say(f"note: the training cache {cache_path} is gone, so the bundle has no attribute vectors "
             f"(add them with `facevae attributes --model RUN_DIR --data DATA`)")
        return
    cache = ImageCache.open(cache_path)
    if not cache.attribute_names:
        return
    result = compute_attribute_vectors(model, cache, "train", progress=progress)
    model.attributes, model.attribute_counts = result.vectors, result.counts
    model.provenance["attributes"] = {"data": str(cache.path), "split": "train", "skipped": result.skipped}
