"""The face detector's model file: a registry of single verified files, fetched on first use.

    FACEVAE_HOME/detectors/FILENAME        the verified ONNX file (FILENAME.part while downloading)

Framing a photo (facevae.inference.face) needs YuNet, OpenCV's face detector with five
landmarks. Its ONNX file is installed like a pretrained model: a registry entry with size and
SHA-256, `facevae download NAME [--from DIR]`, the FACEVAE_BASE_URL mirror (serving the file at
the entry's path), the cache in FACEVAE_HOME, and a download that is verified before it is
renamed into place. FACEVAE_DETECTOR names an ONNX file to use instead (no checksum: the user
chose it), or "haar" for OpenCV's bundled cascades without any download.

The model zoo keeps its ONNX files in Git LFS: raw.githubusercontent.com answers with a small
pointer file, so the entry's base URL is GitHub's LFS media host, which serves the bytes.
"""

from __future__ import annotations

import os
import urllib.error
from dataclasses import dataclass
from pathlib import Path

from ..errors import UserError
from .download import ChecksumError, download, verify
from .registry import BASE_URL_ENV, PretrainedError, SourceFile, facevae_home

DETECTOR_ENV = "FACEVAE_DETECTOR"  # an ONNX file, or "haar" for the cascades
HAAR = "haar"

_ZOO_COMMIT = "82b38c8f98e7b52aa171400f3e4c722352d0669f"


@dataclass(frozen=True)
class DetectorModel:
    """One registered detector file, at base_url + file.path."""

    name: str
    description: str
    base_url: str  # ends with "/"; FACEVAE_BASE_URL overrides it; "" for --from DIR only
    file: SourceFile
    licence: str
    source: str


DEFAULT_DETECTOR = "yunet-2023mar"
DETECTORS: dict[str, DetectorModel] = {
    "yunet-2023mar": DetectorModel(
        name="yunet-2023mar",
        description="YuNet face detector with five landmarks (OpenCV model zoo, March 2023 release)",
        base_url=f"https://media.githubusercontent.com/media/opencv/opencv_zoo/{_ZOO_COMMIT}/",
        file=SourceFile("detector", "models/face_detection_yunet/face_detection_yunet_2023mar.onnx", size=232_589,
                        sha256="8f2383e4dd3cfbb4553ea8718107fc0423210dc964f9f4280604804ed2552fa4"),
        licence="MIT",
        source=f"https://github.com/opencv/opencv_zoo/tree/{_ZOO_COMMIT}/models/face_detection_yunet",
    ),
    # A newer release of the same model; no pinned public URL, so it is installed with --from DIR.
    "yunet-2026may": DetectorModel(
        name="yunet-2026may",
        description="YuNet face detector, May 2026 release (install with --from DIR)",
        base_url="",
        file=SourceFile("detector", "face_detection_yunet_2026may.onnx", size=229_738,
                        sha256="ebafce4e3c118d6554634be5c27ab333b4c047a9a8c3faf1d7cf93101c22f0f0"),
        licence="MIT",
        source="https://github.com/opencv/opencv_zoo",
    ),
}


def installed_path(name: str) -> Path:
    return facevae_home() / "detectors" / DETECTORS[name].file.filename


def get(name: str) -> DetectorModel:
    if name not in DETECTORS:
        raise PretrainedError(f"'{name}' is not a registered detector. Registered: {', '.join(DETECTORS)}")
    return DETECTORS[name]


def how_to_get(name: str = DEFAULT_DETECTOR) -> str:
    spec = get(name)
    others = "".join(f" or {d.file.filename}" for d in DETECTORS.values() if d.name != name)
    return (f"`facevae download {name}` (offline: put {spec.file.filename} from {_address(spec)}{others} in a "
            f"folder DIR and run `facevae download {name} --from DIR`; or set {DETECTOR_ENV}=PATH to an ONNX file)")


def _address(spec: DetectorModel) -> str:
    return f"{spec.base_url}{spec.file.path}" if spec.base_url else spec.source


