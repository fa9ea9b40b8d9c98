from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from facevae.data.cache import ImageCache
from facevae.training.data import CacheBatches

CPU = torch.device("cpu")


def _batches(cache: Path, split: str = "train", **kwargs: object) -> CacheBatches:
    options = {"shuffle": split == "train", "seed": 3, **kwargs}
    return CacheBatches(ImageCache.open(cache), split, 8, CPU, **options)  # type: ignore[arg-type]


def test_batches_are_the_cache_pixels_over_255_in_channels_last(tiny_cache: Path) -> None:
    cache = ImageCache.open(tiny_cache)
    valid = _batches(tiny_cache, "valid")
    (batch,) = list(valid.batches(0))
    expected = torch.from_numpy(np.array(cache.images[cache.split_indices("valid")])).permute(0, 3, 1, 2) / 255.0
    assert batch.dtype == torch.float32 and batch.shape == (8, 3, 32, 32)
    assert batch.is_contiguous(memory_format=torch.channels_last)
    assert torch.equal(batch, expected)
    assert _batches(tiny_cache, "valid", channels_last=False).batches(0).__next__().is_contiguous()


def test_each_epoch_is_a_seeded_permutation(tiny_cache: Path) -> None:
    train = _batches(tiny_cache)
    first, _ = train.epoch_positions(0)
    assert sorted(first.tolist()) == list(range(40))
    assert np.array_equal(first, _batches(tiny_cache).epoch_positions(0)[0])  # same seed, same order
    assert not np.array_equal(first, train.epoch_positions(1)[0])  # a new order every epoch
    assert not np.array_equal(first, _batches(tiny_cache, seed=4).epoch_positions(0)[0])
    # skipping batches (resume) yields exactly the rest of the epoch
    everything = torch.cat(list(train.batches(0)))
    assert torch.equal(torch.cat(list(train.batches(0, skip=2))), everything[16:])


def test_flips_only_for_training(tiny_cache: Path) -> None:
    plain = torch.cat(list(_batches(tiny_cache).batches(0)))
    flipped_batches = _batches(tiny_cache, hflip=True)
    flipped = torch.cat(list(flipped_batches.batches(0)))
    _, flags = flipped_batches.epoch_positions(0)
    assert 0 < flags.sum() < len(flags)
    assert torch.equal(flipped[torch.from_numpy(flags)], plain[torch.from_numpy(flags)].flip(3))
    assert torch.equal(flipped[torch.from_numpy(~flags)], plain[torch.from_numpy(~flags)])


def test_ranks_get_disjoint_equal_shards_like_distributed_sampler(tiny_cache: Path) -> None:
    shards = [_batches(tiny_cache, rank=r, world_size=3).epoch_positions(5)[0] for r in range(3)]
    assert [len(s) for s in shards] == [14, 14, 14]  # 40 images padded to 42
    union = np.concatenate(shards)
    assert set(union.tolist()) == set(range(40))
    assert len(set(union.tolist())) == 40 and len(union) == 42  # only the 2 padding images repeat
    two = [set(_batches(tiny_cache, rank=r, world_size=2).epoch_positions(0)[0].tolist()) for r in range(2)]
    assert two[0].isdisjoint(two[1]) and two[0] | two[1] == set(range(40))
    # validation is not padded: every image is counted exactly once over the ranks
    valid = [_batches(tiny_cache, "valid", rank=r, world_size=3, pad_shards=False) for r in range(3)]
    assert sum(v.usable for v in valid) == 8


def test_a_last_training_batch_of_one_image_is_left_out(tmp_path: Path) -> None:
    from support.training import make_cache

    cache = make_cache(tmp_path / "cache", count=17 + 4, valid=4)  # 17 training images, batch 8
    train = _batches(cache)
    assert len(train) == 2 and [len(b) for b in train.batches(0)] == [8, 8]
    assert [len(b) for b in _batches(cache, "valid").batches(0)] == [4]


def test_background_prefetch_gives_the_same_batches(tiny_cache: Path) -> None:
    direct = list(_batches(tiny_cache).batches(2))
    threaded = list(_batches(tiny_cache, workers=2).batches(2))
    assert all(torch.equal(a, b) for a, b in zip(direct, threaded, strict=True))


def test_a_device_resident_split_gives_the_same_batches(tiny_cache: Path) -> None:
    """The GPU path (the whole split in device memory, gathered there), exercised on the CPU."""
    cache = ImageCache.open(tiny_cache)
    streamed = _batches(tiny_cache, hflip=True)
    resident = _batches(tiny_cache, hflip=True)
    resident.resident = torch.from_numpy(np.array(cache.images[resident.rows]))
    for epoch in (0, 1):
        pairs = zip(streamed.batches(epoch, skip=1), resident.batches(epoch, skip=1), strict=True)
        assert all(torch.equal(a, b) for a, b in pairs)
