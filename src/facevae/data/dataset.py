"""A torch Dataset over one split of a prepared cache: uint8 images, flips for training only.

    train = CacheDataset(cache, "train", hflip=True)
    valid = CacheDataset(cache, "valid")          # never flipped, whatever hflip says
    image = train[0]                               # 3 x S x S uint8 tensor
    batch = train.get_batch(np.arange(128))        # 128 x 3 x S x S uint8, one memmap read

Images stay uint8 until they reach the training device (4x less to copy than float32);
the trainer converts them with `images.float() / 255`.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from .cache import ImageCache


class CacheDataset(Dataset):
    """Rows of one split ("train", "valid" or "test"), in cache order."""

    def __init__(self, cache: ImageCache | str | Path, split: str = "train", hflip: bool = False) -> None:
        self.cache = cache if isinstance(cache, ImageCache) else ImageCache.open(cache)
        self.split = split
        self.indices = self.cache.split_indices(split)  # validates the split name
        # Random flips are augmentation: only ever for training, so validation stays comparable.
        self.hflip = bool(hflip) and split == "train"

    def __len__(self) -> int:
        return len(self.indices)

    @property
    def attributes(self) -> np.ndarray:
        """len(self) x A int8 (1 = has the attribute), in the dataset's order."""
        return self.cache.attributes[self.indices]

    @property
    def attribute_names(self) -> list[str]:
        return self.cache.attribute_names

    def __getitem__(self, index: int) -> torch.Tensor:
        """3 x S x S uint8."""
        image = torch.from_numpy(np.array(self.cache.images[self.indices[index]]))  # S x S x 3 copy
        if self.hflip and torch.rand(()) < 0.5:
            image = image.flip(1)
        return image.permute(2, 0, 1).contiguous()

    def get_batch(self, positions: np.ndarray | list[int], generator: torch.Generator | None = None) -> torch.Tensor:
        """B x 3 x S x S uint8 for dataset positions, read with one sorted memmap access
        (much faster than B calls of __getitem__); flips drawn from `generator` when training."""
        positions = np.asarray(positions, np.int64)
        rows = self.indices[positions]
        order = np.argsort(rows, kind="stable")
        pixels = np.empty((len(rows),) + self.cache.images.shape[1:], np.uint8)
        pixels[order] = self.cache.images[rows[order]]  # B x S x S x 3
        batch = torch.from_numpy(pixels).permute(0, 3, 1, 2)  # B x 3 x S x S view
        if self.hflip:
            flip = torch.rand(len(rows), generator=generator) < 0.5
            batch[flip] = batch[flip].flip(3)
        return batch.contiguous()
