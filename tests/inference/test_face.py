"""facevae.inference.face: finding a face in a photo and framing it like CelebA's aligned images.

The faces are drawn by the real pretrained decoder (which reproduces CelebA's framing),
enlarged and pasted into a bigger picture, so the detector has to find them."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from support.images import photo_of

from facevae.hub.bundle import load_bundle
from facevae.inference.face import CELEBA_EYES, CELEBA_SIZE, FaceNotFoundError, align_face
from facevae.inference.pipeline import FacePipeline

SCALE, OFFSET = 3, (150, 60)  # photo_of's defaults: the face is enlarged 3x and pasted at this corner


@pytest.fixture(scope="module")
def faces(pretrained_bundle: Path) -> np.ndarray:
    return FacePipeline(load_bundle(pretrained_bundle)).generate(n=4, seed=3, temperature=0.6).images


def test_finds_and_frames_a_face_like_celeba(faces: np.ndarray):
    aligned = align_face(photo_of(faces[0]))
    assert aligned.image.size == CELEBA_SIZE and aligned.notes == []
    for (x, y), (want_x, want_y) in zip(aligned.eyes, CELEBA_EYES):  # eyes found where they were drawn
        assert abs(x - (OFFSET[0] + SCALE * want_x)) < 4 * SCALE and abs(y - (OFFSET[1] + SCALE * want_y)) < 4 * SCALE
    back = np.asarray(aligned.image.resize((64, 64), Image.Resampling.BILINEAR)).astype(np.float32)
    assert np.abs(back - faces[0]).mean() < 12  # the framed crop is the face we drew
    box_x, box_y, box_w, _ = aligned.box
    assert OFFSET[0] < box_x + box_w / 2 < OFFSET[0] + SCALE * CELEBA_SIZE[0]


def test_levels_a_tilted_face(faces: np.ndarray):
    tilted = photo_of(faces[0]).rotate(12, resample=Image.Resampling.BICUBIC, center=(450, 400), fillcolor=(90, 120, 90))
    aligned = align_face(tilted)
    (lx, ly), (rx, ry) = aligned.eyes
    assert np.degrees(np.arctan2(ly - ry, rx - lx)) == pytest.approx(12, abs=5)  # the tilt was measured
    level = align_face(photo_of(faces[0]))
    assert np.abs(np.asarray(aligned.image, np.float32) - np.asarray(level.image, np.float32)).mean() < 15


def test_several_faces_take_the_largest(faces: np.ndarray):
    photo = photo_of(faces[0], size=(1400, 800), at=(700, 60))
    photo.paste(Image.fromarray(faces[1]).resize((356, 436), Image.Resampling.BICUBIC), (60, 200))
    aligned = align_face(photo)
    assert aligned.box[0] > 600  # the big face on the right
    assert any("found 2 faces; used the largest" in note for note in aligned.notes)


def test_no_face_offers_the_whole_image():
    rng = np.random.default_rng(0)
    landscape = Image.fromarray(np.repeat(np.linspace(40, 220, 600, dtype=np.uint8)[None, :, None], 3, 2).repeat(400, 0))
    with pytest.raises(FaceNotFoundError, match="--whole-image"):
        align_face(landscape, source="landscape.png")
    noise = Image.fromarray(rng.integers(0, 256, (300, 300, 3), dtype=np.uint8))
    whole = align_face(noise, whole_image=True)
    assert whole.image.size == (300, 300) and whole.box is None and "whole image" in whole.notes[0]
