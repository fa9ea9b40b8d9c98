"""How attribute vectors point relative to each other: the cosine matrix, drawn as a heatmap
(names along the left and the top, a colour legend below) and written as cosine.png and
cosine.csv (`facevae attributes --report`; the GUI's *Attribute similarities* page).

Attributes whose vectors point the same way move together when edited.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageDraw

from ..errors import UserError
from ..imaging import encode_png, label_font, write_atomic


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


def write_similarity_report(vectors: dict[str, torch.Tensor], out_dir: str | Path) -> list[Path]:
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
