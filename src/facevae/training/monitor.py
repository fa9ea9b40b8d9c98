"""What rank 0 shows while training: TensorBoard scalars and image grids, sample PNGs.

    RUN_DIR/tensorboard/   event files (`tensorboard --logdir RUN_DIR`)
    RUN_DIR/samples/       epoch_001_generated.png, epoch_001_reconstructions.png, ...
    RUN_DIR/metrics.jsonl  the same scalars, one JSON line per logging step, epoch or validation

TensorBoard is in the `train` extra; without it the run goes on with a warning and
still writes the PNG grids.
"""

from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import numpy as np
import torch

from ..data.cache import ImageCache
from ..imaging import encode_png, make_grid, to_uint8, write_atomic
from ..model.vae import FaceVAE


class RunMonitor:
    def __init__(self, run_dir: Path, purge_step: int | None = None) -> None:
        self.samples_dir = run_dir / "samples"
        self.metrics = run_dir / "metrics.jsonl"
        run_dir.mkdir(parents=True, exist_ok=True)
        self.writer = None
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError:
            warnings.warn("TensorBoard is not installed, so this run writes no event files "
                          "(pip install 'facevae[train]'); sample grids still go to samples/", stacklevel=2)
        else:
            # purge_step drops events a resumed run is about to write again.
            self.writer = SummaryWriter(str(run_dir / "tensorboard"), purge_step=purge_step)

    def scalars(self, values: dict[str, float], step: int) -> None:
        """values: tag -> number, e.g. {"train/total": 61.9, "train/lr": 5e-4}; also one line of
        RUN_DIR/metrics.jsonl, {"step": step, **values}, for scripts (benchmarks/train_curve.py)."""
        if self.writer is not None:
            for tag, value in values.items():
                self.writer.add_scalar(tag, value, step)
        with open(self.metrics, "a", encoding="utf-8") as log:  # appended: a log, read line by line
            log.write(json.dumps({"step": step, **values}) + "\n")

    def text(self, tag: str, message: str, step: int) -> None:
        """A message in TensorBoard's Text tab (the collapse warning) and in metrics.jsonl."""
        if self.writer is not None:
            self.writer.add_text(tag, message, step)
            self.writer.flush()
        with open(self.metrics, "a", encoding="utf-8") as log:
            log.write(json.dumps({"step": step, tag: message}) + "\n")

    def image_grid(self, name: str, images: torch.Tensor, epoch: int, columns: int) -> Path:
        """Tile N x 3 x H x W images in [0, 1] into samples/epoch_EEE_NAME.png and TensorBoard."""
        grid = make_grid(to_uint8(images), columns=columns)
        path = write_atomic(self.samples_dir / f"epoch_{epoch:03d}_{name}.png", encode_png(grid))
        if self.writer is not None:
            self.writer.add_image(f"samples/{name}", np.asarray(grid), epoch, dataformats="HWC")
        return path

    def flush(self) -> None:
        if self.writer is not None:
            self.writer.flush()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


class SampleGrids:
    """Fixed inputs for the per-epoch grids, the same faces every epoch and every resume: latent
    codes drawn from `seed`, and the first cache rows of `split` with their reconstructions."""

    def __init__(self, cache: ImageCache, split: str, count: int, latent_dim: int, seed: int,
                 device: torch.device) -> None:
        count = max(1, count)
        generator = torch.Generator().manual_seed(seed)
        self.latents = torch.randn(count, latent_dim, generator=generator).to(device)  # count x D
        rows = cache.split_indices(split)[: min(count, 32)]
        self.images = torch.from_numpy(np.ascontiguousarray(cache.images[rows])).to(device)  # N x S x S x 3 uint8

    @torch.no_grad()
    def write(self, model: FaceVAE, monitor: RunMonitor, epoch: int) -> None:
        """Faces from the fixed codes, and the fixed images next to their reconstructions (from
        the encoder mean), as PNG grids and in TensorBoard; the model is left in train mode."""
        model.eval()
        generated = model.decode(self.latents).float()
        originals = self.images.permute(0, 3, 1, 2).float().div(255.0)
        recon = model.decode(model.encode(originals)[0]).float()
        model.train()
        pairs = torch.stack([originals, recon], dim=1).flatten(0, 1)  # original, reconstruction, ...
        monitor.image_grid("generated", generated, epoch, columns=math.ceil(math.sqrt(len(generated))))
        monitor.image_grid("reconstructions", pairs, epoch, columns=8)
        monitor.flush()
