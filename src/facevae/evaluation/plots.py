"""PNG charts for the evaluation report, drawn with Pillow (no plotting library needed).

    success_vs_leak(points)  one dot per (model, attribute): x = mean leak, y = success
    probability_curves(...)  per attribute: mean P(target) against edit strength

Each returns a PIL image; report.py encodes it with imaging.encode_png. The canvas grows with
the legend, so every entry is shown (CelebA has 40 attributes); entries beyond the palette's
ten colours get another marker shape. Dot labels are placed where they overlap no other
label, joined to their dot by a thin line when they had to move away from it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from PIL import Image, ImageDraw

from ..imaging import label_font

WIDTH, HEIGHT = 720, 480
MARGIN_LEFT, MARGIN_RIGHT, MARGIN_TOP, MARGIN_BOTTOM = 64, 180, 52, 52
LEGEND_ROW = 18  # pixels per legend entry
PALETTE = ((31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75),
           (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207))
MARKERS = ("circle", "square", "triangle", "diamond")  # the n-th round of the palette's colours
AXIS, GRID, TEXT, LEADER = (60, 60, 60), (225, 225, 225), (20, 20, 20), (170, 170, 170)
Box = tuple[float, float, float, float]
# Where a dot's label may go, nearest first: right, left, the four diagonals, above, below; then farther out.
LABEL_OFFSETS = [(dx * k, dy * k) for k in (1, 2, 3, 4, 5, 6, 8, 10)
                 for dx, dy in ((8, 0), (-8, 0), (8, -11), (8, 11), (-8, -11), (-8, 11), (0, -14), (0, 14),
                                (4, -7), (4, 7), (-4, -7), (-4, 7))]


def colour(index: int) -> tuple[int, int, int]:
    return PALETTE[index % len(PALETTE)]


def marker(draw: ImageDraw.ImageDraw, x: float, y: float, index: int, radius: float = 4) -> None:
    """The index-th series' marker: its colour, and its shape once the colours repeat."""
    shape, r = MARKERS[index // len(PALETTE) % len(MARKERS)], radius
    fill = colour(index)
    if shape == "circle":
        draw.ellipse((x - r, y - r, x + r, y + r), fill=fill)
    elif shape == "square":
        draw.rectangle((x - r, y - r, x + r, y + r), fill=fill)
    elif shape == "triangle":
        draw.polygon(((x, y - r - 1), (x - r - 1, y + r), (x + r + 1, y + r)), fill=fill)
    else:
        draw.polygon(((x, y - r - 1), (x + r + 1, y), (x, y + r + 1), (x - r - 1, y)), fill=fill)


@dataclass
class Axes:
    """Data ranges mapped onto the plotting area of a WIDTH x height canvas."""

    x_range: tuple[float, float]
    y_range: tuple[float, float]
    height: int = HEIGHT

    def point(self, x: float, y: float) -> tuple[float, float]:
        (x0, x1), (y0, y1) = self.x_range, self.y_range
        px = MARGIN_LEFT + (x - x0) / (x1 - x0 or 1) * (WIDTH - MARGIN_LEFT - MARGIN_RIGHT)
        py = self.height - MARGIN_BOTTOM - (y - y0) / (y1 - y0 or 1) * (self.height - MARGIN_TOP - MARGIN_BOTTOM)
        return px, py

    @property
    def area(self) -> Box:
        return (MARGIN_LEFT, MARGIN_TOP, WIDTH - MARGIN_RIGHT, self.height - MARGIN_BOTTOM)


def canvas_height(legend_entries: int) -> int:
    """Tall enough for every legend entry."""
    return max(HEIGHT, MARGIN_TOP + 6 + LEGEND_ROW * legend_entries + MARGIN_BOTTOM)


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
    image = Image.new("RGB", (WIDTH, axes.height), (255, 255, 255))
    draw, font = ImageDraw.Draw(image), label_font(12)
    left, top, right, bottom = axes.area
    for value in _ticks(*axes.x_range):
        x, _ = axes.point(value, axes.y_range[0])
        draw.line((x, top, x, bottom), fill=GRID)
        draw.text((x, bottom + 6), f"{value:g}" if abs(value) >= 1e-9 else "0", fill=TEXT, font=font, anchor="ma")
    for value in _ticks(*axes.y_range):
        _, y = axes.point(axes.x_range[0], value)
        draw.line((left, y, right, y), fill=GRID)
        draw.text((left - 6, y), f"{value:g}" if abs(value) >= 1e-9 else "0", fill=TEXT, font=font, anchor="rm")
    draw.rectangle(axes.area, outline=AXIS)
    draw.text(((right + left) / 2, 10), title, fill=TEXT, font=label_font(14), anchor="ma")
    draw.text(((right + left) / 2, axes.height - 20), x_label, fill=TEXT, font=font, anchor="ma")
    draw.text((8, top - 18), y_label, fill=TEXT, font=font)
    return image, draw


def _legend(draw: ImageDraw.ImageDraw, entries: list[str]) -> None:
    font = label_font(12)
    for index, entry in enumerate(entries):
        y = MARGIN_TOP + 6 + index * LEGEND_ROW
        x = WIDTH - MARGIN_RIGHT + 12
        marker(draw, x + 5, y + 5, index, radius=5)
        draw.text((x + 16, y + 5), entry[:24], fill=TEXT, font=font, anchor="lm")


def _overlap(a: Box, b: Box) -> float:
    width = min(a[2], b[2]) - max(a[0], b[0])
    height = min(a[3], b[3]) - max(a[1], b[1])
    return max(width, 0) * max(height, 0)


def place_labels(draw: ImageDraw.ImageDraw, anchors: list[tuple[float, float]], texts: list[str],
                 area: Box) -> list[Box]:
    """For each dot, the text box (inside `area`) that overlaps the labels placed before it and
    the dots least, trying nearby spots first; draws each label (and a leader line when moved)."""
    font = label_font(11)
    dots = [(x - 4, y - 4, x + 4, y + 4) for x, y in anchors]
    placed: list[Box] = []
    for (x, y), text in zip(anchors, texts):
        width = draw.textlength(text, font=font)
        best, best_cost = None, math.inf
        for dx, dy in LABEL_OFFSETS:
            left = x + dx if dx >= 0 else x + dx - width
            box = (left, y + dy - 6, left + width, y + dy + 6)
            if box[0] < area[0] or box[2] > area[2] or box[1] < area[1] or box[3] > area[3]:
                continue
            cost = sum(_overlap(box, other) for other in placed + dots) + 0.01 * (abs(dx) + abs(dy))
            if cost < best_cost:
                best, best_cost = box, cost
            if cost < 1:
                break
        if best is None:
            continue
        if abs((best[0] + best[2]) / 2 - x) > width / 2 + 10 or abs((best[1] + best[3]) / 2 - y) > 8:
            near_x = min(max(x, best[0]), best[2])
            draw.line((x, y, near_x, (best[1] + best[3]) / 2), fill=LEADER)
        draw.text((best[0], (best[1] + best[3]) / 2), text, fill=TEXT, font=font, anchor="lm")
        placed.append(best)
    return placed


def success_vs_leak(points: list[tuple[str, str, float, float]], title: str) -> Image.Image:
    """points: (model, attribute, mean leak, success). Good edits sit top left."""
    models = list(dict.fromkeys(model for model, _, _, _ in points))
    leak_top = max([0.01] + [leak for _, _, leak, _ in points]) * 1.05
    low = min([0.0] + [success for _, _, _, success in points])
    axes = Axes(nice_range(0.0, leak_top)[:2], nice_range(low, 1.0)[:2], canvas_height(len(models)) + 160)
    image, draw = _canvas(axes, title, "off-target leak (mean |change| of other attributes)",
                          "success (change of the target's probability, -2 to +2)")
    anchors = [axes.point(leak, success) for _, _, leak, success in points]
    for (model, _, _, _), (x, y) in zip(points, anchors):
        marker(draw, x, y, models.index(model))
    place_labels(draw, anchors, [attribute for _, attribute, _, _ in points], axes.area)
    _legend(draw, models)
    return image


def probability_curves(curves: dict[str, tuple[list[float], list[float]]], title: str) -> Image.Image:
    """curves: attribute -> (strengths, mean probability of that attribute)."""
    strengths = [s for xs, _ in curves.values() for s in xs] or [-2.0, 2.0]
    axes = Axes(nice_range(min(strengths), max(strengths))[:2], (0.0, 1.0), canvas_height(len(curves)))
    image, draw = _canvas(axes, title, "edit strength", "mean P(attribute)")
    for index, (xs, ys) in enumerate(curves.values()):
        line = [axes.point(x, y) for x, y in zip(xs, ys)]
        draw.line(line, fill=colour(index), width=2)
        for x, y in line:
            marker(draw, x, y, index, radius=3)
    _legend(draw, list(curves))
    return image
