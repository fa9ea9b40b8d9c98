"""The seed's data loading, as both benchmarks that compare against it model it.

The seed's PyTorch port (../shared/seed/PyTorch_Conversion_Report.md) trains from a custom
`CelebADataset` behind a `DataLoader` with `pin_memory`: every item opens one JPEG with
Pillow, decodes it at full size (178 x 218), resizes it to the model's size and converts it
to a float32 C x H x W tensor in [0, 1] (torchvision's `ToTensor`), every epoch.

The report does not give the DataLoader's `num_workers` (it lists "multiple workers" among
its recommendations). The benchmarks give the seed's loader as many worker processes as
facevae's side uses (`--seed-workers`, default: every core, at most 8), the reading most
favourable to the seed; `--seed-workers 0` is DataLoader's default, decoding in the
training process.

Imported by benchmarks/prepare_throughput.py and benchmarks/train_throughput.py, which run
as scripts, so this folder is on sys.path.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, Dataset

SEED_BATCH_SIZE = 256  # the report's "Batch Size: Increased from 128 to 256"


def default_workers() -> int:
    """Every core this process may use, at most 8: what facevae's side gets in both benchmarks."""
    return min(8, len(os.sched_getaffinity(0)))


class SeedStyleDataset(Dataset):
    """The seed's CelebADataset: open, decode, resize and convert one JPEG per item."""

    def __init__(self, paths: list[Path], size: int) -> None:
        self.paths, self.size = paths, size

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> torch.Tensor:
        with Image.open(self.paths[index]) as image:
            resized = image.convert("RGB").resize((self.size, self.size), Image.Resampling.BILINEAR)
        return torch.from_numpy(np.asarray(resized, np.float32) / 255.0).permute(2, 0, 1)  # 3 x size x size


def seed_loader(paths: list[Path], size: int, batch_size: int, workers: int, pin_memory: bool,
                drop_last: bool = False, persistent: bool = False) -> DataLoader:
    """The seed's shuffling DataLoader over `paths`: batches of float32 N x 3 x size x size."""
    return DataLoader(SeedStyleDataset(paths, size), batch_size=batch_size, shuffle=True, num_workers=workers,
                      pin_memory=pin_memory, drop_last=drop_last, persistent_workers=persistent and workers > 0)
