"""The registry of named pretrained models: what their files are and where they go (no torch).

    FACEVAE_HOME/                       default: the user's cache folder + /facevae
      downloads/NAME/PATH               verified source files (PATH as in the source repo)
      downloads/NAME/PATH.part          an interrupted download, resumed by the next try
      models/NAME/                      the converted bundle (what `facevae.load(NAME)` opens)

facevae.hub.download fetches and verifies the files; facevae.hub.install converts them into
a bundle. New models (e.g. ones trained with facevae) are added to REGISTRY.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

from ..errors import UserError

DEFAULT_MODEL = "celeba64-original"  # what every command, the GUI, the server and facevae.load use
BASE_URL_ENV = "FACEVAE_BASE_URL"
HOME_ENV = "FACEVAE_HOME"


class PretrainedError(UserError):
    """A registry model that cannot be installed: the message says what to do."""


@dataclass(frozen=True)
class SourceFile:
    """One file of a registry model, at `path` relative to the model's base URL."""

    role: str  # "decoder", "encoder" or "attributes"
    path: str
    size: int | None = None
    sha256: str | None = None
    git_blob: str | None = None  # SHA-1 of b"blob <size>\0" + bytes, as in `git ls-tree`
    required: bool = True

    @property
    def filename(self) -> str:
        return self.path.rsplit("/", 1)[-1]


@dataclass(frozen=True)
class PretrainedModel:
    name: str
    description: str
    base_url: str  # ends with "/"; FACEVAE_BASE_URL overrides it
    files: tuple[SourceFile, ...]
    licence: str
    author: str
    copyright: str
    source: str  # human-readable home of the model
    commit: str = ""
    notes: str = ""
    # "keras": the original project's .keras files + attribute JSON (roles decoder, encoder,
    # attributes); "bundle": a facevae bundle's own files (roles config, decoder, encoder,
    # attributes), e.g. a model trained with facevae and published somewhere.
    format: str = "keras"


_ORIGINAL_COMMIT = "b77786ccd7e69812bd5d82dd3f9eac906b13ad40"
_ORIGINAL_REPO = "https://github.com/farhad-dalirani/Controllable-Face-Generation-VAE"

REGISTRY: dict[str, PretrainedModel] = {
    "celeba64-original": PretrainedModel(
        name="celeba64-original",
        description="The original TensorFlow project's CelebA 64x64 VAE (latent 200) with 40 attribute vectors",
        base_url=f"https://raw.githubusercontent.com/farhad-dalirani/Controllable-Face-Generation-VAE/{_ORIGINAL_COMMIT}/",
        files=(
            SourceFile("decoder", "model_weights/decoder.keras", size=4_104_093,
                       sha256="db62696c568a6e4eef1e9709137f8bbdd329d6c3614e93f34185bec05fb36588",
                       git_blob="faae1f06721de8ebb17f8f56b5d09f0b3f02e3a8"),
            SourceFile("attributes", "attributes_embedings/attributes_embedings.json", size=180_549,
                       sha256="8ea3668d62a54d8a46d9e7c8e035d813b36213b796f94e4c3d7aaa83ce937792",
                       git_blob="0a34627a564c21b20725105a0926a57c83a0e4b0"),
            # Size and SHA-256 unpublished: the git blob id (from the commit's tree) verifies it.
            SourceFile("encoder", "model_weights/encoder.keras",
                       git_blob="2eed33a5ee9e2755fcbecbef464691003608d03e", required=False),
        ),
        licence="MIT",
        author="Farhad Dalirani",
        copyright="Copyright (c) 2024 Farhad Dalirani",
        source=f"{_ORIGINAL_REPO}/tree/{_ORIGINAL_COMMIT}",
        commit=_ORIGINAL_COMMIT,
        notes="Without encoder.keras the model generates, edits and morphs faces, but reconstructing "
              "a photo needs the encoder (or the optimisation-based inversion).",
    ),
}


def facevae_home() -> Path:
    """FACEVAE_HOME, else the user's cache folder (XDG_CACHE_HOME, ~/Library/Caches, %LOCALAPPDATA%)."""
    if os.environ.get(HOME_ENV):
        return Path(os.environ[HOME_ENV]).expanduser()
    if os.environ.get("XDG_CACHE_HOME"):
        return Path(os.environ["XDG_CACHE_HOME"]).expanduser() / "facevae"
    if sys.platform == "win32" and os.environ.get("LOCALAPPDATA"):
        return Path(os.environ["LOCALAPPDATA"]) / "facevae" / "Cache"
    if sys.platform == "darwin":
        return Path.home() / "Library" / "Caches" / "facevae"
    return Path.home() / ".cache" / "facevae"


def get(name: str) -> PretrainedModel:
    if name not in REGISTRY:
        raise PretrainedError(f"'{name}' is not a registered model. Registered: {', '.join(REGISTRY)}")
    return REGISTRY[name]


def bundle_path(name: str) -> Path:
    return facevae_home() / "models" / name


def download_dir(name: str) -> Path:
    return facevae_home() / "downloads" / name


def base_url_for(spec: PretrainedModel, base_url: str | None = None) -> str:
    url = base_url or os.environ.get(BASE_URL_ENV) or spec.base_url
    return url if url.endswith("/") else url + "/"
