"""Faces with PLANTED attributes: pictures where each label has one known, visible cause.

    make_planted_cache(path, count=600, size=32)       # a prepared cache, written directly
    make_planted_celeba(root, count=300)               # a CelebA-format folder (JPEGs + label files)

Every image has a random background, a face-coloured ellipse and pixel noise. Three labels
are drawn independently (probability 0.4 each) and, when set, paint their cause:

    Eyeglasses   a dark bar across the eye line
    Smiling      a bright arc where the mouth is
    Blond_Hair   a yellow region along the top (otherwise the top is a random dark colour)

Every other label (the rest of CelebA's 40 in the folder version; "Random" in the cache) is
random and painted nowhere, so nothing can learn it. `shuffle_labels=True` permutes the
label rows after drawing the pictures: the same images with labels that no longer match.

A confounded cache, like CelebA's smiles and gender: `link=("Smiling", "Eyeglasses", 0.9)`
makes Eyeglasses copy the Smiling label for 90% of the images, and `unpainted={"Smiling": 0.5}`
leaves half the smiles undrawn, so a classifier can only guess those from the glasses.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from ..data.cache import CacheWriter
from ..data.splits import seeded_split
from .celeba import CELEBA_ATTRIBUTES, HEIGHT, WIDTH, jpeg_bytes

PLANTED = ("Eyeglasses", "Smiling", "Blond_Hair")
CACHE_ATTRIBUTES = PLANTED + ("Random",)
PROBABILITY = 0.4
BLOND = (235, 205, 70)


@dataclass
class PlantedData:
    path: Path  # the cache or data folder
    attribute_names: list[str]
    labels: np.ndarray  # count x A int8, as written (after any shuffle)
    split: np.ndarray  # count uint8: 0 train, 1 valid, 2 test


def planted_image(rng: np.random.Generator, has: dict[str, bool], width: int, height: int) -> np.ndarray:
    """One height x width x 3 uint8 picture with the causes of the attributes in `has`."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    u, v = x / width, y / height  # 0..1 across and down
    image = np.empty((height, width, 3), np.float32)
    image[:] = rng.uniform(40, 200, 3)
    face = ((u - 0.5) / 0.3) ** 2 + ((v - 0.56) / 0.36) ** 2 <= 1
    image[face] = (rng.uniform(150, 230), rng.uniform(110, 180), rng.uniform(90, 150))
    top = v < 0.2
    image[top] = BLOND if has.get("Blond_Hair") else rng.uniform(15, 110, 3)
    if has.get("Eyeglasses"):
        image[(v > 0.42) & (v < 0.52) & (u > 0.2) & (u < 0.8)] = rng.uniform(5, 35)
    if has.get("Smiling"):
        radius = np.hypot(u - 0.5, v - 0.6)
        image[(radius > 0.13) & (radius < 0.18) & (v > 0.68)] = rng.uniform(235, 255)
    image += rng.normal(0, 12, image.shape)
    return np.clip(image, 0, 255).round().astype(np.uint8)


def _draw_labels(rng: np.random.Generator, count: int, names: tuple[str, ...]) -> np.ndarray:
    return (rng.random((count, len(names))) < PROBABILITY).astype(np.int8)


def make_planted_cache(path: str | Path, count: int = 600, size: int = 32, seed: int = 0,
                       shuffle_labels: bool = False, val_fraction: float = 0.2, test_fraction: float = 0.2,
                       link: tuple[str, str, float] | None = None,
                       unpainted: dict[str, float] | None = None) -> PlantedData:
    """A prepared cache (data/cache.py) of planted faces with attributes CACHE_ATTRIBUTES;
    link and unpainted make a confounded one (see the module docstring)."""
    rng = np.random.default_rng(seed)
    labels = _draw_labels(rng, count, CACHE_ATTRIBUTES)
    if link is not None:
        source, follower, agreement = CACHE_ATTRIBUTES.index(link[0]), CACHE_ATTRIBUTES.index(link[1]), link[2]
        copied = rng.random(count) < agreement
        labels[copied, follower] = labels[copied, source]
    hidden = {name: rng.random(count) < share for name, share in (unpainted or {}).items()}  # count bools each
    split = seeded_split(count, val_fraction, test_fraction, seed)
    with CacheWriter(Path(path), count, size) as writer:
        for index in range(count):
            has = {name: bool(labels[index, k]) and not (name in hidden and hidden[name][index])
                   for k, name in enumerate(CACHE_ATTRIBUTES)}
            writer.images[index] = planted_image(rng, has, size, size)
        if shuffle_labels:
            labels = labels[rng.permutation(count)]
        meta = {"preprocessing": {"image_size": size, "crop": "squash", "crop_size": 148},
                "source": {"generator": "facevae.testing.planted", "seed": seed, "shuffled_labels": shuffle_labels}}
        writer.finish([f"planted_{index:06d}.png" for index in range(count)], labels, list(CACHE_ATTRIBUTES),
                      split, meta)
    return PlantedData(Path(path), list(CACHE_ATTRIBUTES), labels, split)


def make_planted_celeba(root: str | Path, count: int = 300, seed: int = 0) -> PlantedData:
    """A CelebA folder in the official layout: 178 x 218 JPEGs, list_attr_celeba.txt (all 40
    names; PLANTED ones painted) and list_eval_partition.txt (80/10/10 at random)."""
    root = Path(root)
    rng = np.random.default_rng(seed)
    labels = _draw_labels(rng, count, tuple(CELEBA_ATTRIBUTES))
    split = rng.choice(np.array([0, 1, 2], np.uint8), size=count, p=[0.8, 0.1, 0.1])
    (root / "img_align_celeba").mkdir(parents=True, exist_ok=True)
    names = [f"{index:06d}.jpg" for index in range(1, count + 1)]
    for index, name in enumerate(names):
        has = {attribute: bool(labels[index, CELEBA_ATTRIBUTES.index(attribute)]) for attribute in PLANTED}
        picture = Image.fromarray(planted_image(rng, has, WIDTH, HEIGHT))
        (root / "img_align_celeba" / name).write_bytes(jpeg_bytes(picture))
    rows = [f"{name} " + " ".join(f"{int(value):2d}" for value in labels[index] * 2 - 1)
            for index, name in enumerate(names)]
    (root / "list_attr_celeba.txt").write_text("\n".join([str(count), " ".join(CELEBA_ATTRIBUTES)] + rows) + "\n")
    (root / "list_eval_partition.txt").write_text("".join(f"{name} {part}\n" for name, part in zip(names, split)))
    return PlantedData(root, list(CELEBA_ATTRIBUTES), labels, split)
