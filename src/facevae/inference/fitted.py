"""Classifier-fitted attribute directions (InterFaceGAN-style, Shen et al., CVPR 2020).

Works for any model with a decoder, labelled or not: draw codes from the prior, decode them,
let a classifier score the faces, and fit one linear boundary per attribute in latent space
(scikit-learn's logistic regression on "probability >= 0.5"). The boundary's unit normal n
points towards the attribute.

The unit (how long strength 1 is): the normal is scaled by (mean_with - mean_without) . n,
the distance between the mean code of the sampled faces the classifier says have the
attribute and the mean code of those without it, measured along n. So strength 1 moves a
code as far across the boundary as the two groups' means are apart: the same meaning as a
mean-difference vector's strength 1 (whose length is |mean_with - mean_without|), measured
on the model's own faces instead of labelled photos.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch
from tqdm.auto import tqdm

from ..errors import UserError
from .attributes import AttributeVectors

if TYPE_CHECKING:
    from .pipeline import FacePipeline

Scorer = Callable[[torch.Tensor], torch.Tensor]  # N x 3 x S x S in [0, 1] -> N x A probabilities
MIN_PER_SIDE = 10  # faces needed on each side of a boundary to fit it
SCORE_BATCH = 64


def score_samples(pipeline: "FacePipeline", score: Scorer, samples: int, seed: int,
                  progress: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """`samples` codes from the prior (seeded) and their probabilities: N x D, N x A (float64)."""
    if samples < 2 * MIN_PER_SIDE:
        raise UserError(f"fitting directions needs at least {2 * MIN_PER_SIDE} samples, got {samples}")
    generator = torch.Generator().manual_seed(int(seed))
    codes = torch.randn(samples, pipeline.latent_dim, generator=generator)  # N x D
    probabilities = []
    with tqdm(total=samples, desc="scoring faces", unit="face", disable=not progress) as bar:
        for chunk in codes.split(SCORE_BATCH):
            images = pipeline.decode_tensor(chunk.to(pipeline.model.device)).float()
            with torch.inference_mode():
                probabilities.append(torch.as_tensor(score(images)).detach().double().cpu())
            bar.update(len(chunk))
    return codes.double().numpy(), torch.cat(probabilities).numpy()


def fit_direction(codes: np.ndarray, has: np.ndarray, seed: int) -> np.ndarray:
    """Unit normal of a logistic-regression boundary, scaled to the mean difference along it (D)."""
    try:
        from sklearn.linear_model import LogisticRegression
    except ImportError:
        raise UserError("fitting directions needs scikit-learn: pip install 'facevae[eval]'") from None

    classifier = LogisticRegression(C=1.0, max_iter=1000, random_state=seed)
    classifier.fit(codes, has)
    normal = classifier.coef_[0] / np.linalg.norm(classifier.coef_[0])
    gap = float((codes[has].mean(0) - codes[~has].mean(0)) @ normal)
    return normal * gap


def fit_directions(pipeline: "FacePipeline", score: Scorer, names: Sequence[str], samples: int = 2000,
                   seed: int = 0, progress: bool = True) -> AttributeVectors:
    """One fitted direction per attribute the scorer scores (column a of its output is names[a])."""
    codes, probabilities = score_samples(pipeline, score, samples, seed, progress)
    if probabilities.shape != (samples, len(names)):
        raise UserError(f"the classifier scored {probabilities.shape[1:]} attributes per face but names "
                        f"{len(names)}; the classifier's attribute_names must match its outputs")
    vectors, counts, skipped = {}, {}, {}
    for a, name in enumerate(names):
        has = probabilities[:, a] >= 0.5
        positive = int(has.sum())
        if min(positive, samples - positive) < MIN_PER_SIDE:
            skipped[name] = (f"the classifier sees it in {positive} of {samples} sampled faces; fitting needs "
                             f"{MIN_PER_SIDE} on each side (try more samples)")
            continue
        vectors[name] = torch.from_numpy(fit_direction(codes, has, seed)).float()
        counts[name] = [positive, samples - positive]
    return AttributeVectors(vectors, counts, skipped)
