"""Find a face in a photo and frame it the way CelebA's aligned images are framed.

CelebA's `img_align_celeba` frames are 178 x 218, made by a similarity transform (rotation,
uniform scale, shift) that puts five facial landmarks where they sit on average. Here the
landmarks come from YuNet, OpenCV's face detector (`cv2.FaceDetectorYN`): both eye centres,
the nose tip and both mouth corners. The transform is the least-squares similarity from those
five points onto CELEBA_LANDMARKS (the dataset's mean aligned landmarks); the bundle's
preprocessing (facevae.imaging.preprocess) then turns the frame into model input.

YuNet's ONNX file is fetched on first use and cached like the pretrained model
(facevae.hub.detector). Without it (offline, not installed) the face is framed from OpenCV's
bundled Haar cascades instead, and a note says how to get the detector: the frontal-face
cascade, then the eye cascade inside the upper part of the face box, and when the eyes are
not found, eye positions estimated from the box with ratios measured on faces the pretrained
decoder draws (box x 33.9, y 70.2, side 110.5 in the 178 x 218 frame; eyes at x 68.8 and
108.0, y 110.8).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import UserError

CELEBA_SIZE = (178, 218)  # width, height of an aligned CelebA frame
# Mean aligned landmarks (x, y), in picture order: the eye on the picture's left (the person's
# right eye) first, then the other eye, the nose tip, the mouth corners left then right.
CELEBA_LANDMARKS = np.array([(69.0, 111.5), (108.0, 111.5), (88.5, 134.0), (72.5, 152.5), (105.5, 152.5)])
CELEBA_EYES = (tuple(CELEBA_LANDMARKS[0]), tuple(CELEBA_LANDMARKS[1]))
# Where the face itself lies in the frame (x0, y0, x1, y1): brows to chin, cheek to cheek,
# for measuring likeness without hair and background.
FACE_REGION = (49, 85, 129, 180)
# Eye centres relative to the Haar face box (x, y, side), measured as described above.
EYE_X_IN_BOX = ((68.8 - 33.9) / 110.5, (108.0 - 33.9) / 110.5)
EYE_Y_IN_BOX = (110.8 - 70.2) / 110.5
DETECT_MAX_SIDE = 800  # photos are searched at most this large (faster, same result)
MIN_SCORE = 0.6  # YuNet's confidence below which a detection is not a face
EYE_MARGIN = 0.25  # eyes nearer the picture's edge than this times their distance are cut off
WEAK_SCORE = 0.3  # detections between this and MIN_SCORE are reported as unclear faces, never framed
MIN_FACE_PIXELS = 16  # narrower faces carry too little detail to frame
SMALL_EYE_DISTANCE = 20  # photo pixels between the eyes below which the frame is enlarged 2x or more
ALIGNED_TOLERANCE = 6.0  # mean landmark distance (frame pixels) for a picture already framed like CelebA


class FaceNotFoundError(UserError):
    """No face in the picture; the message offers using the whole image."""


@dataclass
class AlignedFace:
    """A 178 x 218 CelebA-framed crop and how it was found.

    box: the face box (x, y, width, height) in the original photo, None for the whole image;
    landmarks: 5 x 2 landmark positions in photo pixels (CELEBA_LANDMARKS' order), only the two
    eyes with the Haar cascades, None for the whole image; notes: what a user should be told.
    """

    image: Image.Image
    box: tuple[int, int, int, int] | None = None
    landmarks: np.ndarray | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def eyes(self) -> tuple[tuple[float, float], tuple[float, float]] | None:
        if self.landmarks is None:
            return None
        return (tuple(self.landmarks[0]), tuple(self.landmarks[1]))  # type: ignore[return-value]


def _cv2():
    """OpenCV, or a clear error naming the extra that installs it."""
    from ..extras import import_optional

    return import_optional("cv2", "or use --whole-image for a picture that is already a face crop")


# --- the similarity transform ----------------------------------------------------------

def similarity_transform(points: np.ndarray, targets: np.ndarray) -> np.ndarray:
    """The 2 x 3 matrix [s R | t] minimising sum |s R p + t - q|^2 over point pairs (Umeyama):
    rotation, uniform scale and shift, never a mirror. points, targets: K x 2, K >= 2."""
    points, targets = np.asarray(points, np.float64), np.asarray(targets, np.float64)
    mean_p, mean_q = points.mean(0), targets.mean(0)
    centred_p, centred_q = points - mean_p, targets - mean_q
    covariance = centred_q.T @ centred_p / len(points)  # 2 x 2
    u, singular, vt = np.linalg.svd(covariance)
    signs = np.array([1.0, np.sign(np.linalg.det(u) * np.linalg.det(vt)) or 1.0])
    rotation = u @ np.diag(signs) @ vt
    scale = (singular * signs).sum() / max((centred_p**2).sum(1).mean(), 1e-12)
    matrix = np.empty((2, 3))
    matrix[:, :2] = scale * rotation
    matrix[:, 2] = mean_q - matrix[:, :2] @ mean_p
    return matrix


def warp_to_celeba(image: Image.Image, matrix: np.ndarray) -> Image.Image:
    """Apply a photo -> frame similarity; returns the 178 x 218 frame (edges replicated)."""
    cv2 = _cv2()
    pixels = np.asarray(image.convert("RGB"))
    matrix = np.array(matrix, np.float64)
    scale = float(np.sqrt(abs(np.linalg.det(matrix[:, :2]))))
    if scale < 0.5:  # shrink first with area averaging, so the warp does not alias
        factor = 2 * scale
        size = (max(1, round(pixels.shape[1] * factor)), max(1, round(pixels.shape[0] * factor)))
        pixels = cv2.resize(pixels, size, interpolation=cv2.INTER_AREA)
        matrix[:, :2] /= factor
    framed = cv2.warpAffine(pixels, matrix, CELEBA_SIZE, flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return Image.fromarray(framed, "RGB")


def frame_from_eyes(image: Image.Image, eyes: tuple[tuple[float, float], tuple[float, float]]) -> Image.Image:
    """Rotate, scale and shift so the eyes land on CELEBA_EYES; returns a 178 x 218 frame."""
    return warp_to_celeba(image, similarity_transform(np.array(eyes), CELEBA_LANDMARKS[:2]))


def landmark_error(landmarks: np.ndarray) -> float:
    """Mean distance (frame pixels) between 5 landmarks in a 178 x 218 frame and CELEBA_LANDMARKS."""
    return float(np.linalg.norm(np.asarray(landmarks) - CELEBA_LANDMARKS, axis=1).mean())


# --- YuNet -----------------------------------------------------------------------------

# One detector per thread and file: a cv2.FaceDetectorYN keeps its input size and buffers between
# setInputSize and detect, so threads sharing one (the server's inference threads) get each
# other's faces. Per thread rather than behind a lock: the detectors are small and threads
# then detect in parallel.
_DETECTORS = threading.local()


def _yunet(path: str):
    if not hasattr(_DETECTORS, "by_path"):
        _DETECTORS.by_path = {}
    detectors = _DETECTORS.by_path
    if path not in detectors:
        detectors[path] = _load_yunet(path)
    return detectors[path]


def _load_yunet(path: str):
    cv2 = _cv2()
    if not hasattr(cv2, "FaceDetectorYN"):
        raise UserError("this OpenCV build has no FaceDetectorYN; pip install 'opencv-python-headless>=4.8'")
    try:
        return cv2.FaceDetectorYN.create(path, "", (320, 320), MIN_SCORE, 0.3, 5000)
    except cv2.error as error:
        raise UserError(f"OpenCV cannot load the face detector {path} ({str(error).strip()[-120:]}). "
                        f"Delete it and run `facevae download yunet-2023mar`") from None


def detect_landmarks(image: Image.Image, model_path: str | Path) -> list[tuple[tuple[int, int, int, int], np.ndarray]]:
    """Faces as (box x, y, w, h; 5 x 2 landmarks in CELEBA_LANDMARKS' order), in photo pixels,
    largest first: YuNet's detections scoring at least MIN_SCORE."""
    return [(box, landmarks) for box, landmarks, score in _detections(image, model_path) if score >= MIN_SCORE]


def _detections(image: Image.Image, model_path: str | Path) -> list[tuple[tuple[int, ...], np.ndarray, float]]:
    """Every YuNet detection scoring at least WEAK_SCORE as (box, landmarks, score), largest first.
    The photo is searched at most DETECT_MAX_SIDE pixels large."""
    shrink = min(1.0, DETECT_MAX_SIDE / max(image.size))
    small = image if shrink == 1.0 else image.resize(
        (max(1, round(image.width * shrink)), max(1, round(image.height * shrink))), Image.Resampling.BILINEAR)
    bgr = np.ascontiguousarray(np.asarray(small.convert("RGB"))[:, :, ::-1])
    detector = _yunet(str(model_path))
    detector.setInputSize((bgr.shape[1], bgr.shape[0]))
    detector.setScoreThreshold(WEAK_SCORE)  # weak detections are reported, never framed
    _, rows = detector.detect(bgr)  # rows: x, y, w, h, 5 landmarks (x, y), score
    faces = []
    for row in [] if rows is None else rows:
        box = tuple(int(round(v / shrink)) for v in row[:4])
        faces.append((box, row[4:14].reshape(5, 2).astype(np.float64) / shrink, float(row[14])))
    return sorted(faces, key=lambda face: face[0][2] * face[0][3], reverse=True)


def _frame_landmarks(image: Image.Image, model_path: Path, source: str) -> "AlignedFace":
    detections = _detections(image, model_path)
    faces = [(box, landmarks) for box, landmarks, score in detections if score >= MIN_SCORE]
    if not faces:
        raise _weak_face(source, max(score for *_, score in detections)) if detections else _no_face(source)
    notes = [f"found {len(faces)} faces; used the largest"] if len(faces) > 1 else []
    box, landmarks = faces[0]
    _check_size(box, landmarks, source, notes)
    _check_eyes(image, landmarks, source)
    if image.size == CELEBA_SIZE and landmark_error(landmarks) <= ALIGNED_TOLERANCE:
        notes.append("already framed like CelebA's aligned images; used as is")
        return AlignedFace(image, box, landmarks, notes)
    return AlignedFace(warp_to_celeba(image, similarity_transform(landmarks, CELEBA_LANDMARKS)), box, landmarks, notes)


def _check_size(box, landmarks: np.ndarray, source: str, notes: list[str]) -> None:
    if box[2] < MIN_FACE_PIXELS:
        raise UserError(f"The face in {source} is only {box[2]} pixels wide; framing needs at least "
                        f"{MIN_FACE_PIXELS}. Use a photo where the face is larger (a closer crop of the original)")
    eye_distance = float(np.linalg.norm(landmarks[1] - landmarks[0]))
    if eye_distance < SMALL_EYE_DISTANCE:
        notes.append(f"the face is small ({eye_distance:.0f} pixels between the eyes), so its frame is enlarged "
                     f"and blurry; a larger photo of the face gives a closer likeness")


def _check_eyes(image: Image.Image, landmarks: np.ndarray, source: str) -> None:
    """Refuse a face whose eyes YuNet places outside the picture or within EYE_MARGIN of its edge
    (a crop that cuts them off): framing puts the eyes where CelebA's are, so it would frame
    something else, and the edge would be smeared over the brows and forehead."""
    eyes = landmarks[:2]
    margin = EYE_MARGIN * float(np.linalg.norm(eyes[1] - eyes[0]))
    if (eyes < margin).any() or (eyes[:, 0] > image.width - margin).any() or (eyes[:, 1] > image.height - margin).any():
        raise FaceNotFoundError(
            f"The face in {source} has its eyes cut off by (or right at) the picture's edge, so it cannot be "
            f"framed like CelebA's faces (by the eyes). Use a picture that shows the whole face, or, if it is "
            f"already a face framed like a passport photo, the whole image ({{option}})", option="whole_image",
            value=True)


def _weak_face(source: str, score: float) -> FaceNotFoundError:
    return FaceNotFoundError(
        f"No clear face in {source}: the face detector is only {score:.0%} sure of the best candidate (it needs "
        f"{MIN_SCORE:.0%}), so it was not framed. Use a sharper, frontal, well-lit photo of the face; if the picture "
        f"already shows just a face framed like a passport photo, use the whole image instead ({{option}})",
        option="whole_image", value=True)


def _no_face(source: str) -> FaceNotFoundError:
    return FaceNotFoundError(
        f"No face found in {source}. If it already shows just a face framed like a passport photo, "
        f"use the whole image instead ({{option}})", option="whole_image", value=True)


# --- Haar cascades (without the YuNet file) ----------------------------------------------

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


def detect_eyes(gray: np.ndarray, box: tuple[int, int, int, int]
                ) -> tuple[tuple[float, float], tuple[float, float]] | None:
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


def _frame_with_cascades(image: Image.Image, source: str) -> AlignedFace:
    cv2 = _cv2()
    shrink = min(1.0, DETECT_MAX_SIDE / max(image.size))
    small = image if shrink == 1.0 else image.resize(
        (max(1, round(image.width * shrink)), max(1, round(image.height * shrink))), Image.Resampling.BILINEAR)
    gray = cv2.cvtColor(np.asarray(small), cv2.COLOR_RGB2GRAY)
    # equalised first (dim photos); as is when a large flat background skews the histogram
    faces = detect_faces(cv2.equalizeHist(gray)) or detect_faces(gray)
    if not faces:
        raise _no_face(source)
    notes = [f"found {len(faces)} faces; used the largest"] if len(faces) > 1 else []
    eyes = detect_eyes(gray, faces[0])
    if eyes is None:
        eyes = eyes_from_box(faces[0])
        notes.append("eyes not found; framed the face from its outline, which is less exact")
    box = tuple(round(v / shrink) for v in faces[0])
    landmarks = np.array(eyes, np.float64) / shrink
    return AlignedFace(frame_from_eyes(image, landmarks), box, landmarks, notes)  # type: ignore[arg-type]


def align_face(image: Image.Image, whole_image: bool = False, source: str = "the photo",
               detector: str | Path | None = None) -> AlignedFace:
    """Find the largest face and frame it like CelebA; whole_image=True uses the picture as is.

    detector: a YuNet ONNX file (or a folder holding one); default
    facevae.hub.detector.find_detector() (FACEVAE_DETECTOR, the installed file, or a first-use
    download; without one, the Haar cascades and a note).
    """
    from ..hub.detector import detector_file, find_detector

    image = image.convert("RGB")
    if whole_image:
        return AlignedFace(image, notes=["used the whole image without face detection"])
    model_path, note = (detector_file(detector, f"the detector {detector}"), None) if detector else find_detector()
    if model_path is not None:
        return _frame_landmarks(image, model_path, source)
    aligned = _frame_with_cascades(image, source)
    aligned.notes.append(note or "framed with OpenCV's Haar cascades")
    return aligned
