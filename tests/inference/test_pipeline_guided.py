"""method="guided" on FacePipeline's generate, decode, arithmetic and edit (tiny random model,
guided by the shipped classifier): it walks the codes, deterministically, and bad requests fail
before any work."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from facevae.errors import UserError
from facevae.inference.pipeline import FacePipeline


@pytest.fixture
def pipe(tiny_bundle: Path) -> FacePipeline:
    return FacePipeline.load(tiny_bundle, device="cpu")


def test_generate_and_decode_walk_the_codes(pipe: FacePipeline) -> None:
    linear = pipe.generate(n=3, seed=2, attributes={"Smiling": 2.0})
    guided = pipe.generate(n=3, seed=2, attributes={"Smiling": 2.0}, method="guided")
    again = pipe.generate(n=3, seed=2, attributes={"Smiling": 2.0}, method="guided")
    assert np.array_equal(guided.latents, again.latents)
    start = pipe.sample_latents(3, seed=2).numpy()
    length = float(pipe.model.attributes["Smiling"].norm()) * 2
    moved = np.linalg.norm(guided.latents - start, axis=1)
    assert (moved > 0.3 * length).all() and (moved <= length * 1.001).all()  # a path no longer than the linear one
    assert not np.allclose(guided.latents, linear.latents)
    decoded = pipe.decode(start, attributes={"Smiling": 2.0}, method="guided")
    np.testing.assert_allclose(decoded.latents, guided.latents, atol=1e-5)


def test_arithmetic_grid_keeps_the_zero_column(pipe: FacePipeline) -> None:
    result = pipe.arithmetic("Smiling", n=2, strengths=(-1, 0, 1), method="guided", keep=["Eyeglasses"])
    codes = result.latents.reshape(2, 3, -1)
    np.testing.assert_array_equal(codes[:, 1], pipe.sample_latents(2).numpy())
    assert not np.allclose(codes[:, 0], codes[:, 1]) and not np.allclose(codes[:, 2], codes[:, 1])


def test_edit_of_a_photo(pipe: FacePipeline) -> None:
    photo = torch.rand(1, 3, pipe.image_size, pipe.image_size)
    result = pipe.edit(photo, {"Smiling": 1.0}, method="guided", keep=["*"])
    assert result.latents.shape == (2, pipe.latent_dim) and not np.allclose(result.latents[0], result.latents[1])


def test_bad_requests_fail_first(pipe: FacePipeline) -> None:
    photo = torch.rand(1, 3, pipe.image_size, pipe.image_size)
    with pytest.raises(UserError, match="'linear' or 'guided'"):
        pipe.edit(photo, {"Smiling": 1.0}, method="nonlinear")
    with pytest.raises(UserError, match="needs method='guided'"):
        pipe.generate(n=1, attributes={"Smiling": 1.0}, keep=["*"])
    with pytest.raises(UserError, match="Unknown attribute 'Smilng'"):
        pipe.generate(n=1, attributes={"Smilng": 1.0}, method="guided")
