"""Pictures for tests: PNG bytes, PNG decoding, and "photos" of faces."""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

from facevae.inference.face import CELEBA_SIZE


def png_bytes(image: Image.Image | np.ndarray | None = None, size: tuple[int, int] = (40, 48), seed: int = 0) -> bytes:
    """`image` (a PIL image or an H x W x 3 uint8 array) as PNG bytes; without one, random
    pixels of `size` (width, height)."""
    if image is None:
        image = np.random.default_rng(seed).integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)
    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def open_png(data: bytes) -> np.ndarray:
    """PNG bytes as an H x W x 3 uint8 array (asserts that they are a PNG)."""
    image = Image.open(io.BytesIO(data))
    assert image.format == "PNG"
    return np.asarray(image.convert("RGB"))


def photo_of(face: np.ndarray, size: tuple[int, int] = (900, 800), at: tuple[int, int] = (150, 60),
             scale: int = 3, background: tuple[int, int, int] = (90, 120, 90)) -> Image.Image:
    """A "photo": a face frame (H x W x 3 uint8, e.g. one the decoder drew) enlarged to `scale`
    times CelebA's aligned frame and pasted at `at` into a flat picture of `size`, so that a
    face detector has to find it."""
    canvas = Image.new("RGB", size, background)
    frame = Image.fromarray(face).resize((CELEBA_SIZE[0] * scale, CELEBA_SIZE[1] * scale), Image.Resampling.BICUBIC)
    canvas.paste(frame, at)
    return canvas
