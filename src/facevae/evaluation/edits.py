"""How well one model's attribute edits do what they say, judged by the attribute classifier.

For each attribute that both the model (a vector) and the classifier (an output) know, and
for the model's variants of it (NAME_fitted from `facevae attributes --from-classifier`,
NAME_orthogonal from `--orthogonal`), judged by the classifier's NAME output, the same codes
are decoded at each strength in STRENGTHS (offset from the pipeline's `resolve_attributes`)
and scored. With P_s the N x A probabilities at strength s and
change = mean over faces of (P_+2 - P_-2), an A vector:

    success        change[target]: how much the edit raises its own attribute
    leak_mean      mean |change[other]| over every other classifier attribute
    leak_worst     max |change[other]|, and which attribute that is
    outside_change mean |pixel(+2) - pixel(-2)| outside FACE_BOX, in 1/255 steps: what an
                   edit does to background, hair and shoulders (inside_change for contrast)
    curve          mean P_s[target] per strength (the probability-vs-strength plot)
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from ..inference.pipeline import FacePipeline
from .classifier import AttributeClassifier

STRENGTHS = (-2.0, -1.0, 0.0, 1.0, 2.0)
# The face in CelebA's aligned frame (squashed to a square): top, bottom, left, right as fractions.
FACE_BOX = (0.3, 0.85, 0.25, 0.75)
# Vectors named NAME + one of these are other directions for NAME, judged by NAME's output.
VARIANT_SUFFIXES = ("_fitted", "_orthogonal")


@dataclass
class EditScore:
    attribute: str
    success: float
    leak_mean: float
    leak_worst: float
    leak_worst_attribute: str
    outside_change: float
    inside_change: float
    strengths: list[float]
    curve: list[float]

    def as_dict(self) -> dict:
        return asdict(self)


def face_mask(size: int) -> torch.Tensor:
    """S x S bool, True inside FACE_BOX."""
    top, bottom, left, right = (round(fraction * size) for fraction in FACE_BOX)
    mask = torch.zeros(size, size, dtype=torch.bool)
    mask[top:bottom, left:right] = True
    return mask


def judged_as(vector: str, outputs: list[str]) -> str | None:
    """The classifier output that judges a model vector: its own name, or its variant's base."""
    if vector in outputs:
        return vector
    for suffix in VARIANT_SUFFIXES:
        if vector.endswith(suffix) and vector[: -len(suffix)] in outputs:
            return vector[: -len(suffix)]
    return None


def shared_attributes(pipe: FacePipeline, classifier: AttributeClassifier) -> list[tuple[str, str]]:
    """(model vector, classifier output that judges it), in the classifier's order, each
    mean-difference vector before its variants."""
    outputs = classifier.attribute_names
    pairs = [(vector, judged_as(vector, outputs)) for vector in pipe.attribute_names]
    return sorted(((v, a) for v, a in pairs if a is not None), key=lambda p: (outputs.index(p[1]), p[0] != p[1], p[0]))


def for_classifier(images: torch.Tensor, classifier: AttributeClassifier) -> torch.Tensor:
    """N x 3 x S x S -> the classifier's size (antialiased bilinear) when the sizes differ."""
    if images.shape[-1] == classifier.image_size:
        return images
    return F.interpolate(images, size=classifier.image_size, mode="bilinear", antialias=True, align_corners=False)


def score_edits(pipe: FacePipeline, classifier: AttributeClassifier, latents: torch.Tensor,
                strengths: tuple[float, ...] = STRENGTHS, label: str = "", progress: bool = True) -> list[EditScore]:
    """One EditScore per shared attribute; latents: N x D codes to edit."""
    names = shared_attributes(pipe, classifier)
    low, high = min(strengths), max(strengths)
    inside = face_mask(pipe.image_size)
    bar = tqdm(total=len(names) * len(strengths), desc=f"editing {label}".strip(), unit="decode",
               disable=not progress)
    scores = []
    for name, judged in names:
        target = classifier.attribute_names.index(judged)
        probabilities, extremes = {}, {}
        for strength in strengths:
            codes = latents + pipe.resolve_attributes({name: strength})
            images = pipe.decode_tensor(codes).float().clamp(0, 1).cpu()  # N x 3 x S x S
            probabilities[strength] = classifier.probabilities(for_classifier(images, classifier)).cpu()  # N x A
            if strength in (low, high):
                extremes[strength] = images
            bar.update()
        change = (probabilities[high] - probabilities[low]).mean(0)  # A
        others = [index for index in range(len(change)) if index != target]
        leaks = change[others].abs() if others else torch.zeros(1)
        worst = int(leaks.argmax())
        pixel_change = (extremes[high] - extremes[low]).abs().mean((0, 1)) * 255  # S x S
        scores.append(EditScore(
            name, float(change[target]), float(leaks.mean()), float(leaks[worst]),
            classifier.attribute_names[others[worst]] if float(leaks[worst]) > 0 else "",
            float(pixel_change[~inside].mean()),
            float(pixel_change[inside].mean()), [float(s) for s in strengths],
            [float(probabilities[s][:, target].mean()) for s in strengths]))
    bar.close()
    return scores
