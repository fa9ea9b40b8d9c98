"""facevae.imaging: conversions, grids, deterministic PNGs, atomic saving and safe reading."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from facevae import imaging
from facevae.config import Preprocessing
from facevae.errors import UserError


def _png_bytes(width: int, height: int, colour=(10, 200, 30), mode: str = "RGB") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, (width, height), colour).save(buffer, format="PNG")
    return buffer.getvalue()


def test_to_uint8_rounds_clips_and_moves_channels_last():
    images = torch.tensor([0.0, 0.5, 1.0, 1.7, -0.2, 0.002]).view(1, 3, 1, 2)
    array = imaging.to_uint8(images)
    assert array.shape == (1, 1, 2, 3) and array.dtype == np.uint8
    # pixel 0 has channels (0.0, 1.0, -0.2 -> 0); pixel 1 has (0.5, 1.7 -> 1.0, 0.002)
    assert array[0, 0, 0].tolist() == [0, 255, 0]
    assert array[0, 0, 1].tolist() == [128, 255, 1]
    single = imaging.to_uint8(torch.ones(3, 4, 5))
    assert single.shape == (1, 4, 5, 3) and (single == 255).all()


def test_to_tensor_inverts_to_uint8():
    array = np.random.default_rng(0).integers(0, 256, (2, 6, 5, 3), dtype=np.uint8)
    assert np.array_equal(imaging.to_uint8(imaging.to_tensor(array)), array)


def test_grid_places_tiles_with_padding_and_scale():
    tiles = np.stack([np.full((8, 8, 3), 10 * (i + 1), np.uint8) for i in range(5)])
    grid = np.asarray(imaging.make_grid(tiles, columns=3, padding=2))
    assert grid.shape == (2 * 10 + 2, 3 * 10 + 2, 3)
    assert (grid[2:10, 2:10] == 10).all() and (grid[2:10, 12:20] == 20).all()
    assert (grid[12:20, 12:20] == 50).all()  # 5th tile: row 1, column 1
    assert (grid[12:20, 22:30] == 255).all()  # the empty 6th cell stays background
    big = np.asarray(imaging.make_grid(tiles, columns=5, padding=0, scale=3))
    assert big.shape == (24, 120, 3) and (big[:, 24:48] == 20).all()


def test_grid_labels_and_marked_column():
    tiles = np.zeros((6, 16, 16, 3), np.uint8)
    plain = imaging.make_grid(tiles, columns=3)
    labelled = imaging.make_grid(tiles, columns=3, column_labels=["-1", "0", "+1"], row_labels=["a", "bb"],
                                 marked_column=1)
    assert labelled.height > plain.height and labelled.width > plain.width
    array = np.asarray(labelled)
    top = labelled.height - plain.height
    left = labelled.width - plain.width
    assert tuple(array[top + 1, left + 18 + 1]) == imaging.MARK_COLOUR  # frame of column 1
    assert tuple(array[top + 1, left + 1]) == imaging.GRID_BACKGROUND  # column 0 unframed
    assert (array[:top] != 255).any()  # label text drawn


def test_png_is_deterministic_and_lossless():
    tiles = np.random.default_rng(1).integers(0, 256, (4, 8, 8, 3), dtype=np.uint8)
    first = imaging.encode_png(imaging.make_grid(tiles, 2))
    assert first == imaging.encode_png(imaging.make_grid(tiles.copy(), 2))
    assert np.array_equal(np.asarray(Image.open(io.BytesIO(first))), np.asarray(imaging.make_grid(tiles, 2)))


def test_save_images_grid_and_folder(tmp_path: Path):
    images = torch.rand(3, 3, 8, 8)
    with pytest.raises(UserError, match="the folder .*sub does not exist. Create it first"):
        imaging.save_images(images, tmp_path / "sub" / "grid.png", columns=2)
    (tmp_path / "sub").mkdir()
    [grid] = imaging.save_images(images, tmp_path / "sub" / "grid.png", columns=2)
    assert Image.open(grid).size == (2 * 10 + 2, 2 * 10 + 2)
    paths = imaging.save_images(images, tmp_path / "faces", columns=2)
    assert [p.name for p in paths] == ["face_000.png", "face_001.png", "face_002.png"]
    assert np.array_equal(np.asarray(Image.open(paths[1])), imaging.to_uint8(images)[1])
    assert sorted(p.name for p in tmp_path.rglob("*")) == sorted(["sub", "grid.png", "faces", *[p.name for p in paths]])
    with pytest.raises(UserError, match="PNG"):
        imaging.save_images(images, tmp_path / "grid.jpg")
    (tmp_path / "file").write_text("x")
    with pytest.raises(UserError, match="not a folder"):
        imaging.save_images(images, tmp_path / "file")


def test_write_atomic_leaves_nothing_on_failure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    target = tmp_path / "out.png"
    target.write_bytes(b"old")

    def fail(*args):
        raise OSError("disk full")

    monkeypatch.setattr(imaging.os, "replace", fail)
    with pytest.raises(OSError):
        imaging.write_atomic(target, b"new")
    assert target.read_bytes() == b"old" and [p.name for p in tmp_path.iterdir()] == ["out.png"]


def test_read_image_accepts_png_jpeg_and_paths(tmp_path: Path):
    image = imaging.read_image(_png_bytes(7, 5))
    assert image.mode == "RGB" and image.size == (7, 5)
    path = tmp_path / "photo.jpg"
    Image.new("RGB", (9, 4), (200, 0, 0)).save(path, format="JPEG")
    assert imaging.read_image(path).size == (9, 4)
    transparent = imaging.read_image(_png_bytes(3, 3, (0, 0, 0, 0), mode="RGBA"))
    assert np.asarray(transparent)[0, 0].tolist() == [255, 255, 255]  # composited on white


def test_read_image_applies_exif_orientation():
    buffer = io.BytesIO()
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees to display
    Image.new("RGB", (20, 10)).save(buffer, format="JPEG", exif=exif)
    assert imaging.read_image(buffer.getvalue()).size == (10, 20)


def test_read_image_refuses_bad_input(tmp_path: Path):
    with pytest.raises(imaging.UnsupportedImageError, match="not a PNG, JPEG"):
        imaging.read_image(b"hello, this is text")
    with pytest.raises(imaging.ImageTooLargeError, match="MB"):
        imaging.read_image(_png_bytes(50, 50), max_bytes=10)
    with pytest.raises(imaging.ImageTooLargeError, match="pixels"):
        imaging.read_image(_png_bytes(50, 50), max_pixels=100)
    truncated = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(truncated, "JPEG")
    with pytest.raises(imaging.UnreadableImageError, match="damaged"):
        imaging.read_image(truncated.getvalue()[:300])
    with pytest.raises(imaging.ImageError, match="no such file"):
        imaging.read_image(tmp_path / "missing.png")


def test_read_image_refuses_a_bomb_before_decoding():
    # A PNG header claiming 100000 x 100000 pixels and no data: must fail on the header.
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", 100_000, 100_000, 8, 2, 0, 0, 0)
    bomb = b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IEND", b"")
    with pytest.raises(imaging.ImageTooLargeError):
        imaging.read_image(bomb)


def test_preprocess_squash_and_center():
    frame = np.zeros((218, 178, 3), np.uint8)
    frame[:, :, 0] = np.arange(178, dtype=np.uint8)[None, :]  # red ramp left to right
    frame[:25] = 255  # a white band at the top, well outside the centred 148 square (rows 35..183)
    image = Image.fromarray(frame)
    squashed = imaging.preprocess(image, Preprocessing(image_size=32, crop="squash"))
    assert squashed.shape == (3, 32, 32) and squashed.dtype == torch.float32
    assert squashed[1, 0].mean() > 0.9  # the top band survives squashing
    centred = imaging.preprocess(image, Preprocessing(image_size=32, crop="center", crop_size=148))
    assert centred[1, 0].mean() < 0.05  # ... but is cropped away by the centred square
    assert centred[0, 16, 0] > 15 / 255 and centred[0, 16, -1] < 163 / 255  # 15..163 of the ramp


@pytest.mark.parametrize("crop", ["squash", "center"])
def test_preprocess_matches_the_training_cache_definition(crop: str):
    from facevae.data.decode import decode_bytes

    frame = Image.fromarray(np.random.default_rng(2).integers(0, 256, (218, 178, 3), dtype=np.uint8))
    preprocessing = Preprocessing(image_size=64, crop=crop, crop_size=148)
    ours = imaging.preprocess(frame, preprocessing)
    cache = decode_bytes(imaging.encode_png(frame), ".png", preprocessing)  # how `prepare` reads a PNG
    assert np.array_equal(imaging.to_uint8(ours)[0], cache)


def _label_ink_columns(grid: Image.Image, band: int) -> np.ndarray:
    """x positions where the label band above the tiles has any non-background pixel."""
    array = np.asarray(grid)[:band]
    return np.flatnonzero((array != imaging.GRID_BACKGROUND).any(axis=(0, 2)))


@pytest.mark.parametrize("size, labels", [
    (64, ["photo", "reconstruction", "edited"]),  # `facevae edit --out me.png` at scale 1
    (32, ["photo", "reconstruction", "edited"]),  # a 32 px model: the long label is cut
    (64, ["-3", "-2", "0 (original)", "+2", "+3"]),
])
def test_column_labels_stay_inside_their_own_column(size: int, labels: list[str]):
    tiles = np.zeros((len(labels), size, size, 3), np.uint8)
    band = imaging.make_grid(tiles, column_labels=labels).height - imaging.make_grid(tiles).height
    cell = size + 2  # tile + padding
    for column, label in enumerate(labels):
        alone = ["" if other != column else label for other in range(len(labels))]
        ink = _label_ink_columns(imaging.make_grid(tiles, column_labels=alone), band)
        assert len(ink) > 0, f"label {label!r} not drawn"
        assert column * cell <= ink.min() and ink.max() < (column + 1) * cell + 2, (label, ink.min(), ink.max())


def test_labels_shrink_before_they_are_cut():
    font, size, texts = imaging.fit_labels(["photo", "reconstruction", "edited"], 64, 16)
    assert size < 16 and texts == ["photo", "reconstruction", "edited"]
    assert max(font.getlength(text) for text in texts) <= 64
    font, size, texts = imaging.fit_labels(["reconstruction"], 32, 16)
    assert size == imaging.MIN_LABEL_SIZE and texts[0].endswith(".") and font.getlength(texts[0]) <= 32
