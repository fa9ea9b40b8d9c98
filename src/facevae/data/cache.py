"""The prepared-image cache: decode once, train many times.

A cache is a folder:

    images.u8        N x S x S x 3 uint8, raw row-major (open with np.memmap; channels-last
                     as decoded, converted to N x 3 x S x S on the training device)
    attributes.npy   N x A int8, 1 = has the attribute, 0 = has not (A may be 0)
    split.npy        N uint8, 0 = train, 1 = valid, 2 = test
    filenames.txt    N lines, each image's path relative to the data folder
    meta.json        format, version, count, image size, preprocessing, attribute names,
                     source folder and a fingerprint of it; written last

It is built in a temporary sibling folder and renamed into place only when complete, so
an interrupted `prepare` never leaves a folder that looks like a cache.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from ..atomic import make_staging_dir, replace_dir
from ..errors import UserError
from ..files import read_json

if TYPE_CHECKING:
    import torch

CACHE_FORMAT = "facevae-image-cache"
CACHE_VERSION = 1
SPLITS = {"train": 0, "valid": 1, "test": 2}


class CacheError(UserError):
    """A folder that is not a complete, readable cache."""


def is_cache(path: str | Path) -> bool:
    """True when path holds a complete cache (its meta.json names our format)."""
    meta = Path(path) / "meta.json"
    if not meta.is_file():
        return False
    try:
        values = read_json(meta)
    except UserError:
        return False
    return isinstance(values, dict) and values.get("format") == CACHE_FORMAT


class CacheWriter:
    """Fill a new cache of `count` images in a temporary folder, then publish it atomically.

        with CacheWriter(target, count, size) as writer:
            writer.images[i] = ...            # S x S x 3 uint8
            writer.finish(filenames, attributes, attribute_names, split, meta)

    Leaving the block without `finish` (an error, Ctrl-C) deletes the temporary folder.
    """

    def __init__(self, target: str | Path, count: int, image_size: int) -> None:
        self.target = Path(target)
        self.count = count
        self.image_size = image_size
        self.tmp = make_staging_dir(self.target)
        shape = (max(count, 1), image_size, image_size, 3)
        self.images = np.memmap(self.tmp / "images.u8", dtype=np.uint8, mode="w+", shape=shape)
        self.finished = False

    def __enter__(self) -> "CacheWriter":
        return self

    def __exit__(self, *exc: object) -> None:
        if not self.finished:
            del self.images
            shutil.rmtree(self.tmp, ignore_errors=True)

    def finish(self, filenames: list[str], attributes: np.ndarray, attribute_names: list[str],
               split: np.ndarray, meta: dict[str, Any], keep: np.ndarray | None = None) -> Path:
        """Write the label files and meta.json, then rename the folder into place.

        keep: optional boolean mask of rows to keep (e.g. without unreadable images); the
        image file is compacted in place, so the published cache holds only kept rows.
        """
        if keep is not None and not keep.all():
            kept = np.flatnonzero(keep)
            for new, old in enumerate(kept):  # forward copy is safe: new <= old
                if new != old:
                    self.images[new] = self.images[old]
            filenames = [filenames[i] for i in kept]
            attributes, split = attributes[kept], split[kept]
        count = len(filenames)
        if not (len(attributes) == len(split) == count):
            raise CacheError("filenames, attributes and split must have one row per image")
        self.images.flush()
        del self.images
        with open(self.tmp / "images.u8", "r+b") as handle:
            handle.truncate(count * self.image_size * self.image_size * 3)
        np.save(self.tmp / "attributes.npy", np.asarray(attributes, dtype=np.int8).reshape(count, len(attribute_names)))
        np.save(self.tmp / "split.npy", np.asarray(split, dtype=np.uint8))
        (self.tmp / "filenames.txt").write_text("".join(f"{name}\n" for name in filenames), encoding="utf-8")
        full_meta = {**meta, "format": CACHE_FORMAT, "version": CACHE_VERSION, "count": count,
                     "image_size": self.image_size, "attribute_names": list(attribute_names),
                     "split_counts": {name: int((split == code).sum()) for name, code in SPLITS.items()}}
        (self.tmp / "meta.json").write_text(json.dumps(full_meta, indent=2), encoding="utf-8")
        replace_dir(self.tmp, self.target)
        self.finished = True
        return self.target


def _read_labels(file: Path, dtype: type, shape: tuple[int, ...]) -> np.ndarray:
    """A label array of the cache, read without pickle and checked against meta.json."""
    fix = "the cache is damaged: delete it and run `facevae prepare` again"
    try:
        array = np.load(file, allow_pickle=False)
    except (OSError, ValueError, EOFError) as error:  # object arrays need pickle: refused here
        raise CacheError(f"{file} is not a plain NumPy array ({error}); {fix}") from None
    if array.dtype != dtype or array.shape != shape:
        raise CacheError(f"{file} holds {array.dtype} {array.shape}, expected {np.dtype(dtype)} {shape}; {fix}")
    return array


@dataclass
class ImageCache:
    """A complete cache, opened read-only. `images` is a memmap: nothing is loaded until used."""

    path: Path
    meta: dict[str, Any]
    images: np.ndarray  # N x S x S x 3 uint8
    attributes: np.ndarray  # N x A int8 in {0, 1}
    split: np.ndarray  # N uint8
    filenames: list[str]

    @classmethod
    def open(cls, path: str | Path) -> "ImageCache":
        path = Path(path)
        if not is_cache(path):
            raise CacheError(
                f"{path} is not a prepared cache (no complete meta.json). Run "
                f"`facevae prepare DATA_DIR --out {path}` first, or pass the raw data folder"
            )
        meta = read_json(path / "meta.json", CacheError, "run `facevae prepare` again")
        if meta.get("version") != CACHE_VERSION:
            raise CacheError(f"{path} was written by cache format version {meta.get('version')}; "
                             f"this facevae reads version {CACHE_VERSION}. Run `facevae prepare` again")
        count, size = int(meta["count"]), int(meta["image_size"])
        expected = count * size * size * 3
        actual = (path / "images.u8").stat().st_size
        if actual != expected:
            raise CacheError(f"{path}/images.u8 holds {actual} bytes, expected {expected}: the cache is "
                             f"damaged. Delete it and run `facevae prepare` again")
        images = (np.memmap(path / "images.u8", dtype=np.uint8, mode="r", shape=(count, size, size, 3))
                  if count else np.zeros((0, size, size, 3), np.uint8))
        filenames = (path / "filenames.txt").read_text(encoding="utf-8").splitlines()
        attributes = _read_labels(path / "attributes.npy", np.int8, (count, len(meta.get("attribute_names", []))))
        split = _read_labels(path / "split.npy", np.uint8, (count,))
        return cls(path, meta, images, attributes, split, filenames)

    @property
    def image_size(self) -> int:
        return int(self.meta["image_size"])

    @property
    def attribute_names(self) -> list[str]:
        return list(self.meta["attribute_names"])

    def __len__(self) -> int:
        return len(self.filenames)

    def float_images(self, rows: np.ndarray, device: "torch.device | str | None" = None) -> "torch.Tensor":
        """Rows as model input: N x 3 x S x S float32 in [0, 1] (channels-last in memory), on
        `device` (the uint8 pixels travel, a quarter of the floats' bytes)."""
        import torch

        pixels = torch.from_numpy(np.ascontiguousarray(self.images[rows]))  # N x S x S x 3 uint8
        return pixels.to(device).permute(0, 3, 1, 2).float().div_(255.0)

    def split_indices(self, split: str) -> np.ndarray:
        """Row numbers of one split ("train", "valid" or "test"), ascending."""
        if split not in SPLITS:
            raise CacheError(f"Unknown split '{split}'; choose one of {', '.join(SPLITS)}")
        return np.flatnonzero(self.split == SPLITS[split])
