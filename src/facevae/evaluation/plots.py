"""PNG charts for the evaluation report, drawn with Pillow (no plotting library needed).

    success_vs_leak(points)  one dot per (model, attribute): x = mean leak, y = success
    probability_curves(...)  per attribute: mean P(target) against edit strength

Each returns a PIL image; report.py encodes it with imaging.encode_png.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from PIL import Image, ImageDraw

from ..imaging import label_font

WIDTH, HEIGHT = 720, 480
MARGIN_LEFT, MARGIN_RIGHT, MARGIN_TOP, MARGIN_BOTTOM = 64, 180, 52, 52
PALETTE = ((31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75),
           (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207))
AXIS, GRID, TEXT = (60, 60, 60), (225, 225, 225), (20, 20, 20)


def colour(index: int) -> tuple[int, int, int]:
    return PALETTE[index % len(PALETTE)]


@dataclass
class Axes:
    """Data ranges mapped onto the plotting area of a WIDTH x HEIGHT canvas."""

    x_range: tuple[float, float]
    y_range: tuple[float, float]

    def point(self, x: float, y: float) -> tuple[float, float]:
        (x0, x1), (y0, y1) = self.x_range, self.y_range
        px = MARGIN_LEFT + (x - x0) / (x1 - x0 or 1) * (WIDTH - MARGIN_LEFT - MARGIN_RIGHT)
        py = HEIGHT - MARGIN_BOTTOM - (y - y0) / (y1 - y0 or 1) * (HEIGHT - MARGIN_TOP - MARGIN_BOTTOM)
        return px, py


def nice_range(low: float, high: float) -> tuple[float, float, float]:
    """(low, high, step) widened to whole steps of 1, 2, 2.5 or 5 x 10^k, about 4-8 ticks."""
    span = max(high - low, 1e-9)
    magnitude = 10 ** math.floor(math.log10(span / 4))
    step = next(magnitude * m for m in (1, 2, 2.5, 5, 10) if span / (magnitude * m) <= 8)
    return math.floor(low / step + 1e-9) * step, math.ceil(high / step - 1e-9) * step, step


def _ticks(low: float, high: float) -> list[float]:
    _, _, step = nice_range(low, high)
    return [low + index * step for index in range(round((high - low) / step) + 1)]


def _canvas(axes: Axes, title: str, x_label: str, y_label: str) -> tuple[Image.Image, ImageDraw.ImageDraw]:
    image = Image.new("RGB", (WIDTH, HEIGHT), (255, 255, 255))
    draw, font = ImageDraw.Draw(image), label_font(12)
    for value in _ticks(*axes.x_range):
        x, _ = axes.point(value, axes.y_range[0])
        draw.line((x, MARGIN_TOP, x, HEIGHT - MARGIN_BOTTOM), fill=GRID)
        draw.text((x, HEIGHT - MARGIN_BOTTOM + 6), f"{value:g}" if abs(value) >= 1e-9 else "0", fill=TEXT,
                  font=font, anchor="ma")
    for value in _ticks(*axes.y_range):
        _, y = axes.point(axes.x_range[0], value)
        draw.line((MARGIN_LEFT, y, WIDTH - MARGIN_RIGHT, y), fill=GRID)
        draw.text((MARGIN_LEFT - 6, y), f"{value:g}" if abs(value) >= 1e-9 else "0", fill=TEXT, font=font,
                  anchor="rm")
    draw.rectangle((MARGIN_LEFT, MARGIN_TOP, WIDTH - MARGIN_RIGHT, HEIGHT - MARGIN_BOTTOM), outline=AXIS)
    draw.text(((WIDTH - MARGIN_RIGHT + MARGIN_LEFT) / 2, 10), title, fill=TEXT, font=label_font(14), anchor="ma")
    draw.text(((WIDTH - MARGIN_RIGHT + MARGIN_LEFT) / 2, HEIGHT - 20), x_label, fill=TEXT, font=font, anchor="ma")
    draw.text((8, MARGIN_TOP - 18), y_label, fill=TEXT, font=font)
    return image, draw


def _legend(draw: ImageDraw.ImageDraw, entries: list[str]) -> None:
    font = label_font(12)
    for index, entry in enumerate(entries):
        y = MARGIN_TOP + 6 + index * 18
        x = WIDTH - MARGIN_RIGHT + 12
        draw.rectangle((x, y, x + 10, y + 10), fill=colour(index))
        draw.text((x + 16, y + 5), entry[:24], fill=TEXT, font=font, anchor="lm")


def success_vs_leak(points: list[tuple[str, str, float, float]], title: str) -> Image.Image:
    """points: (model, attribute, mean leak, success). Good edits sit top left."""
    models = list(dict.fromkeys(model for model, _, _, _ in points))
    leak_top = max([0.01] + [leak for _, _, leak, _ in points]) * 1.05
    low = min([0.0] + [success for _, _, _, success in points])
    axes = Axes(nice_range(0.0, leak_top)[:2], nice_range(low, 1.0)[:2])
    image, draw = _canvas(axes, title, "off-target leak (mean |change| of other attributes)",
                          "success (change of the target's probability, -2 to +2)")
    font = label_font(11)
    for model, attribute, leak, success in points:
        x, y = axes.point(leak, success)
        draw.ellipse((x - 4, y - 4, x + 4, y + 4), fill=colour(models.index(model)))
        draw.text((x + 6, y), attribute, fill=TEXT, font=font, anchor="lm")
    _legend(draw, models)
    return image


def probability_curves(curves: dict[str, tuple[list[float], list[float]]], title: str) -> Image.Image:
    """curves: attribute -> (strengths, mean probability of that attribute)."""
    strengths = [s for xs, _ in curves.values() for s in xs] or [-2.0, 2.0]
    axes = Axes(nice_range(min(strengths), max(strengths))[:2], (0.0, 1.0))
    image, draw = _canvas(axes, title, "edit strength", "mean P(attribute)")
    for index, (xs, ys) in enumerate(curves.values()):
        line = [axes.point(x, y) for x, y in zip(xs, ys)]
        draw.line(line, fill=colour(index), width=2)
        for x, y in line:
            draw.ellipse((x - 3, y - 3, x + 3, y + 3), fill=colour(index))
    _legend(draw, list(curves))
    return image
