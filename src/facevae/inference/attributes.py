"""Attribute vectors from labels: mean latent with the attribute minus mean latent without it.

The original project looped over images in Python per attribute. Here one pass over the
split encodes each batch once (encoder means, never samples) and accumulates three sums:

    total      D        sum of all codes x_i
    with_sum   D x A    X^T A  (for attribute a: the sum of codes of images that have it)
    positives  A        column sums of A (how many images have each attribute)

so that mean_with = with_sum / positives and mean_without = (total - with_sum) / (N - positives).
Memory is O(D x A) whatever the number of images.

Edits made with these vectors entangle attributes (glasses come with age and gender in
CelebA), so `orthogonalize` removes the components along other chosen vectors;
facevae.evaluation.similarity shows which vectors point the same way.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from tqdm.auto import tqdm

from ..data.cache import ImageCache
from ..errors import UserError
from ..model.bundle import EncoderMissingError, FaceModel
from .directions import orthonormal_basis, project_out

ORTHOGONAL_SUFFIX = "_orthogonal"


@dataclass
class LatentSums:
    """The streaming sums of one pass (float64)."""

    total: np.ndarray  # D
    with_sum: np.ndarray  # D x A
    positives: np.ndarray  # A
    count: int

    @classmethod
    def empty(cls, latent_dim: int, attributes: int) -> "LatentSums":
        return cls(np.zeros(latent_dim), np.zeros((latent_dim, attributes)), np.zeros(attributes, np.int64), 0)

    def add(self, latents: np.ndarray, labels: np.ndarray) -> None:
        """latents: B x D codes; labels: B x A in {0, 1}."""
        latents = latents.astype(np.float64)
        self.total += latents.sum(0)
        self.with_sum += latents.T @ labels.astype(np.float64)
        self.positives += labels.astype(np.int64).sum(0)
        self.count += len(latents)


@dataclass
class AttributeVectors:
    """Attribute directions, however they were found (mean differences here, a classifier's
    boundaries in facevae.inference.fitted): vectors by name (D float32 each), counts
    [with, without] of the images or samples behind them, and what was left out and why."""

    vectors: dict[str, torch.Tensor]
    counts: dict[str, list[int]]
    skipped: dict[str, str] = field(default_factory=dict)


def vectors_from_sums(sums: LatentSums, names: list[str]) -> AttributeVectors:
    """Mean with minus mean without, per attribute; attributes seen only one way are left out."""
    vectors, counts, skipped = {}, {}, {}
    for a, name in enumerate(names):
        positive = int(sums.positives[a])
        negative = sums.count - positive
        if positive == 0 or negative == 0:
            skipped[name] = f"no image {'has' if positive == 0 else 'lacks'} it ({positive} with, {negative} without)"
            continue
        mean_with = sums.with_sum[:, a] / positive
        mean_without = (sums.total - sums.with_sum[:, a]) / negative
        vectors[name] = torch.from_numpy(mean_with - mean_without).float()
        counts[name] = [positive, negative]
    return AttributeVectors(vectors, counts, skipped)


@torch.inference_mode()
def encode_sums(model: FaceModel, cache: ImageCache, split: str = "train", batch_size: int = 256,
                max_images: int | None = None, progress: bool = True) -> LatentSums:
    """Encode one split of a cache once (encoder means) and accumulate the sums."""
    if not model.has_encoder:
        raise EncoderMissingError(
            "Computing attribute vectors needs the encoder (the mean code of each training image); this "
            "model has only a decoder. Use a bundle from a facevae training run, or import the original "
            "project's encoder.keras with `facevae import-keras`")
    size = model.config.image_size
    if cache.image_size != size:
        raise UserError(f"{cache.path} holds {cache.image_size}x{cache.image_size} images but the model takes "
                        f"{size}x{size}; prepare the data at that size ({{option}})", option="size", value=size)
    rows = cache.split_indices(split)
    if max_images is not None:
        rows = rows[:max_images]
    if len(rows) == 0:
        raise UserError(f"{cache.path} has no images in the '{split}' split; choose another ({{option}})",
                        option="split")
    labels = np.asarray(cache.attributes)
    sums = LatentSums.empty(model.latent_dim, labels.shape[1])
    with tqdm(total=len(rows), desc=f"encoding {split}", unit="img", disable=not progress) as bar:
        for start in range(0, len(rows), batch_size):
            batch = rows[start:start + batch_size]
            mean, _ = model.encode(cache.float_images(batch))
            sums.add(mean.cpu().numpy(), labels[batch])
            bar.update(len(batch))
    return sums


def compute_attribute_vectors(model: FaceModel, cache: ImageCache, split: str = "train", batch_size: int = 256,
                              max_images: int | None = None, progress: bool = True) -> AttributeVectors:
    """The vectors of every labelled attribute of the cache, from one pass over `split`."""
    if not cache.attribute_names:
        raise UserError(f"{cache.path} has no attribute labels: CelebA's list_attr_celeba.txt, or a CSV "
                        f"with one 0/1 column per attribute next to a folder of images")
    sums = encode_sums(model, cache, split, batch_size, max_images, progress)
    return vectors_from_sums(sums, cache.attribute_names)


def orthogonalize(vectors: dict[str, torch.Tensor], target: str, others: list[str]) -> torch.Tensor:
    """`target` without its components along the span of `others` (D vector), rescaled to the
    target's length: the projection `--keep` applies on the fly (facevae.inference.directions).

    The result is orthogonal to every one of `others`, so adding it moves the code along
    none of them (to first order: the decoder is not linear). Projecting shortens the
    vector (to 55% for Eyeglasses without Male and Young on the pretrained model); the
    rescaling keeps strength 1 a step as long as the plain vector's.
    """
    missing = [name for name in [target, *others] if name not in vectors]
    if missing:
        raise UserError(f"no attribute vector named {', '.join(missing)}; valid names: {', '.join(vectors)}")
    basis = orthonormal_basis([vectors[name] for name in others])
    return project_out(vectors[target], basis, target, ", ".join(others)).float()
