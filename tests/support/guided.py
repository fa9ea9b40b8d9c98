"""A planted decoder whose Smiling leaks into Eyeglasses, and an exact planted detector.

    decoder = LeakyPlantedDecoder()     # N x 4 codes -> N x 3 x 32 x 32 images in [0, 1]
    guide = PlantedDetector()           # N x 3 x 32 x 32 -> N x 3 logits (Smiling, Eyeglasses, Blond_Hair)

The faces are facevae.testing.planted's: a grey face with a bright mouth arc (Smiling), a dark
bar across the eyes (Eyeglasses) and a yellow band on top (Blond_Hair). Code dimension 0 draws
the arc, 1 the bar, 2 the band, 3 nothing. The leak: a smile also darkens the eye bar, by
LEAK x relu(z0)^2, which no straight line in code space can undo everywhere. The attribute
vectors are the unit axes, so Smiling and Eyeglasses are orthogonal and projecting one out of
the other changes nothing: the linear edit keeps the leak.
"""

from __future__ import annotations

import torch
from torch import nn

SIZE = 32
NAMES = ("Smiling", "Eyeglasses", "Blond_Hair")
LEAK = 0.25


def _masks() -> dict[str, torch.Tensor]:
    y, x = torch.meshgrid(torch.arange(SIZE) / SIZE, torch.arange(SIZE) / SIZE, indexing="ij")
    radius = torch.hypot(x - 0.5, y - 0.6)
    return {"Smiling": ((radius > 0.13) & (radius < 0.18) & (y > 0.68)).float(),
            "Eyeglasses": ((y > 0.42) & (y < 0.52) & (x > 0.2) & (x < 0.8)).float(),
            "Blond_Hair": (y < 0.2).float()}


MASKS = _masks()
VECTORS = {name: torch.eye(4)[index] for index, name in enumerate(NAMES)}  # unit axes


class LeakyPlantedDecoder(nn.Module):
    """N x 4 codes -> N x 3 x 32 x 32 planted faces; Smiling darkens the eye bar too."""

    def forward(self, codes: torch.Tensor) -> torch.Tensor:
        smile = torch.sigmoid(2 * codes[:, 0])  # N
        glasses = torch.sigmoid(2 * codes[:, 1]) + LEAK * torch.relu(codes[:, 0]) ** 2
        blond = torch.sigmoid(2 * codes[:, 2])
        image = torch.full((len(codes), 3, SIZE, SIZE), 0.5, device=codes.device)
        image = image + 0.45 * smile[:, None, None, None] * MASKS["Smiling"]
        image = image - 0.3 * glasses[:, None, None, None] * MASKS["Eyeglasses"]
        yellow = torch.tensor([0.4, 0.3, -0.4], device=codes.device)[None, :, None, None]
        return (image + blond[:, None, None, None] * yellow * MASKS["Blond_Hair"]).clamp(0, 1)


class PlantedDetector(nn.Module):
    """The exact detector of the planted causes: logits from each region's mean brightness."""

    attribute_names = list(NAMES)
    image_size = SIZE

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        grey = images.mean(1)  # N x S x S
        smile = (grey * MASKS["Smiling"]).sum((1, 2)) / MASKS["Smiling"].sum()
        bar = (grey * MASKS["Eyeglasses"]).sum((1, 2)) / MASKS["Eyeglasses"].sum()
        band = images[:, 0] - images[:, 2]
        blond = (band * MASKS["Blond_Hair"]).sum((1, 2)) / MASKS["Blond_Hair"].sum()
        return torch.stack([20 * (smile - 0.72), 20 * (0.35 - bar), 10 * (blond - 0.4)], 1)
