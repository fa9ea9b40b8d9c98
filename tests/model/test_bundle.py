"""The bundle: save -> load gives identical tensors; loading checks shapes and attribute sizes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file, save_file

from facevae.model.bundle import BundleError, EncoderMissingError, is_bundle, load_bundle, save_bundle
from support.models import plain_decode


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
    assert torch.equal(plain_decode(loaded, z), plain_decode(model, z))
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


def _edit_config(bundle: Path, edit) -> None:
    meta = json.loads((bundle / "config.json").read_text())
    (bundle / "config.json").write_text(json.dumps(edit(meta)))


def _refuse_real_modules(monkeypatch: pytest.MonkeyPatch) -> None:
    """Building Decoder or Encoder anywhere but on the meta device fails the test: it would
    allocate the weights the config asks for."""
    import facevae.model.bundle as bundle_module

    for name in ("Decoder", "Encoder"):
        real = getattr(bundle_module, name)

        def build(config, real=real):
            if torch.empty(0).device.type != "meta":
                raise AssertionError(f"{real.__name__} allocated for latent_dim {config.latent_dim}")
            return real(config)

        monkeypatch.setattr(bundle_module, name, build)


@pytest.mark.parametrize("model", [{"latent_dim": 1_000_000}, {"channels": [20000] * 4}])
def test_a_huge_config_is_refused_before_anything_is_allocated(tiny_bundle: Path, monkeypatch, model) -> None:
    _edit_config(tiny_bundle, lambda meta: {**meta, "model": {**meta["model"], **model}})
    _refuse_real_modules(monkeypatch)
    with pytest.raises(BundleError, match=r"model of [\d,]+ parameters .*more than the .*damaged or not meant"):
        load_bundle(tiny_bundle)


def test_shapes_are_checked_from_the_header_before_any_tensor_is_read(tiny_bundle: Path, monkeypatch) -> None:
    import facevae.model.bundle as bundle_module

    _edit_config(tiny_bundle, lambda meta: {**meta, "model": {**meta["model"], "latent_dim": 32}})
    monkeypatch.setattr(bundle_module, "load_file", lambda *a, **k: pytest.fail("tensors read before the check"))
    with pytest.raises(BundleError, match="wrong shapes: dense.weight: file \\(256, 16\\), config \\(256, 32\\)"):
        load_bundle(tiny_bundle)


def test_a_weights_file_whose_data_is_cut_short_is_named(tiny_bundle: Path) -> None:
    file = tiny_bundle / "decoder.safetensors"
    file.write_bytes(file.read_bytes()[:-100])
    with pytest.raises(BundleError, match="decoder.safetensors is (damaged|not a readable).*copy it again"):
        load_bundle(tiny_bundle)


MALFORMED_CONFIGS = {
    "format_version as text": (lambda m: {**m, "format_version": "2"}, "'format_version' must be a JSON whole number"),
    "model as a list": (lambda m: {**m, "model": [1, 2]}, "'model' must be a JSON object, not list"),
    "attributes as a list": (lambda m: {**m, "attributes": ["Smiling"]}, "'attributes' must be a JSON object"),
    "attribute names not a list": (lambda m: {**m, "attributes": {"names": "Smiling"}}, "'names' must be a JSON list"),
    "provenance as text": (lambda m: {**m, "provenance": "me"}, "'provenance' must be a JSON object"),
    "negative crop_size": (lambda m: {**m, "preprocessing": {"image_size": 32, "crop": "center", "crop_size": -100}},
                           "crop_size must be a positive whole number"),
    "unknown crop": (lambda m: {**m, "preprocessing": {**m["preprocessing"], "crop": "fill"}}, "crop must be one of"),
}


@pytest.mark.parametrize("case", MALFORMED_CONFIGS)
def test_a_malformed_config_json_is_a_bundle_error_naming_the_section(tiny_bundle: Path, case: str) -> None:
    edit, message = MALFORMED_CONFIGS[case]
    _edit_config(tiny_bundle, edit)
    with pytest.raises(BundleError, match=message):
        load_bundle(tiny_bundle)


def test_config_json_that_is_a_list_is_not_a_bundle(tiny_bundle: Path) -> None:
    from facevae.interop.loading import load

    (tiny_bundle / "config.json").write_text("[1, 2, 3]")
    assert not is_bundle(tiny_bundle)
    with pytest.raises(BundleError, match="not a facevae bundle"):
        load_bundle(tiny_bundle)
    with pytest.raises(BundleError, match="config.json is not a facevae bundle's config .*restore the file"):
        load(tiny_bundle)


def test_garbage_attribute_vectors_are_a_bundle_error(tiny_bundle: Path) -> None:
    (tiny_bundle / "attributes.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00not json at all!")
    with pytest.raises(BundleError, match="attributes.safetensors is not a readable safetensors file.*copy it again"):
        load_bundle(tiny_bundle)


def test_an_old_bundle_without_a_preprocessing_section_still_loads(tiny_bundle: Path) -> None:
    _edit_config(tiny_bundle, lambda meta: {k: v for k, v in meta.items() if k != "preprocessing"})
    model = load_bundle(tiny_bundle)
    assert (model.preprocessing.image_size, model.preprocessing.crop) == (32, "squash")
