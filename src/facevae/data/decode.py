"""Decode an image file into an S x S x 3 uint8 array: the one crop/resize definition.

The definition, for an image of width W and height H:
  1. the crop box, in full-resolution pixel coordinates:
     - "squash": the whole frame (0, 0, W, H), resized to S x S without keeping the aspect
       ratio (what the original project did with CelebA's 178 x 218 images);
     - "center": the centred square of crop_size CelebA pixels, scaled with the image's width
       (side min(crop_size * W / 178, W, H)), e.g. (15, 35, 163, 183) for a 178 x 218 CelebA
       image with crop_size 148 (the usual practice); facevae.imaging.preprocess calls it too;
  2. the box resized to S x S with Pillow's bilinear filter (antialiased when shrinking).
The parameters (S, the crop mode, crop_size) are a facevae.config.Preprocessing.

`crop_and_resize` applies it to a fully decoded picture (a photo, a PNG). For JPEG files,
`decode_file` first decodes at a reduced size with libjpeg-turbo's DCT scaling (simplejpeg
with min_width/min_height): the smallest scale M/8 at which the crop box still covers
S x S pixels. That skips most of the decoding work; the result differs from a full decode
by about one grey level on average (tests/data/test_decode.py bounds it). JPEGs that
libjpeg-turbo rejects or that use CMYK colour fall back to a full Pillow decode.
"""

from __future__ import annotations

import io
import math
import os
from pathlib import Path

import numpy as np
import simplejpeg
from PIL import Image

from ..config import Preprocessing

CELEBA_WIDTH = 178  # crop_size is measured on CelebA's 178-pixel-wide aligned frame
RESAMPLE = Image.Resampling.BILINEAR
JPEG_SUFFIXES = (".jpg", ".jpeg")
_FAST_COLORSPACES = ("Gray", "YCbCr", "RGB")  # libjpeg-turbo converts these to RGB exactly


def crop_box(width: int, height: int, preprocessing: Preprocessing) -> tuple[float, float, float, float]:
    """(left, top, right, bottom) of the region that becomes the output, in full-size pixels."""
    if preprocessing.crop == "squash":
        return (0.0, 0.0, float(width), float(height))
    side = min(preprocessing.crop_size * width / CELEBA_WIDTH, width, height)
    left, top = (width - side) / 2, (height - side) / 2
    return (left, top, left + side, top + side)


def crop_and_resize(image: Image.Image, preprocessing: Preprocessing) -> np.ndarray:
    """The definition on a fully decoded picture: crop box, bilinear resize -> S x S x 3 uint8."""
    image = image if image.mode == "RGB" else image.convert("RGB")
    size = preprocessing.image_size
    return np.asarray(image.resize((size, size), RESAMPLE, box=crop_box(image.width, image.height, preprocessing)))


def decode_bytes(data: bytes, suffix: str, preprocessing: Preprocessing) -> np.ndarray:
    """Decode one encoded image (JPEG fast path, anything else through Pillow)."""
    if suffix.lower() in JPEG_SUFFIXES:
        try:
            return _decode_jpeg_scaled(data, preprocessing)
        except ValueError:
            pass  # not a JPEG libjpeg-turbo accepts strictly: Pillow decides (and explains)
    with Image.open(io.BytesIO(data)) as image:
        image.load()
        return crop_and_resize(image, preprocessing)


def _decode_jpeg_scaled(data: bytes, spec: Preprocessing) -> np.ndarray:
    height, width, colorspace, _ = simplejpeg.decode_jpeg_header(data)
    if colorspace not in _FAST_COLORSPACES:
        raise ValueError(f"colorspace {colorspace} goes through Pillow")
    left, top, right, bottom = crop_box(width, height, spec)
    # Smallest DCT scale at which the box still spans S pixels each way (never upscale).
    min_width = min(width, math.ceil(width * spec.image_size / (right - left)))
    min_height = min(height, math.ceil(height * spec.image_size / (bottom - top)))
    pixels = simplejpeg.decode_jpeg(data, colorspace="RGB", min_width=min_width, min_height=min_height)
    scale_x, scale_y = pixels.shape[1] / width, pixels.shape[0] / height
    box = (left * scale_x, top * scale_y, right * scale_x, bottom * scale_y)
    return np.asarray(Image.fromarray(pixels).resize((spec.image_size, spec.image_size), RESAMPLE, box=box))


def decode_file(path: str | Path, spec: Preprocessing) -> np.ndarray:
    """Read and decode one file -> S x S x 3 uint8. Raises OSError/ValueError when unreadable."""
    path = Path(path)
    return decode_bytes(path.read_bytes(), path.suffix, spec)


def decode_chunk(paths: list[str], spec: Preprocessing) -> tuple[np.ndarray, list[tuple[int, str]]]:
    """Decode a list of files (one task of the process pool).

    Returns (pixels, failures): pixels is len(paths) x S x S x 3 uint8 (zero rows where a
    file failed); failures lists (position in `paths`, reason) for unreadable files.
    """
    pixels = np.zeros((len(paths), spec.image_size, spec.image_size, 3), np.uint8)
    failures: list[tuple[int, str]] = []
    for position, path in enumerate(paths):
        try:
            with open(path, "rb") as handle:  # plain open: pathlib costs ~10 us per file here
                pixels[position] = decode_bytes(handle.read(), os.path.splitext(path)[1], spec)
        except Image.UnidentifiedImageError:
            failures.append((position, "not a recognisable image (damaged, or not an image at all)"))
        except Exception as error:  # noqa: BLE001 - Pillow raises many types for damaged files
            failures.append((position, f"{type(error).__name__}: {error}".replace("\n", " ")))
    return pixels, failures
