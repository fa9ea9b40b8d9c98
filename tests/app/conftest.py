"""Fixtures for the GUI tests: a fresh AppTest of the Streamlit script, photos, a tiny cache.

- `gui`: a factory `gui(model, data="", runs_dir="", query=None) -> AppTest` that points the
  app at a model through the same environment variables `facevae gui` sets, with every
  Streamlit cache emptied first (they live for the whole test process).
- `loads`: counts, per path, the calls of the model loader and of the dataset preparer
  (wrapped here), so tests see whether reruns load again.
- `face_photo_png`: a "photo" of a face (a face drawn by the real decoder, enlarged and put
  on a plain background), which OpenCV's detector finds.
- `tiny_model_bundle`: the tiny model with preprocessing at its own image size;
  `decoder_only_bundle`: the same without its encoder.
- `image_folder`: a raw folder of small pictures for `--data`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from facevae.model.bundle import Preprocessing, load_bundle, save_bundle
from support.images import photo_of, png_bytes

GUI_SCRIPT = Path(__file__).resolve().parents[2] / "src" / "facevae" / "app" / "gui" / "script.py"
APP_TIMEOUT = 120  # seconds per AppTest run: the first one imports torch and loads a model


def reset_gui_state() -> None:
    import streamlit as st

    st.cache_resource.clear()
    st.cache_data.clear()


@pytest.fixture
def loads(monkeypatch: pytest.MonkeyPatch) -> dict[str, Counter]:
    """{"model": Counter(path -> loads), "dataset": Counter(path -> caches opened)}."""
    from facevae.data import prepare
    from facevae.interop import loading

    counts: dict[str, Counter] = {"model": Counter(), "dataset": Counter()}

    def counted(kind: str, function: Callable) -> Callable:
        def wrapper(path, *args, **kwargs):
            counts[kind][str(path)] += 1
            return function(path, *args, **kwargs)
        return wrapper

    monkeypatch.setattr(loading, "load", counted("model", loading.load))
    monkeypatch.setattr(prepare, "ensure_cache", counted("dataset", prepare.ensure_cache))
    return counts


@pytest.fixture
def gui(monkeypatch: pytest.MonkeyPatch, facevae_home: Path) -> Callable[..., object]:
    from streamlit.testing.v1 import AppTest

    def make(model: str | Path, data: str | Path = "", runs_dir: str | Path = "",
             query: dict[str, str] | None = None) -> AppTest:
        monkeypatch.setenv("FACEVAE_GUI_MODEL", str(model))
        monkeypatch.setenv("FACEVAE_GUI_DATA", str(data))
        monkeypatch.setenv("FACEVAE_GUI_RUNS_DIR", str(runs_dir))
        reset_gui_state()
        app = AppTest.from_file(str(GUI_SCRIPT), default_timeout=APP_TIMEOUT)
        app.query_params.update(query or {})
        return app

    yield make
    reset_gui_state()


@pytest.fixture(scope="session")
def face_photo_png(pretrained_bundle: Path) -> bytes:
    from facevae.inference.pipeline import FacePipeline

    face = FacePipeline.load(pretrained_bundle).generate(1, seed=3).images[0]
    return png_bytes(photo_of(face, size=(400, 320), at=(110, 50), scale=1, background=(90, 110, 130)))


@pytest.fixture
def tiny_model_bundle(tiny_bundle: Path, tmp_path: Path) -> Path:
    """The tiny model with preprocessing that matches its 32 x 32 images (photos become 32 x 32)."""
    model = load_bundle(tiny_bundle)
    model.preprocessing = Preprocessing(image_size=model.config.image_size)
    return save_bundle(model, tmp_path / "tiny-model")


@pytest.fixture
def decoder_only_bundle(tiny_model_bundle: Path, tmp_path: Path) -> Path:
    model = load_bundle(tiny_model_bundle)
    model.encoder = None
    return save_bundle(model, tmp_path / "decoder-only")


@pytest.fixture
def image_folder(tmp_path: Path) -> Path:
    """A raw folder of 60 small pictures (6 in the validation split); the GUI prepares its
    cache on first use."""
    folder = tmp_path / "faces"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for index in range(60):
        pixels = rng.integers(0, 256, (48, 40, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"{index:03d}.png")
    return folder
