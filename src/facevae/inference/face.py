"""Find a face in a photo and frame it the way CelebA's aligned images are framed.

CelebA's `img_align_celeba` frames are 178 x 218 with the eyes level, about 39 pixels apart,
at y ~ 111. We measured where the eyes sit on faces drawn by the pretrained decoder (which
reproduces CelebA's framing; 55 of 60 faces, OpenCV's eye cascade on 2x upscaled frames):
left eye (68.8, 110.7), right eye (107.9, 111.0), spread about 2 pixels. That agrees with
the dataset's published landmark file, whose averages are close to (69, 111) and (108, 111).
So a photo is rotated, scaled and shifted to put its eye centres on CELEBA_EYES; the
bundle's preprocessing (facevae.imaging.preprocess) then turns the frame into model input.

Detection uses OpenCV's bundled Haar cascades (frontal face, then eyes inside the upper part
of the face box): offline, no model download. When the eyes are not found (closed eyes,
sunglasses, a small face), the eye positions are estimated from the face box with ratios
measured on the same generated faces (box x 33.9, y 70.2, side 110.5 in the 178 x 218 frame).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from PIL import Image

from ..errors import UserError

CELEBA_SIZE = (178, 218)  # width, height of an aligned CelebA frame
CELEBA_EYES = ((68.8, 110.8), (108.0, 110.8))  # left and right eye centres in that frame
# Eye centres relative to the Haar face box (x, y, side), measured as described above.
EYE_X_IN_BOX = ((68.8 - 33.9) / 110.5, (108.0 - 33.9) / 110.5)
EYE_Y_IN_BOX = (110.8 - 70.2) / 110.5
DETECT_MAX_SIDE = 800  # photos are searched at most this large (faster, same result)


class FaceNotFoundError(UserError):
    """No face in the picture; the message offers using the whole image."""


@dataclass
class AlignedFace:
    """A 178 x 218 CelebA-framed crop and how it was found.

    box: the face box (x, y, width, height) in the original photo, None for the whole image;
    eyes: the two eye centres used, in photo pixels; notes: what a user should be told.
    """

    image: Image.Image
    box: tuple[int, int, int, int] | None = None
    eyes: tuple[tuple[float, float], tuple[float, float]] | None = None
    notes: list[str] = field(default_factory=list)


def _cv2():
    """OpenCV, or a clear error naming the extra that installs it."""
    from ..extras import import_optional

    return import_optional("cv2", "or use --whole-image for a picture that is already a face crop")


def _cascade(name: str):
    cv2 = _cv2()
    if not hasattr(cv2, "CascadeClassifier"):
        raise UserError("this OpenCV build has no Haar cascades (OpenCV 5 moved them out); "
                        "install the supported one: pip install 'opencv-python-headless>=4.8,<5'")
    classifier = cv2.CascadeClassifier(cv2.data.haarcascades + name)
    if classifier.empty():
        raise UserError(f"OpenCV's bundled cascade {name} is missing; reinstall opencv-python-headless")
    return classifier


def detect_faces(gray: np.ndarray) -> list[tuple[int, int, int, int]]:
    """Face boxes (x, y, w, h) in an equalised grayscale image, largest first."""
    side = min(gray.shape)
    min_size = max(24, side // 12)
    faces = _cascade("haarcascade_frontalface_default.xml").detectMultiScale(
        gray, scaleFactor=1.1, minNeighbors=5, minSize=(min_size, min_size))
    return sorted((tuple(int(v) for v in f) for f in faces), key=lambda b: b[2] * b[3], reverse=True)


def detect_eyes(gray: np.ndarray, box: tuple[int, int, int, int]) -> tuple[tuple[float, float], tuple[float, float]] | None:
    """The two eye centres inside a face box, or None when they are not found plausibly.

    The upper part of the box is equalised on its own (a photo's background would otherwise
    set the contrast); on each side of the box's centre line the candidate nearest to where
    CelebA's geometry expects the eye wins.
    """
    cv2 = _cv2()
    x, y, w, h = box
    top = cv2.equalizeHist(np.ascontiguousarray(gray[y:y + int(0.6 * h), x:x + w]))
    candidates = _cascade("haarcascade_eye.xml").detectMultiScale(
        top, scaleFactor=1.1, minNeighbors=3, minSize=(max(8, w // 8), max(8, w // 8)))
    centres = [(x + ex + ew / 2, y + ey + eh / 2) for ex, ey, ew, eh in candidates]
    expected = eyes_from_box(box)
    chosen = []
    for side, (want_x, want_y) in enumerate(expected):
        on_side = [c for c in centres if (c[0] < x + w / 2) == (side == 0)]
        if not on_side:
            return None
        chosen.append(min(on_side, key=lambda c: np.hypot(c[0] - want_x, c[1] - want_y)))
    (lx, ly), (rx, ry) = chosen
    distance = np.hypot(rx - lx, ry - ly)
    if not 0.2 * w <= distance <= 0.6 * w or abs(ry - ly) > 0.5 * distance:  # not a pair of eyes
        return None
    return (lx, ly), (rx, ry)


def eyes_from_box(box: tuple[int, int, int, int]) -> tuple[tuple[float, float], tuple[float, float]]:
    x, y, w, h = box
    eye_y = y + EYE_Y_IN_BOX * h
    return (x + EYE_X_IN_BOX[0] * w, eye_y), (x + EYE_X_IN_BOX[1] * w, eye_y)


def frame_from_eyes(image: Image.Image, eyes: tuple[tuple[float, float], tuple[float, float]]) -> Image.Image:
    """Rotate, scale and shift so the eyes land on CELEBA_EYES; returns a 178 x 218 frame."""
    cv2 = _cv2()

    (lx, ly), (rx, ry) = eyes
    (tlx, tly), (trx, try_) = CELEBA_EYES
    scale = np.hypot(trx - tlx, try_ - tly) / max(np.hypot(rx - lx, ry - ly), 1e-6)
    pixels = np.asarray(image.convert("RGB"))
    if scale < 0.5:  # shrink first with area averaging, so the warp does not alias
        factor = 2 * scale
        size = (max(1, round(pixels.shape[1] * factor)), max(1, round(pixels.shape[0] * factor)))
        pixels = cv2.resize(pixels, size, interpolation=cv2.INTER_AREA)
        (lx, ly), (rx, ry) = (lx * factor, ly * factor), (rx * factor, ry * factor)
        scale /= factor
    angle = np.arctan2(ry - ly, rx - lx)
    cos, sin = scale * np.cos(-angle), scale * np.sin(-angle)
    # similarity transform [a -b tx; b a ty] taking the left eye to its target
    matrix = np.array([[cos, -sin, 0.0], [sin, cos, 0.0]])
    matrix[:, 2] = np.array([tlx, tly]) - matrix[:, :2] @ np.array([lx, ly])
    framed = cv2.warpAffine(pixels, matrix, CELEBA_SIZE, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return Image.fromarray(framed, "RGB")


def align_face(image: Image.Image, whole_image: bool = False, source: str = "the photo") -> AlignedFace:
    """Find the largest face and frame it like CelebA; whole_image=True uses the picture as is."""
    image = image.convert("RGB")
    if whole_image:
        return AlignedFace(image, notes=["used the whole image without face detection"])
    cv2 = _cv2()
    shrink = min(1.0, DETECT_MAX_SIDE / max(image.size))
    small = image if shrink == 1.0 else image.resize(
        (max(1, round(image.width * shrink)), max(1, round(image.height * shrink))), Image.Resampling.BILINEAR)
    gray = cv2.cvtColor(np.asarray(small), cv2.COLOR_RGB2GRAY)
    # equalised first (dim photos); as is when a large flat background skews the histogram
    faces = detect_faces(cv2.equalizeHist(gray)) or detect_faces(gray)
    if not faces:
        raise FaceNotFoundError(
            f"No face found in {source}. If it already shows just a face framed like a passport photo, "
            f"use the whole image instead (`--whole-image`; in Python `whole_image=True`)")
    notes = []
    if len(faces) > 1:
        notes.append(f"found {len(faces)} faces; used the largest")
    eyes = detect_eyes(gray, faces[0])
    if eyes is None:
        eyes = eyes_from_box(faces[0])
        notes.append("eyes not found; framed the face from its outline, which is less exact")
    box = tuple(round(v / shrink) for v in faces[0])
    eyes = tuple((ex / shrink, ey / shrink) for ex, ey in eyes)
    return AlignedFace(frame_from_eyes(image, eyes), box, eyes, notes)  # type: ignore[arg-type]
