"""facevae.inference.inversion: encoder means, bounded refinement, decoder-only models."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from facevae.errors import UserError
from facevae.inference.inversion import (
    DECODER_ONLY_STEPS,
    MAX_REFINE_STEPS,
    InversionSettings,
    face_weights,
    invert,
    refine,
)
from facevae.inference.pipeline import FacePipeline
from facevae.model.bundle import load_bundle
from support.models import plain_decode
from support.shared import SHARED, skip_reason


@pytest.fixture(autouse=True)
def one_thread():
    """Tiny models optimise faster on one thread, and far faster on a busy machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _sensitise(model):
    """A random decoder barely depends on its input; scaled weights make it depend strongly."""
    model.decoder.dense.weight.data *= 10
    model.decoder.to_rgb.weight.data *= 30
    return model


def _error(decoder: torch.nn.Module, latents: torch.Tensor, images: torch.Tensor) -> float:
    with torch.no_grad():
        return float(((decoder(latents) - images) ** 2).mean())


def test_without_refinement_the_code_is_the_encoder_mean(tiny_bundle: Path):
    model = load_bundle(tiny_bundle)
    images = torch.rand(3, 3, 32, 32)
    assert torch.equal(invert(model, images), model.encode(images)[0])


def test_refinement_lowers_the_error_and_leaves_the_decoder_alone(tiny_bundle: Path):
    model = load_bundle(tiny_bundle)
    _sensitise(model)
    images = plain_decode(model, torch.randn(2, 16, generator=torch.Generator().manual_seed(1)))
    before = {k: v.clone() for k, v in model.decoder.state_dict().items()}
    start = invert(model, images)
    refined = invert(model, images, refine_steps=60, settings=InversionSettings(prior_weight=0.0))
    assert _error(model.decoder, refined, images) < 0.5 * _error(model.decoder, start, images)
    assert all(torch.equal(before[k], v) for k, v in model.decoder.state_dict().items())
    assert all(p.requires_grad for p in model.decoder.parameters())  # restored afterwards
    assert not model.decoder.training


def test_refinement_is_bounded(tiny_bundle: Path):
    model = load_bundle(tiny_bundle)
    with pytest.raises(UserError, match=f"between 0 and {MAX_REFINE_STEPS}"):
        invert(model, torch.rand(1, 3, 32, 32), refine_steps=MAX_REFINE_STEPS + 1)


def test_prior_term_keeps_codes_small(tiny_bundle: Path):
    model = load_bundle(tiny_bundle)
    images = torch.rand(2, 3, 32, 32)
    start = torch.zeros(2, 16)
    loose = refine(model.decoder, images, start, 80, InversionSettings(prior_weight=0.0))
    tight = refine(model.decoder, images, start, 80, InversionSettings(prior_weight=1.0))
    assert tight.norm() < loose.norm()


def test_decoder_only_model_optimises_from_the_prior_mean(tiny_bundle: Path, monkeypatch: pytest.MonkeyPatch):
    model = _sensitise(load_bundle(tiny_bundle))
    model.encoder = None
    calls = []
    real_refine = refine

    def spy(decoder, images, start, steps, *args, **kwargs):
        calls.append((start.clone(), steps))
        return real_refine(decoder, images, start, steps, *args, **kwargs)

    monkeypatch.setattr("facevae.inference.inversion.refine", spy)
    images = plain_decode(model, torch.randn(1, 16, generator=torch.Generator().manual_seed(2)))
    codes = invert(model, images)
    assert torch.equal(calls[0][0], torch.zeros(1, 16)) and calls[0][1] == DECODER_ONLY_STEPS
    assert _error(model.decoder, codes, images) < _error(model.decoder, torch.zeros(1, 16), images)


def test_real_decoder_inverts_a_generated_face(pretrained_bundle: Path):
    pipe = FacePipeline(load_bundle(pretrained_bundle))
    face = pipe.generate(n=1, seed=5, temperature=0.7)
    images = torch.from_numpy(face.images).permute(0, 3, 1, 2).float() / 255
    result = pipe.reconstruct(images)  # decoder-only: optimisation from zeros
    recon = torch.from_numpy(result.images[1]).float() / 255
    assert float(((recon - images[0].permute(1, 2, 0)) ** 2).mean()) < 2e-3


def test_face_weights_put_the_weight_on_the_face(pretrained_bundle: Path):
    model = load_bundle(pretrained_bundle)  # squashes the 178 x 218 frame to 64 x 64
    weights = face_weights(model.preprocessing, 3.0)[0]
    assert weights.shape == (64, 64) and float(weights.mean()) == pytest.approx(1.0, abs=1e-5)
    face = weights[int(134 * 64 / 218), int(88.5 * 64 / 178)]  # the nose tip
    corner = weights[2, 2]
    assert float(face) > 3 * float(corner)
    assert torch.equal(face_weights(model.preprocessing, 0.0), torch.ones(1, 64, 64))


def test_the_dataclass_defaults_are_what_invert_uses(tiny_bundle: Path):
    model = _sensitise(load_bundle(tiny_bundle))
    images = plain_decode(model, torch.randn(2, 16, generator=torch.Generator().manual_seed(6)))
    defaults = InversionSettings()
    assert (defaults.lr, defaults.lr_schedule, defaults.face_weight) == (0.3, "cosine", 10.0)
    assert torch.equal(invert(model, images, 5), invert(model, images, 5, settings=defaults))
    assert not torch.equal(invert(model, images, 5), invert(model, images, 5, settings=InversionSettings(lr=0.1)))


def test_bad_settings_are_refused():
    with pytest.raises(UserError, match="lr_schedule"):
        InversionSettings(lr_schedule="linear")
    with pytest.raises(UserError, match="lr > 0"):
        InversionSettings(lr=0)


@pytest.mark.slow
def test_default_settings_fit_real_faces_better_than_the_baseline(pretrained_bundle: Path):
    """On framed real photos, the defaults redraw the face itself (brows to chin) more closely
    than the earlier fixed-step, unweighted optimisation in the same number of steps."""
    from PIL import Image, ImageDraw

    from facevae.imaging import preprocess, read_image
    from facevae.inference.face import CELEBA_SIZE, FACE_REGION, align_face

    shared = SHARED / "photos"
    names = ["obama.jpg", "biden.jpg"]
    if not all((shared / n).is_file() for n in names):
        pytest.skip(skip_reason("the real photos (photos/obama.jpg, photos/biden.jpg)"))
    model = load_bundle(pretrained_bundle)
    images = torch.stack([preprocess(align_face(read_image(shared / n)).image, model.preprocessing) for n in names])
    frame = Image.new("RGB", CELEBA_SIZE, (0, 0, 0))
    ImageDraw.Draw(frame).rectangle(FACE_REGION, fill=(255, 255, 255))
    face = preprocess(frame, model.preprocessing)[0] > 0.5  # S x S
    errors = {}
    baseline = InversionSettings(lr=0.1, prior_weight=0.01, face_weight=0.0, lr_schedule="constant")  # the earlier
    for name, settings in (("baseline", baseline), ("default", InversionSettings())):
        with torch.no_grad():
            recon = model.decoder(invert(model, images, settings=settings))
        errors[name] = float(((recon - images) ** 2)[:, :, face].mean())
    assert errors["default"] < 0.9 * errors["baseline"]