def install(name: str = DEFAULT_DETECTOR, source_dir: str | Path | None = None, base_url: str | None = None,
            progress: bool = True, force: bool = False) -> Path:
    """Verify and place a detector file in FACEVAE_HOME/detectors; returns its path.

    source_dir: a folder holding the file (flat or at its path), or, when it lacks that one,
    another registered detector's file, which is installed instead (see installed_name);
    otherwise it is downloaded from base_url (default FACEVAE_BASE_URL, else the entry's URL).
    """
    spec = get(name)
    if source_dir is not None:
        spec = _found_in(Path(source_dir).expanduser(), spec)
    target = installed_path(spec.name)
    if target.is_file() and not force:
        return target
    if source_dir is not None:
        return _copy_verified(spec, Path(source_dir).expanduser(), target)
    base = base_url or os.environ.get(BASE_URL_ENV) or spec.base_url
    if not base:
        raise PretrainedError(f"'{name}' has no public download address; install it with "
                              f"`facevae download {name} --from DIR` (DIR holding {spec.file.filename})")
    url = base.rstrip("/") + "/" + spec.file.path
    try:
        return download(url, target, spec.file, progress)
    except urllib.error.URLError as error:
        raise PretrainedError(f"Cannot download {url} ({getattr(error, 'reason', error)}). "
                              f"Get it another way: {how_to_get(name)}") from None


def installed_name(path: Path) -> str | None:
    """The registered detector installed at `path` (what `install` returned), if any."""
    return next((name for name in DETECTORS if installed_path(name) == path), None)


def _in_folder(folder: Path, spec: DetectorModel) -> Path | None:
    return next((c for c in (folder / spec.file.filename, folder / spec.file.path) if c.is_file()), None)


def _found_in(folder: Path, wanted: DetectorModel) -> DetectorModel:
    """`wanted` if its file is in `folder`, else the first registered detector whose file is."""
    if _in_folder(folder, wanted) is not None:
        return wanted
    return next((spec for spec in DETECTORS.values() if _in_folder(folder, spec) is not None), wanted)


def _copy_verified(spec: DetectorModel, folder: Path, target: Path) -> Path:
    """Copy the file from a user's folder through a .part file, verified before the rename."""
    found = _in_folder(folder, spec)
    if found is None:
        files = ", ".join(d.file.filename for d in DETECTORS.values())
        raise PretrainedError(f"{folder} holds no registered detector file ({files}). "
                              f"Download {spec.file.filename} from {_address(spec)}")
    try:
        verify(spec.file, found)
    except ChecksumError as error:
        raise ChecksumError(f"{error}. Copy an intact {spec.file.filename} from {spec.source}") from None
    target.parent.mkdir(parents=True, exist_ok=True)
    part = target.with_name(target.name + ".part")
    part.write_bytes(found.read_bytes())
    os.replace(part, target)
    return target


def detector_file(path: str | Path, named: str) -> Path:
    """The YuNet ONNX file at `path`, or the one .onnx file in the folder `path` (named: how the
    user gave it, for the message)."""
    path = Path(path).expanduser()
    if path.is_dir():
        found = sorted(path.glob("*.onnx"))
        if len(found) == 1:
            return found[0]
        listed = ", ".join(f.name for f in found) or "none"
        raise UserError(f"{named} is a folder with {len(found)} .onnx files ({listed}); give the YuNet ONNX file "
                        f"itself, or use {how_to_get()}")
    if not path.is_file():
        raise UserError(f"{named}: no such file. Point it at a YuNet ONNX file, or unset it to use {how_to_get()}")
    return path


_download_failed: dict[str, str] = {}  # name -> why, so a server process does not retry on every request


def find_detector(download_missing: bool = True, progress: bool = False) -> tuple[Path | None, str | None]:
    """(the YuNet file to use, None) or (None, a note saying why not and how to get it).

    Order: FACEVAE_DETECTOR; any registered detector already in FACEVAE_HOME (the default
    first); else the default is downloaded now (once per process; offline, the note explains).
    """
    chosen = os.environ.get(DETECTOR_ENV, "").strip()
    if chosen.lower() == HAAR:
        return None, f"framed with OpenCV's Haar cascades ({DETECTOR_ENV}=haar)"
    if chosen:
        return detector_file(chosen, f"{DETECTOR_ENV}={chosen}"), None
    for name in [DEFAULT_DETECTOR, *(n for n in DETECTORS if n != DEFAULT_DETECTOR)]:
        if installed_path(name).is_file():
            return installed_path(name), None
    if download_missing and DEFAULT_DETECTOR not in _download_failed:
        try:
            return install(DEFAULT_DETECTOR, progress=progress), None
        except PretrainedError as error:
            _download_failed[DEFAULT_DETECTOR] = str(error).split(". Get it")[0]
    why = _download_failed.get(DEFAULT_DETECTOR, "not installed")
    return None, (f"the YuNet face detector is not available ({why}), so the face was framed with OpenCV's "
                  f"Haar cascades, which are less exact. Get it with {how_to_get()}")
