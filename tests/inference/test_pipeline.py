"""facevae.inference.pipeline: the inference facade, on a tiny random model and on the real decoder."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch

from facevae.config import MODEL_PRESETS, ModelConfig
from facevae.errors import UserError
from facevae.imaging import to_uint8
from facevae.inference import directions
from facevae.inference.encoded import EncodedPhoto
from facevae.inference.pipeline import FacePipeline, LatentShapeError, UnknownAttributeError, slerp
from facevae.model.bundle import FaceModel, load_bundle
from facevae.model.fast_decoder import FastDecoder
from facevae.model.vae import Decoder
from support.models import randomise_batchnorm


@pytest.fixture
def pipe(tiny_bundle: Path) -> FacePipeline:
    return FacePipeline(load_bundle(tiny_bundle))


FAST_DECODER_CONFIGS = {
    **{name: MODEL_PRESETS[name] for name in ("original", "seed", "compact")},
    "tf_same k=5": ModelConfig(image_size=16, channels=(8, 6), latent_dim=4, kernel_size=5),
    "symmetric k=5": ModelConfig(image_size=16, channels=(8, 6), latent_dim=4, kernel_size=5, padding="symmetric"),
}


@pytest.mark.parametrize("name", FAST_DECODER_CONFIGS)
def test_fast_decoder_matches_plain_decoder(name: str):
    torch.manual_seed(0)
    decoder = randomise_batchnorm(Decoder(FAST_DECODER_CONFIGS[name]), affine=True).eval()
    latents = torch.randn(3, decoder.config.latent_dim)
    with torch.inference_mode():
        expected, actual = decoder(latents), FastDecoder(decoder)(latents)
    assert actual.shape == expected.shape
    # float32 rounding: measured at most 1.8e-7 over seeds 0-4 for these configs
    assert (actual - expected).abs().max() < 1e-6
    with torch.inference_mode():
        # bfloat16 storage: measured at most 9.6e-4 over seeds 0-4 for these configs (k=5 the
        # worst); 4x that allows for other CPUs' bf16 kernels
        assert (FastDecoder(decoder, "bf16")(latents) - expected).abs().max() < 4e-3
    # Refinement differentiates through it: the same gradient with respect to the codes.
    grads = []
    for module in (decoder, FastDecoder(decoder)):
        codes = latents.clone().requires_grad_(True)
        module(codes).square().sum().backward()
        grads.append(codes.grad)
    assert torch.allclose(grads[0], grads[1], rtol=1e-4, atol=1e-5)


def test_generate_is_reproducible_and_decodable(pipe: FacePipeline, tmp_path: Path):
    result = pipe.generate(n=7, seed=3, attributes={"Smiling": 1.5})
    assert result.images.shape == (7, 32, 32, 3) and result.images.dtype == np.uint8
    assert result.latents.shape == (7, 16) and result.columns == 7
    assert result.png() == pipe.generate(n=7, seed=3, attributes={"Smiling": 1.5}).png()
    assert result.png() != pipe.generate(n=7, seed=4, attributes={"Smiling": 1.5}).png()
    # the saved latents already include the attribute offset: decoding them redraws the faces
    path = result.save_latents(tmp_path / "codes.npy")
    assert np.array_equal(pipe.decode(np.load(path)).images, result.images)
    plain = pipe.sample_latents(7, 3).numpy()
    vector = pipe.model.attributes["Smiling"].numpy()
    assert np.allclose(result.latents, plain + 1.5 * vector, atol=1e-6)


def test_temperature_scales_the_prior(pipe: FacePipeline):
    assert torch.allclose(pipe.sample_latents(4, 1, temperature=0.5), 0.5 * pipe.sample_latents(4, 1))
    with pytest.raises(UserError, match="temperature"):
        pipe.sample_latents(4, 1, temperature=-1)
    with pytest.raises(UserError, match="between 1 and"):
        pipe.generate(n=0)


def test_unknown_attribute_lists_valid_names_with_suggestion(pipe: FacePipeline):
    with pytest.raises(UnknownAttributeError, match="Did you mean 'Smiling'.*Valid names: Smiling, Eyeglasses"):
        pipe.generate(attributes={"smilng": 1})
    with pytest.raises(UnknownAttributeError, match="Valid names"):
        pipe.arithmetic("Wings")
    with pytest.raises(UnknownAttributeError, match="facevae attributes"):
        bare = FaceModel(pipe.model.config, pipe.model.decoder, preprocessing=pipe.model.preprocessing)
        FacePipeline(bare).resolve_attributes({"x": 1})


def test_decode_checks_latent_shape(pipe: FacePipeline):
    assert pipe.decode(np.zeros(16, np.float32)).images.shape == (1, 32, 32, 3)
    with pytest.raises(LatentShapeError, match="N x 16"):
        pipe.decode(np.zeros((2, 15)))
    with pytest.raises(LatentShapeError, match="NaN"):
        pipe.decode(np.full((1, 16), np.nan))


def test_arithmetic_grid(pipe: FacePipeline):
    result = pipe.arithmetic("Eyeglasses", n=3, seed=5, strengths=(-2, 0, 2))
    assert result.images.shape == (9, 32, 32, 3) and result.columns == 3
    assert result.marked_column == 1 and result.column_labels == ["-2", "0", "+2"]
    base = pipe.sample_latents(3, 5).numpy()
    vector = pipe.model.attributes["Eyeglasses"].numpy()
    codes = result.latents.reshape(3, 3, 16)
    assert np.allclose(codes[:, 1], base) and np.allclose(codes[:, 2], base + 2 * vector, atol=1e-6)
    assert np.array_equal(result.images[1::3], pipe.generate(n=3, seed=5).images)


@pytest.mark.parametrize("method", ["linear", "slerp"])
def test_morph_endpoints_are_the_end_faces(pipe: FacePipeline, method: str):
    result = pipe.morph(n_pairs=2, steps=5, seed=7, method=method)
    assert result.images.shape == (10, 32, 32, 3) and result.columns == 5
    codes = result.latents.reshape(2, 5, 16)
    assert np.array_equal(codes[:, 0], pipe.sample_latents(2, 7).numpy())
    assert np.array_equal(codes[:, -1], pipe.sample_latents(2, 8).numpy())
    assert np.array_equal(result.images[::5], pipe.generate(n=2, seed=7).images)
    given = pipe.morph(steps=3, start=codes[:, 0], end=codes[:, -1], method=method)
    assert np.allclose(given.latents.reshape(2, 3, 16)[:, 0], codes[:, 0])


def test_slerp_keeps_norms_and_linear_does_not():
    generator = torch.Generator().manual_seed(0)
    start, end = torch.randn(4, 200, generator=generator), torch.randn(4, 200, generator=generator)
    end = end / end.norm(dim=1, keepdim=True) * start.norm(dim=1, keepdim=True)  # equal norms
    t = torch.linspace(0, 1, 9)
    norms = slerp(start, end, t).norm(dim=2)
    assert torch.allclose(norms, start.norm(dim=1, keepdim=True).expand(4, 9), rtol=1e-5)
    middle = ((start + end) / 2).norm(dim=1)
    assert (middle < 0.8 * start.norm(dim=1)).all()  # what linear interpolation does instead
    uneven = slerp(start, 2 * end, t).norm(dim=2)  # norms move linearly between the ends
    assert torch.allclose(uneven, start.norm(dim=1, keepdim=True) * (1 + t), rtol=1e-5)


def test_morph_rejects_bad_arguments(pipe: FacePipeline):
    with pytest.raises(UserError, match="'linear' or 'slerp'"):
        pipe.morph(method="cubic")
    with pytest.raises(UserError, match="at least 2 steps"):
        pipe.morph(steps=1)


def test_reconstruct_puts_originals_above_reconstructions(pipe: FacePipeline):
    images = torch.rand(3, 3, 32, 32)
    result = pipe.reconstruct(images, columns=2)
    assert result.columns == 2 and result.images.shape == (8, 32, 32, 3)  # 2 pairs of rows
    assert result.row_labels == ["original", "reconstruction"] * 2
    originals = to_uint8(images)
    assert np.array_equal(result.images[0:2], originals[0:2]) and np.array_equal(result.images[4], originals[2])
    assert (result.images[5] == 255).all()  # blank filler in the short row
    expected = pipe.decode(pipe.model.encode(images)[0]).images
    assert np.array_equal(result.images[2:4], expected[:2])
    assert result.latents.shape == (3, 16)


# --- the real pretrained decoder ------------------------------------------------------

@pytest.fixture(scope="module")
def real(pretrained_bundle: Path) -> FacePipeline:
    return FacePipeline(load_bundle(pretrained_bundle))


def test_real_model_same_seed_same_bytes(real: FacePipeline):
    first = real.generate(n=12, seed=42, attributes={"Smiling": 1.0}).png()
    assert first == real.generate(n=12, seed=42, attributes={"Smiling": 1.0}).png()
    assert first[:8] == b"\x89PNG\r\n\x1a\n"


def test_real_model_fast_paths_match_plain(real: FacePipeline):
    latents = real.sample_latents(16, 1)
    with torch.inference_mode():
        plain = real.model.decoder(latents)
        assert (FastDecoder(real.model.decoder, "fp32")(latents) - plain).abs().max() < 2e-6  # measured 5.4e-7
        bf16 = FastDecoder(real.model.decoder, "bf16")(latents)
    assert (bf16 - plain).abs().max() < 0.01  # measured 0.004
    levels = np.abs(to_uint8(bf16).astype(int) - to_uint8(plain).astype(int))
    assert levels.max() <= 2 and levels.mean() < 0.3  # measured: at most 1 level, 0.1 on average


def test_precision_choice(tiny_bundle: Path):
    model = load_bundle(tiny_bundle)
    assert FacePipeline(model, precision="fp32").precision == "fp32"
    assert FacePipeline(model, fast=False).decoder is model.decoder
    assert FacePipeline(model).precision in ("fp32", "bf16")
    with pytest.raises(UserError, match="precision"):
        FacePipeline(model, precision="int8")


def _brightness(pipe: FacePipeline, attributes: dict[str, float] | None) -> np.ndarray:
    return pipe.generate(n=16, seed=0, attributes=attributes).images.astype(np.float32).mean(-1)  # N x 64 x 64


def test_blond_hair_lightens_the_hair(real: FacePipeline):
    change = _brightness(real, {"Blond_Hair": 2}) - _brightness(real, None)
    hair = change[:, 12:26, 14:50].mean(axis=(1, 2))  # above the forehead (64 x 64 squashed frame)
    assert (hair > 10).all() and hair.mean() > 25


def test_eyeglasses_darken_the_eyes(real: FacePipeline):
    change = _brightness(real, {"Eyeglasses": 2}) - _brightness(real, None)
    eyes = change[:, 30:40, 20:44].mean(axis=(1, 2))  # eyes sit at y ~ 112/218 of the frame
    assert (eyes < -5).all() and eyes.mean() < -12


# --- one way from a photo to an edit ---------------------------------------------------

class CountingDecoder(torch.nn.Module):
    """Wraps a decoder and counts the rows (codes) it draws."""

    def __init__(self, decoder: torch.nn.Module) -> None:
        super().__init__()
        self.decoder, self.rows = decoder, 0

    def forward(self, latents: torch.Tensor) -> torch.Tensor:
        self.rows += len(latents)
        return self.decoder(latents)


def test_encode_then_edit_is_edit_of_the_photo(pipe: FacePipeline):
    images = torch.rand(1, 3, 32, 32)
    encoded = pipe.encode(images)
    assert isinstance(encoded, EncodedPhoto) and encoded.decoder is None and len(encoded) == 1
    assert torch.equal(encoded.images, images) and torch.equal(encoded.codes, pipe.model.encode(images)[0])
    direct, cached = pipe.edit(images, {"Smiling": 2.0}), pipe.edit(encoded, {"Smiling": 2.0})
    assert np.array_equal(direct.images, cached.images) and np.array_equal(direct.latents, cached.latents)
    assert direct.images.shape == (3, 32, 32, 3) and direct.column_labels == ["photo", "reconstruction", "edited"]
    vector = pipe.model.attributes["Smiling"].numpy()
    assert np.allclose(direct.latents[1] - direct.latents[0], 2.0 * vector, atol=1e-6)
    assert np.array_equal(direct.faces, direct.images[1:])
    # reconstruct takes the same inputs: its reconstruction is edit's
    assert np.array_equal(pipe.reconstruct(encoded).faces[0], direct.faces[0])


def test_edit_takes_several_photos_row_by_row(pipe: FacePipeline):
    images = torch.rand(2, 3, 32, 32)
    result = pipe.edit(images, {"Eyeglasses": 1.0})
    assert result.images.shape == (6, 32, 32, 3) and result.latents.shape == (4, 16)
    assert np.array_equal(result.images[3], to_uint8(images)[1])  # second row starts with the second photo
    assert np.array_equal(result.images[4:6], pipe.edit(images[1:], {"Eyeglasses": 1.0}).images[1:])


def test_an_encoded_photo_draws_with_its_own_decoder(pipe: FacePipeline):
    encoded = pipe.encode(torch.rand(1, 3, 32, 32))
    own = CountingDecoder(pipe.decoder)
    tuned = encoded.with_decoder(own, steps=3)
    assert tuned.decoder_settings == {"steps": 3} and torch.equal(tuned.codes, encoded.codes)
    assert np.array_equal(pipe.edit(tuned, {"Smiling": 1.0}).images, pipe.edit(encoded, {"Smiling": 1.0}).images)
    assert own.rows == 2  # the reconstruction and the edited face, drawn by the photo's decoder
    pipe.reconstruct(tuned)
    assert own.rows == 3
    with pytest.raises(ValueError, match="N x 3 x S x S images and N x D codes"):
        EncodedPhoto(encoded.images, encoded.codes[0])


def test_edit_resolves_the_decoded_keep_offset_once(pipe: FacePipeline):
    counter = pipe.decoder = CountingDecoder(pipe.decoder)
    pipe.edit(torch.rand(1, 3, 32, 32), {"Smiling": 1.0}, keep=["Eyeglasses"], keep_mode="decoded")
    # pixel signatures: 32 faces + 32 moved along the kept vector; 5 readouts of 32 faces
    # (2 for the first-order line, 3 correction rounds); then the reconstruction and the edit
    samples, readouts = directions.CORRECTION_SAMPLES, 2 + directions.CORRECTION_STEPS
    assert counter.rows == 2 * samples + readouts * samples + 2 == 226


def test_arithmetic_measures_the_pixel_signatures_once(pipe: FacePipeline):
    counter = pipe.decoder = CountingDecoder(pipe.decoder)
    strengths = (-3, -2, -1, 0, 1, 2, 3)
    result = pipe.arithmetic("Smiling", n=5, strengths=strengths, keep=["Eyeglasses"], keep_mode="decoded")
    samples, readouts = directions.CORRECTION_SAMPLES, 2 + directions.CORRECTION_STEPS
    # one set of signatures, a correction per non-zero strength, the 5 x 7 faces
    assert counter.rows == 2 * samples + 6 * readouts * samples + 35
    single = pipe.resolve_attributes({"Smiling": 2.0}, keep=["Eyeglasses"], keep_mode="decoded")
    assert np.allclose(result.latents[5] - result.latents[3], single.numpy(), atol=1e-5)


def test_decoding_splits_into_the_runtimes_batches(pipe: FacePipeline):
    calls = []
    decoder = pipe.decoder
    pipe.decoder = lambda chunk: calls.append(len(chunk)) or decoder(chunk)
    pipe.generate(n=20)
    assert calls == [8, 8, 4] and pipe.runtime.decode_batch == 8  # the CPU's


def test_the_public_surface_is_the_documented_one(pipe: FacePipeline):
    public = {name for name in dir(pipe) if not name.startswith("_")}
    assert public == {"load", "model", "runtime", "precision", "decoder", "latent_dim", "image_size",
                      "attribute_names", "sample_latents", "as_latents", "resolve_attributes", "decode_tensor",
                      "encode", "generate", "decode", "arithmetic", "morph", "reconstruct", "edit"}
    documented = Path(__file__).resolve().parents[2] / "docs" / "architecture.md"
    table = documented.read_text().split("## FacePipeline's public surface")[1].split("\n## ")[0]
    missing = sorted(name for name in public if not re.search(rf"[`.]{name}\b", table))
    assert missing == []
