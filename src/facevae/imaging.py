"""Image conversion in one place: tensors <-> uint8 arrays, grids, PNG bytes, reading uploads.

Conventions: model images are float tensors N x 3 x H x W in [0, 1]; display images are
uint8 numpy arrays N x H x W x 3. Every command, the GUI and the API go through these
functions, so the same seed gives the same bytes everywhere.
"""

from __future__ import annotations

import io
import os
import uuid
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
from PIL import Image, ImageDraw, ImageFont, ImageOps

from .atomic import require_parent_folder
from .data.decode import crop_and_resize
from .errors import UserError

if TYPE_CHECKING:  # torch is imported lazily so that reading an image stays light
    import torch

    from .config import Preprocessing

# Upload limits: a 20 MB file and 40 megapixels cover any phone photo.
MAX_IMAGE_BYTES = 20 * 1024 * 1024
MAX_IMAGE_PIXELS = 40_000_000
# What read_image accepts, by Pillow format name, with the magic bytes that identify it.
IMAGE_SIGNATURES: dict[str, tuple[bytes, ...]] = {
    "PNG": (b"\x89PNG\r\n\x1a\n",),
    "JPEG": (b"\xff\xd8\xff",),
    "WEBP": (b"RIFF",),  # + b"WEBP" at offset 8, checked below
    "BMP": (b"BM",),
    "GIF": (b"GIF87a", b"GIF89a"),
}
PNG_COMPRESS_LEVEL = 1  # fast; grids of flat-shaded faces barely shrink at higher levels
GRID_BACKGROUND = (255, 255, 255)
MARK_COLOUR = (220, 40, 40)
LABEL_COLOUR = (40, 40, 40)
MIN_LABEL_SIZE = 8  # smallest label font, in pixels; longer labels are cut instead


class ImageError(UserError):
    """An image that cannot be used; the message says why and what to do."""


class UnsupportedImageError(ImageError):
    """Not one of the accepted image formats (or not an image at all)."""


class ImageTooLargeError(ImageError):
    """More bytes or pixels than allowed: refused before decoding."""


class UnreadableImageError(ImageError):
    """Looks like an image but cannot be decoded (truncated or damaged)."""


# --- tensors <-> arrays --------------------------------------------------------------

def to_uint8(images: "torch.Tensor | np.ndarray") -> np.ndarray:
    """N x 3 x H x W floats in [0, 1] (tensor or array) -> N x H x W x 3 uint8, rounded.

    A single 3 x H x W image becomes 1 x H x W x 3. uint8 input in N x H x W x 3 is returned as is.
    """
    if isinstance(images, np.ndarray) and images.dtype == np.uint8:
        return images if images.ndim == 4 else images[None]
    if not isinstance(images, np.ndarray):
        images = images.detach().float().cpu().numpy()
    if images.ndim == 3:
        images = images[None]
    if images.ndim != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"expected N x 3 x H x W images, got shape {images.shape}")
    scaled = np.clip(images, 0.0, 1.0) * 255.0 + 0.5
    array = scaled.astype(np.uint8).transpose(0, 2, 3, 1)  # N x H x W x C
    if array.shape[-1] == 1:
        array = np.repeat(array, 3, axis=-1)
    return np.ascontiguousarray(array)


def to_tensor(images: np.ndarray) -> "torch.Tensor":
    """N x H x W x 3 (or H x W x 3) uint8 -> N x 3 x H x W float32 in [0, 1]."""
    import torch

    if images.ndim == 3:
        images = images[None]
    return torch.from_numpy(np.ascontiguousarray(images.transpose(0, 3, 1, 2))).float().div_(255.0)


# --- grids and PNG -------------------------------------------------------------------

def label_font(size: int) -> ImageFont.ImageFont | ImageFont.FreeTypeFont:
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow built without FreeType: fixed-size bitmap font
        return ImageFont.load_default()


def fit_labels(labels: Sequence[str], width: int, size: int) -> tuple[ImageFont.ImageFont | ImageFont.FreeTypeFont,
                                                                      int, list[str]]:
    """(font, font size, texts) such that every label is at most `width` pixels wide: the font
    shrinks down to MIN_LABEL_SIZE, then labels still too long are cut and end in '.'."""
    texts = [str(label) for label in labels]
    font = label_font(size)
    while size > MIN_LABEL_SIZE and texts and max(font.getlength(text) for text in texts) > width:
        size -= 1
        font = label_font(size)
    fitted = []
    for text in texts:
        cut = text
        while len(cut) > 2 and font.getlength(cut) > width:
            cut = cut[:-2].rstrip() + "."
        fitted.append(cut)
    return font, size, fitted


