"""Attribute vectors from labels: mean latent with the attribute minus mean latent without it.

The original project looped over images in Python per attribute. Here one pass over the
split encodes each batch once (encoder means, never samples) and accumulates three sums:

    total      D        sum of all codes x_i
    with_sum   D x A    X^T A  (for attribute a: the sum of codes of images that have it)
    positives  A        column sums of A (how many images have each attribute)

so that mean_with = with_sum / positives and mean_without = (total - with_sum) / (N - positives).
Memory is O(D x A) whatever the number of images.

Edits made with these vectors entangle attributes (glasses come with age and gender in
CelebA), so `orthogonalize` removes the components along other chosen vectors, and
`cosine_matrix` / `write_report` show which vectors point the same way.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw
from tqdm.auto import tqdm

from ..data.cache import ImageCache
from ..errors import UserError
from ..model.bundle import EncoderMissingError, FaceModel
from ..imaging import encode_png, label_font, write_atomic
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
    """Vectors by name (D floats each), counts [with, without], and what was left out and why."""

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
                        f"{size}x{size}; prepare the data at --size {size}")
    rows = cache.split_indices(split)
    if max_images is not None:
        rows = rows[:max_images]
    if len(rows) == 0:
        raise UserError(f"{cache.path} has no images in the '{split}' split; choose another with --split")
    labels = np.asarray(cache.attributes)
    sums = LatentSums.empty(model.latent_dim, labels.shape[1])
    with tqdm(total=len(rows), desc=f"encoding {split}", unit="img", disable=not progress) as bar:
        for start in range(0, len(rows), batch_size):
            batch = rows[start:start + batch_size]
            pixels = torch.from_numpy(np.ascontiguousarray(cache.images[batch]))  # B x S x S x 3 uint8
            images = pixels.permute(0, 3, 1, 2).float().div_(255)
            mean, _ = model.encode(images)
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


def parse_orthogonal(spec: str) -> tuple[str, list[str]]:
    """`TARGET:OTHER,OTHER` -> (target, [others])."""
    target, sep, rest = spec.partition(":")
    others = [name.strip() for name in rest.split(",") if name.strip()]
    if not sep or not target.strip() or not others:
        raise UserError(f"'{spec}' is not TARGET:OTHER,OTHER, e.g. Eyeglasses:Male,Young")
    return target.strip(), others


def cosine_matrix(vectors: dict[str, torch.Tensor]) -> np.ndarray:
    """A x A cosine similarities between the vectors, in their order."""
    stacked = torch.stack([v.double() for v in vectors.values()])  # A x D
    unit = stacked / stacked.norm(dim=1, keepdim=True).clamp_min(1e-12)
    return (unit @ unit.T).numpy()


def _colour(value: float) -> tuple[int, int, int]:
    """Diverging map: -1 blue, 0 white, +1 red."""
    v = float(np.clip(value, -1, 1))
    fade = round(255 * (1 - abs(v)))
    return (255, fade, fade) if v >= 0 else (fade, fade, 255)


LEGEND_TICKS = (-1.0, -0.5, 0.0, 0.5, 1.0)


def heatmap(names: list[str], matrix: np.ndarray, cell: int = 14) -> Image.Image:
    """The cosine matrix as a picture with the names along the left and the top, and a colour
    legend (cosine -1 to +1) below."""
    font = label_font(11)
    label = max(int(font.getlength(name)) for name in names) + 8
    count = len(names)
    legend_width, legend_height = max(count * cell, 160), 44  # 12 pixels either side for the end ticks' text
    image = Image.new("RGB", (label + legend_width + 13, label + count * cell + 1 + legend_height), (255, 255, 255))
    draw = ImageDraw.Draw(image)
    for i in range(count):
        for j in range(count):
            x, y = label + j * cell, label + i * cell
            draw.rectangle((x, y, x + cell, y + cell), fill=_colour(matrix[i, j]), outline=(230, 230, 230))
        draw.text((label - 4, label + i * cell + cell / 2), names[i], fill=(0, 0, 0), font=font, anchor="rm")
    # column names: drawn horizontally on a strip, then rotated to read bottom-up
    strip = Image.new("RGB", (label, count * cell), (255, 255, 255))
    strip_draw = ImageDraw.Draw(strip)
    for j, name in enumerate(names):
        strip_draw.text((4, j * cell + cell / 2), name, fill=(0, 0, 0), font=font, anchor="lm")
    image.paste(strip.rotate(90, expand=True), (label, 0))
    _draw_legend(draw, font, label, label + count * cell + 10, legend_width)
    return image


def _draw_legend(draw: ImageDraw.ImageDraw, font: object, left: int, top: int, width: int) -> None:
    """A colour bar from cosine -1 (blue) through 0 (white) to +1 (red), with ticks."""
    for x in range(width):
        draw.line((left + x, top, left + x, top + 12), fill=_colour(-1 + 2 * x / max(width - 1, 1)))
    draw.rectangle((left, top, left + width - 1, top + 12), outline=(120, 120, 120))
    for tick in LEGEND_TICKS:
        x = left + (tick + 1) / 2 * (width - 1)
        draw.line((x, top + 12, x, top + 16), fill=(0, 0, 0))
        draw.text((x, top + 17), f"{tick:+g}" if tick else "0", fill=(0, 0, 0), font=font, anchor="mt")
    draw.text((left - 4, top + 6), "cosine", fill=(0, 0, 0), font=font, anchor="rm")


def write_report(vectors: dict[str, torch.Tensor], out_dir: str | Path) -> list[Path]:
    """cosine.png (heatmap) and cosine.csv (the matrix with names) in out_dir."""
    if len(vectors) < 2:
        raise UserError("a similarity report needs at least two attribute vectors")
    out_dir = Path(out_dir)
    names = list(vectors)
    matrix = cosine_matrix(vectors)
    text = io.StringIO()
    writer = csv.writer(text, lineterminator="\n")
    writer.writerow(["attribute", *names])
    for name, row in zip(names, matrix):
        writer.writerow([name, *(f"{v:.4f}" for v in row)])
    png = write_atomic(out_dir / "cosine.png", encode_png(heatmap(names, matrix)))
    table = write_atomic(out_dir / "cosine.csv", text.getvalue().encode())
    return [png, table]
