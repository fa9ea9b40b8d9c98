"""SynthesisResult: what every FacePipeline method returns (the codes, the faces they decode to,
row for row, and the grid to show), with its PNG and .npy writers."""

from __future__ import annotations

import io
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from .. import imaging
from ..errors import UserError


@dataclass
class SynthesisResult:
    """Faces and the codes behind them, and how to show them.

    images: N x H x W x 3 uint8 grid tiles, in grid order (row by row, `columns` per row):
        the faces, and where inputs are shown for context (reconstruct, edit) those too.
    latents: M x D float32: the codes of the drawn faces, so decode(latents) redraws them.
    faces: M x H x W x 3 uint8, the faces `latents` decode to, row for row (default: images,
        when the grid shows nothing else).
    """

    images: np.ndarray
    latents: np.ndarray
    columns: int
    column_labels: list[str] | None = None
    marked_column: int | None = None
    row_labels: list[str] | None = None
    notes: list[str] = field(default_factory=list)  # e.g. "2 faces found; used the largest"
    faces: np.ndarray = None  # type: ignore[assignment]  # set in __post_init__

    def __post_init__(self) -> None:
        if self.faces is None:
            self.faces = self.images
        if len(self.faces) != len(self.latents):
            raise ValueError(f"{len(self.faces)} faces for {len(self.latents)} latent codes")

    def grid(self, scale: int = 1) -> Image.Image:
        return imaging.make_grid(self.images, self.columns, scale=scale, column_labels=self.column_labels,
                                 row_labels=self.row_labels, marked_column=self.marked_column)

    def png(self, scale: int = 1) -> bytes:
        return imaging.encode_png(self.grid(scale))

    def save(self, out: str | Path, scale: int = 1) -> list[Path]:
        """A .png path gets the grid; any other path is a folder with one PNG per face."""
        return imaging.save_images(self.images, out, self.columns, scale=scale, column_labels=self.column_labels,
                                   row_labels=self.row_labels, marked_column=self.marked_column)

    def save_latents(self, path: str | Path) -> Path:
        """Write the latents as a .npy file (atomically), for `facevae decode`."""
        path = Path(path)
        if path.suffix != ".npy":
            raise UserError(f"{path}: latents are saved as NumPy .npy files; use a name ending in .npy")
        buffer = io.BytesIO()
        np.save(buffer, self.latents.astype(np.float32))
        return imaging.write_atomic(path, buffer.getvalue())
