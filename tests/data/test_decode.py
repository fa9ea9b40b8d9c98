from __future__ import annotations

import io
import math

import numpy as np
import pytest
import simplejpeg
from PIL import Image

from facevae.config import ConfigError, Preprocessing
from facevae.data.decode import crop_and_resize, crop_box, decode_bytes, decode_chunk, decode_file
from facevae.testing.celeba import face_image, jpeg_bytes


@pytest.fixture(scope="module")
def jpegs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("jpegs")
    rng = np.random.default_rng(7)
    paths = []
    for index in range(6):
        path = folder / f"{index:06d}.jpg"
        path.write_bytes(jpeg_bytes(face_image(rng)))
        paths.append(path)
    return paths


def test_crop_boxes_for_celeba_frames():
    assert crop_box(178, 218, Preprocessing(64, "squash")) == (0, 0, 178, 218)
    assert crop_box(178, 218, Preprocessing(64, "center", 148)) == (15, 35, 163, 183)
    assert crop_box(356, 436, Preprocessing(64, "center", 148)) == (30, 70, 326, 366)  # scales with the width
    assert crop_box(178, 100, Preprocessing(64, "center", 148)) == (39, 0, 139, 100)  # never beyond the frame


# The promise for CelebA-sized JPEGs: libjpeg-turbo decodes at the smallest scale M/8 whose
# crop box still spans S pixels (never above full size), then Pillow's bilinear resize of
# that box. Decoded sizes are ceil(178 M / 8) x ceil(218 M / 8).
@pytest.mark.parametrize("spec, decoded", [
    (Preprocessing(32, "squash"), (45, 55)),          # M = 2
    (Preprocessing(64, "squash"), (67, 82)),          # M = 3
    (Preprocessing(64, "center", 148), (89, 109)),    # M = 4: the 148 box becomes 74 >= 64
    (Preprocessing(128, "squash"), (134, 164)),       # M = 6
    (Preprocessing(128, "center", 148), (156, 191)),  # M = 7
    (Preprocessing(256, "squash"), (178, 218)),       # full size, then upscaled
])
def test_decode_matches_its_definition_exactly(jpegs, spec, decoded):
    for path in jpegs[:3]:
        data = path.read_bytes()
        width, height = decoded
        pixels = simplejpeg.decode_jpeg(data, colorspace="RGB", min_width=width, min_height=height)
        assert pixels.shape == (height, width, 3)
        left, top, right, bottom = crop_box(178, 218, spec)
        sx, sy = width / 178, height / 218
        expected = Image.fromarray(pixels).resize((spec.image_size, spec.image_size), Image.Resampling.BILINEAR,
                                                  box=(left * sx, top * sy, right * sx, bottom * sy))
        result = decode_file(path, spec)
        assert result.shape == (spec.image_size, spec.image_size, 3) and result.dtype == np.uint8
        np.testing.assert_array_equal(result, np.asarray(expected))


@pytest.mark.parametrize("spec", [Preprocessing(32), Preprocessing(64), Preprocessing(64, "center"),
                                  Preprocessing(128, "center")])
def test_decode_is_close_to_a_full_resolution_decode(jpegs, spec):
    """Scaled decoding is an approximation of decoding fully then resizing: bound the gap."""
    for path in jpegs:
        with Image.open(path) as image:
            reference = crop_and_resize(image, spec).astype(np.float64)
        difference = decode_file(path, spec).astype(np.float64) - reference
        psnr = 10 * math.log10(255**2 / max(np.mean(difference**2), 1e-12))
        assert np.abs(difference).mean() < 3.0 and psnr > 33, (path, spec, psnr)


def test_png_and_webp_use_the_full_resolution_definition(tmp_path):
    picture = face_image(np.random.default_rng(1))
    for suffix in (".png", ".webp"):
        path = tmp_path / f"face{suffix}"
        picture.save(path, lossless=True) if suffix == ".webp" else picture.save(path)
        spec = Preprocessing(64, "center", 148)
        np.testing.assert_array_equal(decode_file(path, spec), crop_and_resize(picture, spec))


def test_grayscale_rgba_and_cmyk_become_rgb(tmp_path):
    picture = face_image(np.random.default_rng(2))
    spec = Preprocessing(32)
    for mode, fmt in (("L", "JPEG"), ("CMYK", "JPEG"), ("RGBA", "PNG")):
        buffer = io.BytesIO()
        picture.convert(mode).save(buffer, format=fmt)
        result = decode_bytes(buffer.getvalue(), ".jpg" if fmt == "JPEG" else ".png", spec)
        assert result.shape == (32, 32, 3) and result.dtype == np.uint8
    buffer = io.BytesIO()
    picture.convert("L").save(buffer, format="JPEG")
    gray = decode_bytes(buffer.getvalue(), ".jpg", spec)
    assert (gray[..., 0] == gray[..., 1]).all() and (gray[..., 1] == gray[..., 2]).all()


def test_chunk_reports_damaged_files_and_keeps_going(tmp_path, jpegs):
    truncated, garbage = tmp_path / "t.jpg", tmp_path / "g.jpg"
    truncated.write_bytes(jpegs[0].read_bytes()[:3000])
    garbage.write_bytes(b"not an image" * 50)
    paths = [str(jpegs[1]), str(truncated), str(garbage), str(tmp_path / "missing.jpg"), str(jpegs[2])]
    pixels, failures = decode_chunk(paths, Preprocessing(64))
    assert [position for position, _ in failures] == [1, 2, 3]
    assert "truncated" in failures[0][1] and "not a recognisable image" in failures[1][1]
    assert "FileNotFoundError" in failures[2][1]
    np.testing.assert_array_equal(pixels[0], decode_file(jpegs[1], Preprocessing(64)))
    np.testing.assert_array_equal(pixels[4], decode_file(jpegs[2], Preprocessing(64)))


@pytest.mark.parametrize("kwargs", [{"crop": "fill"}, {"crop_size": 0}, {"crop_size": -100}, {"image_size": 0}])
def test_invalid_preprocessing_is_rejected(kwargs):
    with pytest.raises(ConfigError, match="preprocessing (crop|crop_size|image_size) must be"):
        Preprocessing(**kwargs)
