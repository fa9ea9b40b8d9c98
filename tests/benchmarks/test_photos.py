"""benchmarks/photos.py's experiments, which live there and not in the library: several
starting codes per photo, and the earlier optimisation it measures the defaults against."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

from facevae.inference.inversion import InversionSettings
from facevae.inference.pipeline import FacePipeline
from facevae.model.bundle import load_bundle
from support.models import plain_decode

SCRIPT = Path(__file__).resolve().parents[2] / "benchmarks" / "photos.py"


@pytest.fixture(scope="module")
def photos():
    spec = importlib.util.spec_from_file_location("benchmark_photos", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    sys.path.insert(0, str(SCRIPT.parent))  # its helpers (_machine), as when run as a script
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.path.remove(str(SCRIPT.parent))
        del sys.modules[spec.name]


def _decoder_only(tiny_bundle: Path) -> FacePipeline:
    model = load_bundle(tiny_bundle)
    model.encoder = None  # optimisation from the prior's mean, as for the pretrained model
    model.decoder.dense.weight.data *= 10  # a random decoder barely depends on its input: make it
    model.decoder.to_rgb.weight.data *= 30
    return FacePipeline(model, fast=False)


def _error(pipe: FacePipeline, codes: torch.Tensor, images: torch.Tensor) -> float:
    return float(((plain_decode(pipe.model, codes) - images) ** 2).mean())


def test_several_starts_keep_the_best_fit_for_each_image(photos, tiny_bundle: Path):
    torch.set_num_threads(1)
    pipe = _decoder_only(tiny_bundle)
    images = plain_decode(pipe.model, torch.randn(3, 16, generator=torch.Generator().manual_seed(4)))
    plain = photos.Variant(InversionSettings(lr_schedule="cosine", face_weight=0.0))
    several = photos.parse_try("lr_schedule=cosine,face_weight=0,starts=6,probe_steps=10")
    assert several.starts == 6 and several.settings == plain.settings
    one, many = photos.invert_variant(pipe, images, plain), photos.invert_variant(pipe, images, several)
    assert not torch.equal(one, many)
    assert _error(pipe, many, images) < 1.2 * _error(pipe, one, images)
    assert torch.equal(many, photos.invert_variant(pipe, images, several))  # seeded: a photo always gets one code


def test_the_baseline_is_the_earlier_optimisation_and_unknown_settings_stop(photos):
    assert photos.DEFAULT.settings == InversionSettings() and photos.DEFAULT.starts == 1
    assert photos.BASELINE.settings.lr_schedule == "constant" and photos.BASELINE.settings.face_weight == 0
    with pytest.raises(SystemExit, match="unknown setting 'step'"):
        photos.parse_try("step=3")
