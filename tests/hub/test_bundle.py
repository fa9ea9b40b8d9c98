"""The bundle: save -> load gives identical tensors; loading checks shapes and attribute sizes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from facevae.hub.bundle import BundleError, EncoderMissingError, is_bundle, load_bundle, save_bundle


def test_save_load_round_trip_is_identical(tiny_bundle: Path, tmp_path: Path) -> None:
    model = load_bundle(tiny_bundle)
    path = save_bundle(model, tmp_path / "bundle")
    loaded = load_bundle(path)
    assert loaded.config == model.config and loaded.preprocessing == model.preprocessing
    for ours, theirs in ((loaded.decoder, model.decoder), (loaded.encoder, model.encoder)):
        state = theirs.state_dict()
        assert all(torch.equal(v, state[k]) for k, v in ours.state_dict().items())
    assert list(loaded.attributes) == list(model.attributes)
    assert all(torch.equal(loaded.attributes[k], v) for k, v in model.attributes.items())
    assert loaded.attribute_counts == model.attribute_counts
    assert loaded.provenance["source"] == model.provenance["source"] and "torch_version" in loaded.provenance
    z = torch.randn(2, model.latent_dim)
    assert torch.equal(loaded.decode(z), model.decode(z))
    resaved = load_bundle(save_bundle(loaded, tmp_path / "again"))
    assert all(torch.equal(v, loaded.decoder.state_dict()[k]) for k, v in resaved.decoder.state_dict().items())


def test_attribute_vectors_of_the_wrong_size_are_refused(tiny_bundle: Path) -> None:
    vectors = load_file(tiny_bundle / "attributes.safetensors")
    vectors["Smiling"] = torch.zeros(7)
    save_file(vectors, tiny_bundle / "attributes.safetensors")
    with pytest.raises(BundleError, match="'Smiling'.*shape \\(7,\\).*latent size is 16"):
        load_bundle(tiny_bundle)


def test_weights_that_do_not_fit_the_config_are_named(tiny_bundle: Path) -> None:
    meta = json.loads((tiny_bundle / "config.json").read_text())
    meta["model"]["latent_dim"] = 32
    (tiny_bundle / "config.json").write_text(json.dumps(meta))
    with pytest.raises(BundleError, match="wrong shapes: dense.weight"):
        load_bundle(tiny_bundle)


def test_a_bundle_without_encoder_says_how_to_reconstruct(tiny_bundle: Path, tmp_path: Path) -> None:
    model = load_bundle(tiny_bundle)
    model.encoder = None
    loaded = load_bundle(save_bundle(model, tmp_path / "b"))
    assert not loaded.has_encoder and not (tmp_path / "b" / "encoder.safetensors").exists()
    with pytest.raises(EncoderMissingError, match="inversion"):
        loaded.encode(torch.rand(1, 3, 32, 32))


def test_not_a_bundle(tmp_path: Path) -> None:
    assert not is_bundle(tmp_path)
    with pytest.raises(BundleError, match="not a facevae bundle"):
        load_bundle(tmp_path)
