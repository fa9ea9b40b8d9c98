"""Exporting bundles as the original project's .keras files: the layout matches the original's
own decoder.keras, round trips are exact, and Keras itself loads the files the original's way."""

from __future__ import annotations

import dataclasses
import io
import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from facevae.cli.main import main
from facevae.interop.keras import import_keras
from facevae.interop.keras_export import KerasExportError, export_keras
from facevae.model.bundle import load_bundle, save_bundle
from support.models import SMALL_ORIGINAL, plain_decode, small_model

pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning")


def h5_contents(path: Path) -> dict[str, np.ndarray | None]:
    """Every group (None) and dataset (its array) in a .keras file's weights."""
    import h5py

    with zipfile.ZipFile(path) as archive:
        data = archive.read("model.weights.h5")
    items: dict[str, np.ndarray | None] = {}
    with h5py.File(io.BytesIO(data), "r") as h5:
        h5.visititems(lambda name, obj: items.__setitem__(name, obj[()] if hasattr(obj, "shape") else None))
    return items


def same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    other = b.state_dict()
    return all(torch.equal(v, other[k]) for k, v in a.state_dict().items() if not k.endswith("num_batches_tracked"))


def test_export_then_import_is_exact(tmp_path: Path) -> None:
    source = small_model()
    out = export_keras(source, tmp_path / "original-layout")
    files = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
    assert files == ["attributes_embedings/attributes_embedings.json", "config/config.json",
                     "model_weights/decoder.keras", "model_weights/encoder.keras", "model_weights/vae.keras"]
    config = json.loads((out / "config" / "config.json").read_text())
    assert (config["embedding_size"], config["num_channels"], config["input_img_size"]) == (16, 8, 32)
    back = import_keras(out / "model_weights" / "vae.keras",
                        attributes_file=out / "attributes_embedings" / "attributes_embedings.json")
    assert back.config == SMALL_ORIGINAL
    assert same_weights(back.decoder, source.decoder) and same_weights(back.encoder, source.encoder)
    assert all(torch.equal(back.attributes[k], v) for k, v in source.attributes.items())


def test_real_decoder_exports_to_the_original_file_layout(pretrained_bundle: Path, shared_pretrained_dir: Path,
                                                          tmp_path: Path) -> None:
    """Exporting the imported original reproduces its decoder.keras: same groups, same arrays."""
    out = export_keras(load_bundle(pretrained_bundle), tmp_path / "out")
    ours, theirs = out / "model_weights" / "decoder.keras", shared_pretrained_dir / "decoder.keras"
    mine, original = h5_contents(ours), h5_contents(theirs)
    assert set(mine) == set(original)
    for name, array in original.items():
        assert (array is None and mine[name] is None) or np.array_equal(mine[name], array), name
    with zipfile.ZipFile(ours) as a, zipfile.ZipFile(theirs) as b:
        assert sorted(a.namelist()) == sorted(b.namelist())
        ours_config, their_config = json.loads(a.read("config.json")), json.loads(b.read("config.json"))
    for key in ("module", "class_name", "registered_name"):
        assert ours_config[key] == their_config[key]
    assert not (out / "model_weights" / "vae.keras").exists()  # no encoder in ../shared
    assert len(json.loads((out / "attributes_embedings" / "attributes_embedings.json").read_text())) == 40


@pytest.mark.slow
def test_keras_loads_the_export_the_way_the_original_does(tmp_path: Path) -> None:
    """VAE(...) from config.json, built, then load_weights("vae.keras"), as the original's gui.py;
    and keras.models.load_model on the separate decoder and encoder files."""
    oracle = pytest.importorskip("facevae.testing.keras_oracle", reason="Keras 3 (the export extra) is not installed")
    import keras

    source = small_model()
    out = export_keras(source, tmp_path / "exported")
    config = json.loads((out / "config" / "config.json").read_text())
    vae = oracle.VAE(input_img_size=config["input_img_size"], embedding_size=config["embedding_size"],
                     num_channels=config["num_channels"], beta=config["beta"])
    vae(np.zeros((1, 32, 32, 3), np.float32))
    vae.load_weights(str(out / "model_weights" / "vae.keras"))
    latents = torch.randn(5, 16, generator=torch.Generator().manual_seed(0))
    images = torch.rand(5, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    expected_images = plain_decode(source, latents).numpy().transpose(0, 2, 3, 1)
    expected_mean, expected_log_var = (t.numpy() for t in source.encode(images))
    nhwc = images.permute(0, 2, 3, 1).numpy()

    def close(a, b) -> bool:
        return np.abs(keras.ops.convert_to_numpy(a) - b).max() < 1e-5

    mean, log_var, _ = vae.enc(nhwc)
    assert close(vae.dec(latents.numpy()), expected_images)
    assert close(mean, expected_mean) and close(log_var, expected_log_var)
    decoder = keras.models.load_model(out / "model_weights" / "decoder.keras",
                                      custom_objects={"Decoder": oracle.Decoder})
    assert close(decoder(latents.numpy()), expected_images)
    encoder = keras.models.load_model(out / "model_weights" / "encoder.keras",
                                      custom_objects={"Encoder": oracle.Encoder, "Sampler": oracle.Sampler})
    assert close(encoder(nhwc)[0], expected_mean)


def test_decoder_only_bundle_exports_decoder_and_says_so(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    bundle = save_bundle(small_model(encoder=False), tmp_path / "b")
    assert main(["export", str(bundle), "--format", "keras"]) == 0
    assert "no encoder.keras or vae.keras" in capsys.readouterr().out
    out = tmp_path / "b-keras"
    assert (out / "model_weights" / "decoder.keras").is_file() and not (out / "model_weights" / "vae.keras").exists()


def test_architectures_the_original_cannot_express_are_refused(tiny_bundle: Path, tmp_path: Path,
                                                               capsys: pytest.CaptureFixture) -> None:
    assert main(["export", str(tiny_bundle), "--format", "keras", "--out", str(tmp_path / "k")]) == 2
    err = capsys.readouterr().err
    assert "padding='symmetric'" in err and "--format onnx" in err and not (tmp_path / "k").exists()
    no_relu_heads = dataclasses.replace(SMALL_ORIGINAL, head_activation="none")
    with pytest.raises(KerasExportError, match="head_activation"):
        export_keras(small_model(no_relu_heads), tmp_path / "k")
    export_keras(small_model(no_relu_heads, encoder=False), tmp_path / "k")  # a decoder alone has no heads
