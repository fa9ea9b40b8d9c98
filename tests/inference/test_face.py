"""facevae.inference.face: finding a face in a photo and framing it like CelebA's aligned images.

Two kinds of pictures: faces drawn by the real pretrained decoder (which reproduces CelebA's
framing), enlarged and pasted into a bigger picture, so the detector has to find them where
they were put; and real photos of people from ../shared/photos, whose framed crops must put the
landmarks (found afresh on the crop) where CelebA's aligned images have them."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from facevae.errors import UserError
from facevae.imaging import read_image, to_uint8
from facevae.inference.face import (
    CELEBA_EYES,
    CELEBA_LANDMARKS,
    CELEBA_SIZE,
    FaceNotFoundError,
    align_face,
    detect_landmarks,
    landmark_error,
    similarity_transform,
)
from facevae.inference.pipeline import FacePipeline
from facevae.model.bundle import load_bundle
from support.images import photo_of
from support.shared import SHARED, skip_reason

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
    tilted = photo_of(faces[0]).rotate(12, resample=Image.Resampling.BICUBIC, center=(450, 400),
                                       fillcolor=(90, 120, 90))
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
    gradient = np.linspace(40, 220, 600, dtype=np.uint8)[None, :, None]  # 1 x 600 x 1
    landscape = Image.fromarray(np.repeat(gradient, 3, 2).repeat(400, 0))
    with pytest.raises(FaceNotFoundError, match="use the whole image instead") as raised:
        align_face(landscape, source="landscape.png")
    assert (raised.value.option, raised.value.value) == ("whole_image", True)  # each front end names it
    noise = Image.fromarray(rng.integers(0, 256, (300, 300, 3), dtype=np.uint8))
    whole = align_face(noise, whole_image=True)
    assert whole.image.size == (300, 300) and whole.box is None and "whole image" in whole.notes[0]


# --- real photos (SHARED/photos), framed with YuNet -------------------------------------

PHOTOS = sorted(p for p in (SHARED / "photos").glob("*") if p.suffix.lower() in {".jpg", ".jpeg", ".png"})
DETECTOR = SHARED / "face-detector" / "face_detection_yunet_2026may.onnx"
needs_photos = pytest.mark.skipif(not PHOTOS or not DETECTOR.is_file(),
                                  reason=skip_reason("the real photos and the YuNet file"))


def _photo(name: str) -> Image.Image:
    return read_image(SHARED / "photos" / name)


@needs_photos
def test_every_photo_is_framed_with_its_landmarks_near_celebas():
    """A face on every photo; the landmarks found afresh on each 178 x 218 crop lie on average
    within 6 px of CelebA's, and both eyes do on all photos but at most one (a turned head
    cannot match a frontal mean everywhere)."""
    eyes_off = []
    for path in PHOTOS:
        aligned = align_face(read_image(path), detector=DETECTOR)
        assert aligned.image.size == CELEBA_SIZE and aligned.landmarks.shape == (5, 2), path.name
        x, y, w, h = aligned.box  # the box holds the landmarks it came with
        assert (aligned.landmarks[:, 0] > x).all() and (aligned.landmarks[:, 0] < x + w).all(), path.name
        again = detect_landmarks(aligned.image, DETECTOR)
        assert len(again) == 1, path.name
        points = again[0][1]
        assert landmark_error(points) < 6, path.name
        eyes_off.append(np.linalg.norm(points[:2] - CELEBA_LANDMARKS[:2], axis=1).max())
    assert sum(error >= 6 for error in eyes_off) <= 1, eyes_off


@needs_photos
def test_a_picture_framed_like_celeba_is_used_as_is():
    framed = align_face(_photo("kate_siegel.jpg"), detector=DETECTOR).image
    again = align_face(framed, detector=DETECTOR)
    assert any("already framed like CelebA" in note for note in again.notes)
    assert np.array_equal(np.asarray(again.image), np.asarray(framed))


@needs_photos
def test_two_people_the_larger_face_is_used_and_said():
    big, small = _photo("obama.jpg"), _photo("biden.jpg").resize((176, 400))
    canvas = Image.new("RGB", (big.width + small.width, big.height), (200, 200, 200))
    canvas.paste(big, (0, 0))
    canvas.paste(small, (big.width, 0))
    aligned = align_face(canvas, detector=DETECTOR)
    assert "found 2 faces; used the largest" in aligned.notes
    assert aligned.box[0] < big.width


@needs_photos
def test_a_tiny_face_is_refused_clearly():
    tiny = _photo("obama.jpg").resize((24, 30))  # the face is about 8 pixels wide
    canvas = Image.new("RGB", (400, 300), (120, 120, 120))
    canvas.paste(tiny, (200, 150))
    with pytest.raises(UserError, match="(only \\d+ pixels wide)|(No face found)"):
        align_face(canvas, detector=DETECTOR)


@needs_photos
def test_the_smiling_edit_changes_the_mouth_more_than_the_background(pretrained_bundle: Path):
    pipe = FacePipeline(load_bundle(pretrained_bundle))
    result = pipe.edit(SHARED / "photos" / "biden.jpg", {"Smiling": 1.5})
    recon, edited = (result.images[i].astype(np.float32) for i in (1, 2))
    change = np.abs(edited - recon).mean(2)  # S x S
    mouth, background = _model_mask(pipe, (62, 140, 116, 170)), _model_mask(pipe, (0, 0, 178, 40))
    assert change[mouth].mean() > 1.2 * change[background].mean()  # the vector also shifts hair colour a little
    assert change[mouth].mean() > 4  # visibly, in levels of 255


def _model_mask(pipe: FacePipeline, box: tuple[int, int, int, int]) -> np.ndarray:
    """S x S bool: a box of the CelebA frame at the model's input size."""
    from PIL import ImageDraw

    from facevae.imaging import preprocess

    frame = Image.new("RGB", CELEBA_SIZE, (0, 0, 0))
    ImageDraw.Draw(frame).rectangle(box, fill=(255, 255, 255))
    return preprocess(frame, pipe.model.preprocessing)[0].numpy() > 0.5


