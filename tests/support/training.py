"""Tiny prepared caches and configs for the training tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from facevae.config import RunConfig, TrainConfig
from facevae.data.cache import CacheWriter

from .models import TINY_MODEL


def make_cache(path: Path, count: int = 48, size: int = 32, valid: int = 8, seed: int = 0) -> Path:
    """A cache of `count` smooth synthetic images (a disc on a background); the last `valid`
    are the validation split."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    split = np.zeros(count, np.uint8)
    split[count - valid:] = 1
    with CacheWriter(path, count, size) as writer:
        for i in range(count):
            cx, cy, r = rng.uniform(0.3, 0.7), rng.uniform(0.3, 0.7), rng.uniform(0.15, 0.35)
            disc = ((xx - cx) ** 2 + (yy - cy) ** 2 < r * r)[..., None]
            image = np.where(disc, rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)) + rng.normal(0, 4, (size, size, 3))
            writer.images[i] = np.clip(image, 0, 255).astype(np.uint8)
        attributes = rng.integers(0, 2, (count, 2)).astype(np.int8)
        meta = {"preprocessing": {"image_size": size, "crop": "squash", "crop_size": 148},
                "source": {"data_dir": "synthetic test images"}}
        writer.finish([f"{i:06d}.jpg" for i in range(count)], attributes, ["Smiling", "Eyeglasses"], split, meta)
    return path


def tiny_config(**train: object) -> RunConfig:
    """The tiny model on the CPU in fp32 with small batches; keyword arguments override TrainConfig."""
    values = {"batch_size": 8, "epochs": 1, "lr": 2e-3, "recon_weight": 100.0, "precision": "fp32",
              "device": "cpu", "log_every_steps": 2, "checkpoint_every_steps": 0, "sample_count": 8, **train}
    return RunConfig(model=TINY_MODEL, train=TrainConfig(**values))


def write_config(path: Path, **train: object) -> Path:
    """tiny_config(**train) as a JSON file for `facevae train --config`."""
    import json

    from facevae.config import to_dict

    path.write_text(json.dumps(to_dict(tiny_config(**train))))
    return path


def ddp_one_step(rank: int, world_size: int, port: int, cache: str, out: str) -> None:
    """A torch.multiprocessing.spawn target: one DDP step on the gloo backend; each rank saves
    the positions of its shard and its weights before and after the step to OUT/rank{R}.pt."""
    import os

    import torch

    from facevae.data.cache import ImageCache
    from facevae.training import distributed
    from facevae.training.trainer import Trainer

    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world_size), LOCAL_RANK=str(rank),
                      MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    torch.set_num_threads(1)
    context = distributed.context_from_env()
    device = distributed.init(context, torch.device("cpu"))
    try:
        trainer = Trainer(tiny_config(batch_size=4), ImageCache.open(cache), None, device=device, context=context,
                          progress=False)
        positions, _ = trainer.train_batches.epoch_positions(0)
        before = {k: v.detach().clone() for k, v in trainer.model.named_parameters()}
        trainer.train_epoch(max_steps=1)
        after = {k: v.detach().clone() for k, v in trainer.model.named_parameters()}
        torch.save({"positions": torch.from_numpy(positions), "before": before, "after": after},
                   f"{out}/rank{rank}.pt")
    finally:
        distributed.shutdown()
