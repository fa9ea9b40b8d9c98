"""Fixtures shared by every test module.

- `shared_pretrained_dir`: the original project's published files in the shared folder
  (FACEVAE_SHARED, else ../shared: support.shared); skips with a reason naming the variable on
  a clone without them, as on a user's machine.
- `face_detector` (automatic): FACEVAE_DETECTOR set to the YuNet file in the shared folder (the
  Haar cascades without it), so no test downloads the detector.
- `facevae_home`: an empty FACEVAE_HOME for the test, so nothing touches the user's cache.
- `tiny_bundle`: a randomly initialised small model with two attribute vectors, saved as a
  bundle (encoder included): support.models.make_tiny_model().
- `pretrained_bundle`: the real `celeba64-original` decoder and attribute vectors installed
  from ../shared through the same code path as `facevae download --from` (once per session).
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

pytest.register_assert_rewrite("support")  # before the first import of tests/support, so its asserts explain themselves

from facevae.model.bundle import save_bundle  # noqa: E402
from support.models import make_tiny_model  # noqa: E402
from support.shared import SHARED, skip_reason  # noqa: E402

SHARED_PRETRAINED = SHARED / "pretrained" / "original-celeba64"
SHARED_DETECTOR = SHARED / "face-detector" / "face_detection_yunet_2026may.onnx"


@pytest.fixture(scope="session")
def shared_pretrained_dir() -> Path:
    if not (SHARED_PRETRAINED / "decoder.keras").is_file():
        pytest.skip(skip_reason("the original project's files (pretrained/original-celeba64/decoder.keras)"))
    return SHARED_PRETRAINED


@pytest.fixture(autouse=True)
def face_detector(monkeypatch: pytest.MonkeyPatch) -> str:
    """Tests never download the face detector: the YuNet file in the shared folder, else the Haar cascades."""
    choice = str(SHARED_DETECTOR) if SHARED_DETECTOR.is_file() else "haar"
    monkeypatch.setenv("FACEVAE_DETECTOR", choice)
    return choice


@pytest.fixture
def facevae_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    home = tmp_path / "facevae-home"
    monkeypatch.setenv("FACEVAE_HOME", str(home))
    return home


@pytest.fixture
def tiny_bundle(tmp_path: Path) -> Path:
    return save_bundle(make_tiny_model(), tmp_path / "tiny-bundle")


@pytest.fixture(scope="session")
def pretrained_bundle(shared_pretrained_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The bundle folder of celeba64-original, installed from ../shared via `--from`."""
    from facevae.hub import install
    from facevae.interop.loading import convert_published

    home = tmp_path_factory.mktemp("pretrained-home")
    old = os.environ.get("FACEVAE_HOME")
    os.environ["FACEVAE_HOME"] = str(home)
    try:
        return install.install("celeba64-original", source_dir=shared_pretrained_dir, progress=False,
                               convert=convert_published)
    finally:
        if old is None:
            os.environ.pop("FACEVAE_HOME", None)
        else:
            os.environ["FACEVAE_HOME"] = old
