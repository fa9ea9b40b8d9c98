from __future__ import annotations

import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader

from facevae.data.cache import CacheError, ImageCache
from facevae.data.dataset import CacheDataset


def test_items_are_uint8_chw_views_of_the_cache(celeba_cache):
    cache = ImageCache.open(celeba_cache)
    for split in ("train", "valid", "test"):
        dataset = CacheDataset(cache, split)
        assert len(dataset) == cache.meta["split_counts"][split]
        image = dataset[0]
        assert image.dtype == torch.uint8 and image.shape == (3, 64, 64)
        row = cache.split_indices(split)[0]
        np.testing.assert_array_equal(image.permute(1, 2, 0).numpy(), cache.images[row])
    assert CacheDataset(celeba_cache, "valid").attributes.shape == (len(CacheDataset(cache, "valid")), 40)


def test_validation_is_never_flipped(celeba_cache):
    torch.manual_seed(0)
    valid = CacheDataset(celeba_cache, "valid", hflip=True)
    plain = CacheDataset(celeba_cache, "valid")
    assert not valid.hflip
    for index in range(len(valid)):
        assert torch.equal(valid[index], plain[index])
    assert torch.equal(valid.get_batch(np.arange(len(valid))), plain.get_batch(np.arange(len(valid))))


def test_training_flips_some_images_horizontally(celeba_cache):
    torch.manual_seed(0)
    train, plain = CacheDataset(celeba_cache, "train", hflip=True), CacheDataset(celeba_cache, "train")
    items = [train[i] for i in range(40)]  # one random draw each
    flipped = [torch.equal(item, plain[i].flip(2)) for i, item in enumerate(items)]
    same = [torch.equal(item, plain[i]) for i, item in enumerate(items)]
    assert any(flipped) and any(same) and all(f or s for f, s in zip(flipped, same))
    batch = train.get_batch(np.arange(40), generator=torch.Generator().manual_seed(1))
    reference = plain.get_batch(np.arange(40))
    flips = [torch.equal(b, r.flip(2)) for b, r in zip(batch, reference)]
    assert any(flips) and not all(flips)


def test_get_batch_matches_items_in_any_order(celeba_cache):
    dataset = CacheDataset(celeba_cache, "train")
    positions = np.array([7, 3, 3, 100, 0])
    batch = dataset.get_batch(positions)
    assert batch.shape == (5, 3, 64, 64) and batch.dtype == torch.uint8 and batch.is_contiguous()
    for image, position in zip(batch, positions):
        assert torch.equal(image, dataset[int(position)])


def test_works_with_a_dataloader_and_rejects_unknown_splits(celeba_cache):
    loader = DataLoader(CacheDataset(celeba_cache, "test"), batch_size=8)
    first = next(iter(loader))
    assert first.shape == (8, 3, 64, 64) and first.dtype == torch.uint8
    with pytest.raises(CacheError, match="Unknown split 'validation'"):
        CacheDataset(celeba_cache, "validation")


def _copy_cache(source, target):
    import shutil

    return shutil.copytree(source, target)


@pytest.mark.parametrize("label_file, array", [
    ("split.npy", np.array(["train", None], dtype=object)),  # needs pickle to load
    ("split.npy", np.zeros(3, np.uint8)),  # wrong length
    ("attributes.npy", np.zeros((2, 2), np.float64)),  # wrong type and shape
])
def test_a_damaged_label_file_is_a_cache_error_naming_the_fix(celeba_cache, tmp_path, label_file, array):
    cache = _copy_cache(celeba_cache, tmp_path / "cache")
    np.save(cache / label_file, array, allow_pickle=True)
    with pytest.raises(CacheError, match=f"{label_file} .*delete it and run `facevae prepare` again"):
        ImageCache.open(cache)


def test_float_images_are_the_pixels_over_255_as_model_input(celeba_cache):
    cache = ImageCache.open(celeba_cache)
    rows = np.array([3, 0, 5])
    images = cache.float_images(rows)
    assert images.shape == (3, 3, cache.image_size, cache.image_size) and images.dtype == torch.float32
    expected = torch.from_numpy(np.asarray(cache.images[rows])).permute(0, 3, 1, 2).double() / 255
    assert torch.allclose(images.double(), expected, atol=1e-7)
    assert float(images.min()) >= 0 and float(images.max()) <= 1
