"""Training batches straight from the prepared cache, normalised on the device.

    uint8 N x S x S x 3 memmap --gather--> pinned uint8 --non_blocking copy--> device
        --> float / 255, viewed as N x 3 x S x S (channels_last in memory, no copy)

- No JPEG decoding and no per-image Python: one sorted memmap read per batch.
- On a GPU the whole split is copied to device memory once when it fits (CelebA at 64x64
  is 2.5 GB), and batches are gathered there.
- Every epoch's order (and its flips) is a function of (seed, epoch) alone, so a resumed
  run sees the same batches as an uninterrupted one.
- With several processes each rank takes every world_size-th image of the epoch's
  permutation, padded like torch's DistributedSampler so every rank gets as many batches.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator

import numpy as np
import torch

from ..data.cache import ImageCache

RESIDENT_FRACTION = 0.4  # keep a split on the GPU when it takes at most this share of free memory


class CacheBatches:
    """The batches of one split for one rank; iterate with `batches(epoch)`.

    Yields float images N x 3 x S x S in [0, 1] on `device` (channels_last strides when
    channels_last is set). Training splits are shuffled; validation keeps cache order and
    is never flipped.
    """

    def __init__(self, cache: ImageCache, split: str, batch_size: int, device: torch.device, *,
                 shuffle: bool, seed: int = 0, hflip: bool = False, rank: int = 0, world_size: int = 1,
                 channels_last: bool = True, workers: int = 0, pad_shards: bool = True) -> None:
        self.images = cache.images  # N x S x S x 3 uint8 memmap
        self.rows = cache.split_indices(split)  # ascending cache rows of the split
        self.batch_size, self.device = batch_size, device
        self.shuffle, self.seed, self.hflip = shuffle, seed, hflip
        self.rank, self.world_size = rank, world_size
        self.channels_last = channels_last
        # Padding makes every rank take the same number of steps (DDP needs that for training);
        # validation sums over ranks instead, so it is not padded and counts each image once.
        self.pad_shards = pad_shards
        self.resident = self._make_resident() if device.type == "cuda" else None
        self.workers = max(workers, 1 if device.type == "cuda" and self.resident is None else 0)

    # --- which images, in which order --------------------------------------------------

    def __len__(self) -> int:
        """Batches per epoch on this rank (the last one may be smaller)."""
        return -(-self.usable // self.batch_size)

    @property
    def shard_size(self) -> int:
        count = len(self.rows)
        if self.pad_shards:
            return -(-count // self.world_size)
        return len(range(self.rank, count, self.world_size))

    @property
    def usable(self) -> int:
        """Images per epoch on this rank: a last training batch of one image is left out,
        because batch norm cannot train on a single image."""
        size = self.shard_size
        return size - 1 if self.shuffle and size > 1 and size % self.batch_size == 1 else size

    def epoch_positions(self, epoch: int) -> tuple[np.ndarray, np.ndarray]:
        """(positions into the split, flip flags) of this rank's images for one epoch."""
        count = len(self.rows)
        rng = np.random.default_rng([self.seed, epoch])
        order = rng.permutation(count) if self.shuffle else np.arange(count)
        flips = (rng.random(count) < 0.5) if self.hflip else np.zeros(count, bool)
        if self.pad_shards and count % self.world_size:
            pad = self.world_size - count % self.world_size  # repeat the head, like DistributedSampler
            order = np.concatenate([order, order[:pad]])
            flips = np.concatenate([flips, flips[:pad]])
        return order[self.rank::self.world_size], flips[self.rank::self.world_size]

    # --- getting them onto the device --------------------------------------------------

    def _make_resident(self) -> torch.Tensor | None:
        """Copy the split to the GPU (S x S x 3 uint8 per image) if it fits comfortably."""
        size = self.images.shape[1]
        needed = len(self.rows) * size * size * 3
        free, _ = torch.cuda.mem_get_info(self.device)
        if needed == 0 or needed > RESIDENT_FRACTION * free:
            return None
        resident = torch.empty((len(self.rows), size, size, 3), dtype=torch.uint8, device=self.device)
        chunk = 8192
        for start in range(0, len(self.rows), chunk):
            rows = self.rows[start:start + chunk]
            resident[start:start + len(rows)] = torch.from_numpy(np.ascontiguousarray(self.images[rows]))
        return resident

    def _gather(self, positions: np.ndarray) -> torch.Tensor:
        """B x S x S x 3 uint8 on the CPU (pinned for a GPU), read in ascending row order."""
        rows = self.rows[positions]
        order = np.argsort(rows, kind="stable")
        out = torch.empty((len(rows),) + self.images.shape[1:], dtype=torch.uint8,
                          pin_memory=self.device.type == "cuda")
        out.numpy()[order] = self.images[rows[order]]
        return out

    def _to_model_input(self, pixels: torch.Tensor, flips: np.ndarray) -> torch.Tensor:
        """uint8 B x S x S x 3 (any device) -> float B x 3 x S x S in [0, 1] on the device."""
        pixels = pixels.to(self.device, non_blocking=True)
        images = pixels.permute(0, 3, 1, 2).float().div_(255.0)  # channels_last strides
        if flips.any():
            mask = torch.from_numpy(flips).to(self.device, non_blocking=True).view(-1, 1, 1, 1)
            images = torch.where(mask, images.flip(3), images)
        if not self.channels_last:
            images = images.contiguous()
        return images

    def batches(self, epoch: int, skip: int = 0) -> Iterator[torch.Tensor]:
        """This rank's batches of `epoch`, leaving out the first `skip` (for resuming)."""
        positions, flips = self.epoch_positions(epoch)
        end = self.usable
        spans = [(start, min(start + self.batch_size, end))
                 for start in range(skip * self.batch_size, end, self.batch_size)]
        if self.resident is not None:  # the epoch's order goes to the GPU once; batches are gathered there
            order = torch.from_numpy(positions[:end]).to(self.device)
            for start, stop in spans:
                yield self._to_model_input(self.resident[order[start:stop]], flips[start:stop])
            return
        loaded = ((self._gather(positions[start:stop]), flips[start:stop]) for start, stop in spans)
        if self.workers:
            loaded = _prefetch(loaded, depth=2 * self.workers)
        for pixels, chunk_flips in loaded:
            yield self._to_model_input(pixels, chunk_flips)


def _prefetch(items: Iterator, depth: int) -> Iterator:
    """Run `items` in a background thread, `depth` ahead (memmap reads release the GIL)."""
    buffer: queue.Queue = queue.Queue(maxsize=depth)
    done, stop = object(), threading.Event()

    def produce() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        buffer.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            buffer.put(done)
        except BaseException as error:  # handed to the consumer, which re-raises it
            buffer.put(error)

    thread = threading.Thread(target=produce, daemon=True, name="facevae-batches")
    thread.start()
    try:
        while (item := buffer.get()) is not done:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