def make_grid(images: np.ndarray, columns: int | None = None, padding: int = 2, scale: int = 1,
              column_labels: Sequence[str] | None = None, row_labels: Sequence[str] | None = None,
              marked_column: int | None = None) -> Image.Image:
    """Tile N x H x W x 3 uint8 images row by row into one picture.

    columns: tiles per row (default: all in one row); scale: integer nearest-neighbour
    enlargement of each tile; column_labels / row_labels: text above columns / left of rows
    (a column label is made to fit its column's width); marked_column: that column gets a
    coloured frame (e.g. the unmodified faces).
    """
    images = to_uint8(images)
    count, height, width, _ = images.shape
    if count == 0:
        raise ValueError("make_grid needs at least one image")
    columns = max(1, min(columns or count, count))
    rows = -(-count // columns)
    scale = max(1, int(scale))
    if scale > 1:
        images = images.repeat(scale, axis=1).repeat(scale, axis=2)
        height, width = height * scale, width * scale
    font_size = max(10, min(height // 4, 16))
    column_font, column_size, column_texts = fit_labels(column_labels or (), width, font_size)
    top = column_size + 6 if column_labels else 0
    font = label_font(font_size)
    left = max(int(font.getlength(str(label))) for label in row_labels) + 8 if row_labels else 0
    # padding around and between tiles; the canvas is filled with numpy for speed.
    cell_h, cell_w = height + padding, width + padding
    canvas = np.empty((top + rows * cell_h + padding, left + columns * cell_w + padding, 3), np.uint8)
    canvas[:] = GRID_BACKGROUND
    if marked_column is not None and 0 <= marked_column < columns and padding > 0:
        x0 = left + marked_column * cell_w
        canvas[top:top + rows * cell_h + padding, x0:x0 + cell_w + padding] = MARK_COLOUR
    for index in range(count):
        row, column = divmod(index, columns)
        y, x = top + padding + row * cell_h, left + padding + column * cell_w
        canvas[y:y + height, x:x + width] = images[index]
    grid = Image.fromarray(canvas, "RGB")
    draw = ImageDraw.Draw(grid)
    for column, text in enumerate(column_texts):
        x = left + padding + column * cell_w + width / 2
        draw.text((x, 3), text, fill=LABEL_COLOUR, font=column_font, anchor="ma")
    for row, label in enumerate(row_labels or ()):
        y = top + padding + row * cell_h + height / 2
        draw.text((4, y), str(label), fill=LABEL_COLOUR, font=font, anchor="lm")
    return grid


def encode_png(image: Image.Image | np.ndarray) -> bytes:
    """PNG bytes with no metadata (no time stamps), so equal pixels give equal bytes."""
    if isinstance(image, np.ndarray):
        image = Image.fromarray(to_uint8(image)[0] if image.ndim == 4 else image, "RGB")
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=PNG_COMPRESS_LEVEL)
    return buffer.getvalue()


def write_atomic(path: str | Path, data: bytes) -> Path:
    """Write bytes to a temporary sibling, then rename: a reader never sees half a file.
    (The temporary file is opened normally, so the result gets the usual umask permissions.)"""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}-{uuid.uuid4().hex[:8]}.partial")
    try:
        with open(tmp, "xb") as file:
            file.write(data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def save_images(images: "torch.Tensor | np.ndarray", out: str | Path, columns: int | None = None, *,
                scale: int = 1, column_labels: Sequence[str] | None = None,
                row_labels: Sequence[str] | None = None, marked_column: int | None = None,
                prefix: str = "face") -> list[Path]:
    """Save images: `out` ending in .png gets one grid; any other path is a folder that gets
    one PNG per image (PREFIX_000.png, ...). Every file is written atomically. The folder that
    `out` goes in must exist (a grid's folder, or the parent of the folder of PNGs)."""
    out = require_parent_folder(out)
    array = to_uint8(images)
    if out.suffix.lower() == ".png":
        grid = make_grid(array, columns, scale=scale, column_labels=column_labels,
                         row_labels=row_labels, marked_column=marked_column)
        return [write_atomic(out, encode_png(grid))]
    if out.suffix.lower() in {".jpg", ".jpeg", ".webp", ".bmp", ".gif", ".tif", ".tiff"}:
        raise ImageError(f"{out}: only PNG output is written (lossless, reproducible); "
                         f"use a .png name for a grid or a folder name for one PNG per face")
    if out.exists() and not out.is_dir():
        raise ImageError(f"{out} exists and is not a folder; give a .png name for a grid or a folder")
    digits = max(3, len(str(len(array) - 1)))
    paths = []
    for index, image in enumerate(array):
        if scale > 1:
            image = image.repeat(scale, axis=0).repeat(scale, axis=1)
        paths.append(write_atomic(out / f"{prefix}_{index:0{digits}d}.png", encode_png(Image.fromarray(image, "RGB"))))
    return paths


# --- reading user images -------------------------------------------------------------

def _sniff_format(head: bytes) -> str | None:
    for name, signatures in IMAGE_SIGNATURES.items():
        if any(head.startswith(signature) for signature in signatures):
            if name == "WEBP" and head[8:12] != b"WEBP":
                continue
            return name
    return None


def read_image(source: str | Path | bytes, max_bytes: int = MAX_IMAGE_BYTES,
               max_pixels: int = MAX_IMAGE_PIXELS, max_side: int | None = None) -> Image.Image:
    """A photo (path or bytes) as an upright RGB PIL image, refusing anything unsafe.

    Checked in order, before any pixel is decoded: the byte size, the format by its magic
    bytes (PNG, JPEG, WebP, BMP, GIF), then the pixel count from the header. Pillow's own
    decompression-bomb guard stays on as a second line. max_side: a picture whose longer side
    is at least twice this is shrunk by an integer factor as it is decoded (JPEG: in the DCT;
    others: box-averaged right after), to a longer side in [max_side, 2 max_side).
    """
    name = "the uploaded image" if isinstance(source, (bytes, bytearray)) else str(source)
    if isinstance(source, (bytes, bytearray)):
        data = bytes(source)
    else:
        path = Path(source)
        if not path.is_file():
            raise ImageError(f"{path}: no such file")
        size = path.stat().st_size
        if size > max_bytes:
            raise ImageTooLargeError(f"{name} is {size / 1e6:.1f} MB; the limit is {max_bytes / 1e6:.1f} MB. "
                                     f"Resize or recompress it first")
        data = path.read_bytes()
    if len(data) > max_bytes:
        raise ImageTooLargeError(f"{name} is {len(data) / 1e6:.1f} MB; the limit is {max_bytes / 1e6:.1f} MB. "
                                 f"Resize or recompress it first")
    image_format = _sniff_format(data[:16])
    if image_format is None:
        raise UnsupportedImageError(f"{name} is not a PNG, JPEG, WebP, BMP or GIF image; "
                                    f"convert it to PNG or JPEG")
    if Image.MAX_IMAGE_PIXELS is None:  # someone switched Pillow's bomb guard off: back on
        Image.MAX_IMAGE_PIXELS = MAX_IMAGE_PIXELS
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=[image_format])
            width, height = image.size
            if width * height > max_pixels:
                raise ImageTooLargeError(f"{name} is {width} x {height} pixels; the limit is "
                                         f"{max_pixels / 1e6:.0f} megapixels. Resize it first")
            image = _decode_reduced(image, max_side)
    except ImageError:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        raise ImageTooLargeError(f"{name} declares more pixels than the limit of {max_pixels / 1e6:.0f} "
                                 f"megapixels; resize it first") from None
    except (OSError, SyntaxError, ValueError) as error:
        raise UnreadableImageError(f"{name} could not be decoded as {image_format} ({error}); "
                                   f"it may be truncated or damaged") from None
    image = ImageOps.exif_transpose(image)  # phone photos: upright as the user sees them
    if image.mode in ("RGBA", "LA", "P", "PA"):
        image = image.convert("RGBA")
        background = Image.new("RGBA", image.size, GRID_BACKGROUND + (255,))
        image = Image.alpha_composite(background, image)
    return image.convert("RGB")


def _decode_reduced(image: Image.Image, max_side: int | None) -> Image.Image:
    """Decode an opened image, shrunk by an integer factor when its longer side is >= 2 max_side."""
    factor = max(image.size) // max_side if max_side else 1
    if factor < 2:
        image.load()
        return image
    image.draft("RGB", (-(-image.width // factor), -(-image.height // factor)))  # JPEG only; no-op elsewhere
    image.load()
    if image.mode not in ("L", "LA", "RGB", "RGBA", "I", "F"):  # e.g. palette: Image.reduce needs real colours
        image = image.convert("RGBA")
    factor = max(image.size) // max_side
    return image.reduce(factor) if factor >= 2 else image


# --- model inputs --------------------------------------------------------------------


def preprocess(image: Image.Image, preprocessing: "Preprocessing") -> "torch.Tensor":
    """A CelebA-framed RGB image -> 3 x S x S float tensor in [0, 1], exactly as in the training
    cache: facevae.data.decode.crop_and_resize is the one crop/resize definition ("squash": the
    whole frame; "center": a centred square of crop_size CelebA pixels, scaled with the width)."""
    return to_tensor(crop_and_resize(image, preprocessing))[0]
