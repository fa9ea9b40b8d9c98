"""facevae.inference.tuned_photo: a tuned photo saved and loaded draws exactly as before."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from facevae.errors import UserError
from facevae.inference.pipeline import FacePipeline
from facevae.inference.tuned_photo import load_tuned_photo, save_tuned_photo
from support.models import make_tiny_model


def _picture(seed: int) -> Image.Image:
    return Image.fromarray(np.random.default_rng(seed).integers(0, 255, (40, 40, 3), np.uint8))


def test_a_saved_tuned_photo_edits_as_before_after_loading(tmp_path: Path):
    pipe = FacePipeline(make_tiny_model())
    for photos in (_picture(0), [_picture(1), _picture(2)]):
        photo = pipe.encode(photos, whole_image=True, tune_steps=3)
        path = save_tuned_photo(pipe, photo, tmp_path / "me.safetensors")
        loaded = load_tuned_photo(FacePipeline(make_tiny_model()), path)  # a fresh load of the same model
        before, after = (pipe.edit(p, {"Smiling": 1.5}) for p in (photo, loaded))
        assert np.array_equal(before.images, after.images) and np.array_equal(before.latents, after.latents)
        assert loaded.notes == photo.notes and loaded.decoder_settings["tune_steps"] == 3


def test_a_tuned_photo_is_refused_by_another_model_and_untuned_photos_are_not_saved(tmp_path: Path):
    pipe = FacePipeline(make_tiny_model())
    path = save_tuned_photo(pipe, pipe.encode(_picture(0), whole_image=True, tune_steps=2), tmp_path / "me.safetensors")
    with pytest.raises(UserError, match="tuned on another model"):
        load_tuned_photo(FacePipeline(make_tiny_model(seed=1)), path)
    with pytest.raises(UserError, match="no tuned decoder"):
        save_tuned_photo(pipe, pipe.encode(_picture(0), whole_image=True, tune_steps=0), tmp_path / "x.safetensors")
    with pytest.raises(UserError, match="ending in .safetensors"):
        save_tuned_photo(pipe, pipe.encode(_picture(0), whole_image=True, tune_steps=1), tmp_path / "me.npy")
    (tmp_path / "junk.safetensors").write_bytes(b"not a file")
    with pytest.raises(UserError, match="not a readable tuned photo"):
        load_tuned_photo(pipe, tmp_path / "junk.safetensors")
