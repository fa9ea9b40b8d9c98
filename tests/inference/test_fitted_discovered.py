"""Classifier-fitted directions (a planted scorer) and discovered SeFa directions (a planted
first layer), through Python and the CLI."""

from __future__ import annotations

import sys
import types
from pathlib import Path

import pytest
import torch

from facevae.cli.main import main
from facevae.inference import discovered
from facevae.inference.fitted import fit_directions
from facevae.inference.pipeline import FacePipeline
from facevae.model.bundle import load_bundle, save_bundle
from support.models import make_tiny_model


class PlantedScorer(torch.nn.Module):
    """Scores decoded faces by known functions of their pixels: "Bright" = mean brightness,
    "Red" = red minus blue. Probabilities via a sigmoid around the sampled median."""

    attribute_names = ["Bright", "Red"]
    image_size = 32

    def __init__(self, centre: torch.Tensor) -> None:
        super().__init__()
        self.centre = centre  # 2: the medians, so both classes are well populated

    def features(self, images: torch.Tensor) -> torch.Tensor:  # N x 3 x S x S -> N x 2
        return torch.stack([images.mean((1, 2, 3)), (images[:, 0] - images[:, 2]).mean((1, 2))], 1)

    def probabilities(self, images: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid((self.features(images) - self.centre) * 400)


def planted_decoder(latent_dim: int, size: int = 32) -> torch.nn.Module:
    """pixels = sigmoid(M z): a decoder whose pixels are known functions of the code."""
    torch.manual_seed(7)
    linear = torch.nn.Linear(latent_dim, 3 * size * size)
    torch.nn.init.normal_(linear.weight, std=0.3)
    return torch.nn.Sequential(linear, torch.nn.Sigmoid(), torch.nn.Unflatten(1, (3, size, size))).eval()


@pytest.fixture
def pipe() -> FacePipeline:
    model = make_tiny_model()
    model.decoder = planted_decoder(model.latent_dim)
    return FacePipeline(model, fast=False)


def planted_scorer(pipe: FacePipeline) -> PlantedScorer:
    images = pipe.decode_tensor(pipe.sample_latents(200, seed=99))
    return PlantedScorer(PlantedScorer(torch.zeros(2)).features(images).median(0).values)


def test_fitted_directions_move_the_scored_attribute(pipe: FacePipeline):
    scorer = planted_scorer(pipe)
    fitted = fit_directions(pipe, scorer.probabilities, scorer.attribute_names, samples=300, seed=1, progress=False)
    assert set(fitted.vectors) == {"Bright", "Red"} and not fitted.skipped
    codes = pipe.sample_latents(64, seed=5).requires_grad_(True)
    for a, name in enumerate(scorer.attribute_names):
        # the true direction: the mean gradient of the planted feature with respect to the code
        with torch.enable_grad():
            gradient, = torch.autograd.grad(scorer.features(pipe.decoder(codes))[:, a].sum(), codes)
        truth = gradient.mean(0)
        cosine = torch.nn.functional.cosine_similarity(fitted.vectors[name], truth, dim=0)
        assert cosine > 0.9, (name, float(cosine))
        assert sum(fitted.counts[name]) == 300
    again = fit_directions(pipe, scorer.probabilities, scorer.attribute_names, samples=300, seed=1, progress=False)
    assert all(torch.equal(again.vectors[n], fitted.vectors[n]) for n in fitted.vectors)


def test_an_attribute_no_sampled_face_has_is_left_out_with_the_reason(pipe: FacePipeline):
    def never(images: torch.Tensor) -> torch.Tensor:
        return torch.zeros(len(images), 1)

    fitted = fit_directions(pipe, never, ["Hat"], samples=40, progress=False)
    assert not fitted.vectors and "in 0 of 40 sampled faces" in fitted.skipped["Hat"]


def test_attributes_from_classifier_writes_fitted_vectors_into_the_bundle(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch, capsys):
    model = make_tiny_model()
    model.encoder = None  # a decoder-only model: fitting needs no encoder
    bundle = save_bundle(model, tmp_path / "bundle")
    scorer = planted_scorer(FacePipeline(load_bundle(bundle)))
    loaded: list[str] = []

    def load(directory: str) -> PlantedScorer:
        loaded.append(directory)
        return scorer

    module = types.ModuleType("facevae.evaluation.classifier")
    module.load = load
    monkeypatch.setitem(sys.modules, "facevae.evaluation.classifier", module)
    monkeypatch.setitem(sys.modules, "facevae.evaluation", types.ModuleType("facevae.evaluation"))
    code = main(["attributes", "--model", str(bundle), "--from-classifier", str(tmp_path / "clf"),
                 "--samples", "100", "--seed", "2"])
    assert code == 0 and loaded == [str(tmp_path / "clf")]
    stored = load_bundle(bundle)
    assert {"Bright_fitted", "Red_fitted", "Smiling", "Eyeglasses"} <= set(stored.attributes)
    assert stored.provenance["fitted"]["samples"] == 100
    assert "fitted 2 directions" in capsys.readouterr().out


def test_sefa_recovers_the_planted_principal_directions_of_the_first_layer():
    model = make_tiny_model()
    decoder = model.decoder
    latent_dim, features = decoder.dense.weight.shape[1], decoder.dense.weight.shape[0]
    generator = torch.Generator().manual_seed(0)
    rotation, _ = torch.linalg.qr(torch.randn(latent_dim, latent_dim, generator=generator, dtype=torch.float64))
    left, _ = torch.linalg.qr(torch.randn(features, latent_dim, generator=generator, dtype=torch.float64))
    strengths = torch.linspace(3.0, 0.5, latent_dim, dtype=torch.float64)  # distinct singular values
    bn_scale = torch.rand(features, generator=generator, dtype=torch.float64) + 0.5
    with torch.no_grad():  # A = diag(bn_scale) W = left diag(strengths) rotation^T
        decoder.dense.weight.copy_((left * strengths / bn_scale[:, None]) @ rotation.T)
        decoder.dense_bn.running_var.fill_(1.0 - decoder.dense_bn.eps)
        decoder.dense_bn.weight.copy_(bn_scale)
    found, shares = discovered.sefa_directions(decoder, 4)
    for k in range(4):  # the planted directions, in order, up to sign
        assert abs(float(found[k].double() @ rotation[:, k])) == pytest.approx(1.0, abs=1e-5)
    assert torch.allclose(shares, strengths[:4] ** 2 / (strengths**2).sum(), atol=1e-6)
    assert torch.allclose(found @ found.T, torch.eye(4), atol=1e-5)  # orthonormal
    again, _ = discovered.sefa_directions(decoder, 4)
    assert torch.equal(found, again)
    largest = found.abs().argmax(1)
    assert (found[torch.arange(4), largest] > 0).all()  # the sign convention


def test_directions_command_draws_names_and_stores(tmp_path: Path, capsys):
    bundle = save_bundle(make_tiny_model(), tmp_path / "bundle")
    out = tmp_path / "grid.png"
    assert main(["directions", "--model", str(bundle), "--count", "3", "--name", "1=Pose", "--out", str(out),
                 "--store"]) == 0
    assert out.stat().st_size > 0
    stored = load_bundle(bundle)
    assert {"discovered_0", "Pose", "discovered_2"} <= set(stored.attributes)
    found, _ = discovered.sefa_directions(stored.decoder, 3)
    assert torch.equal(stored.attributes["Pose"], found[1])
    assert main(["directions", "--model", str(bundle), "--count", "3", "--name", "5=X", "--out", str(out)]) == 2
    assert "only 3 directions" in capsys.readouterr().err