@needs_photos
def test_reconstruct_frames_photos_unless_told_not_to(tiny_bundle: Path):
    pipe = FacePipeline(load_bundle(tiny_bundle))
    path = SHARED / "photos" / "paul_rudd.jpg"
    framed = pipe.reconstruct([path])
    expected = pipe.encode([align_face(read_image(path), detector=DETECTOR).image], whole_image=True).images
    assert np.array_equal(framed.images[0], to_uint8(expected)[0])  # the framed photo is shown on top
    whole = pipe.reconstruct([path], whole_image=True)
    assert not np.array_equal(whole.images[0], framed.images[0])
    assert "used the whole image without face detection" in whole.notes


def _framed_in_parallel(picture: Image.Image, detector: Path | None = None, threads: int = 16) -> set[bytes]:
    """The bytes of the CelebA frame of the same picture, framed 2 x `threads` times on `threads` threads at once."""
    with ThreadPoolExecutor(threads) as pool:
        frames = pool.map(lambda _: align_face(picture, detector=detector).image.tobytes(), range(2 * threads))
        return set(frames)


@needs_photos
def test_a_photo_framed_on_16_threads_at_once_gives_the_same_frame_every_time():
    """One cv2.FaceDetectorYN shared by threads mixed their inputs: the server's concurrent
    edits of one photo found no face or framed the flag behind it (issue 19)."""
    photo = _photo("obama.jpg")
    alone = align_face(photo, detector=DETECTOR).image.tobytes()
    assert _framed_in_parallel(photo, DETECTOR) == {alone}


def test_a_planted_face_framed_on_16_threads_at_once_gives_the_same_frame_every_time(faces: np.ndarray):
    """The same with the face the decoder drew, pasted at two sizes (the detector's input size changes)."""
    small, large = photo_of(faces[1], size=(700, 760), at=(100, 50), scale=2), photo_of(faces[2])
    expected = {align_face(small).image.tobytes(), align_face(large).image.tobytes()}
    with ThreadPoolExecutor(16) as pool:
        frames = set(pool.map(lambda i: align_face((small, large)[i % 2]).image.tobytes(), range(32)))
    assert frames == expected


def test_similarity_transform_recovers_a_known_one():
    rng = np.random.default_rng(1)
    points = rng.uniform(0, 500, (5, 2))
    angle, scale, shift = 0.3, 0.4, np.array([12.0, -7.0])
    rotation = scale * np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    matrix = similarity_transform(points, points @ rotation.T + shift)
    assert np.allclose(matrix[:, :2], rotation) and np.allclose(matrix[:, 2], shift)
    mirrored = points * np.array([-1, 1])  # no similarity maps onto a mirror image: the fit stays a rotation
    assert np.linalg.det(similarity_transform(points, mirrored)[:, :2]) > 0


def test_non_images_and_missing_files_are_clear_errors(tiny_bundle: Path, tmp_path: Path):
    pipe = FacePipeline(load_bundle(tiny_bundle))
    text = tmp_path / "notes.txt"
    text.write_text("not a picture")
    with pytest.raises(UserError, match="notes.txt"):
        pipe.reconstruct([text])
    with pytest.raises(UserError, match="no such file"):
        pipe.edit(tmp_path / "missing.jpg")
