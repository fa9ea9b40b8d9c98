"""Importing the original project's .keras files. The oracle is Keras 3 itself (PyTorch
backend) running stand-ins of the original classes on the same files; bad files need no Keras."""

from __future__ import annotations

import json
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch

from facevae.cli.main import main
from facevae.config import ModelConfig
from facevae.errors import UserError
from facevae.interop.keras import import_keras, read_attribute_vectors
from facevae.interop.keras_export import export_keras
from facevae.interop.keras_weights import KerasFileError
from facevae.model.bundle import load_bundle
from support.models import SMALL_ORIGINAL, plain_decode, small_model

pytestmark = [
    pytest.mark.filterwarnings("ignore:__array__ implementation:DeprecationWarning"),
]


def keras_oracle():
    """The Keras stand-ins (imported lazily: Keras takes seconds to import)."""
    return pytest.importorskip("facevae.testing.keras_oracle", reason="Keras 3 (the export extra) is not installed")


def to_numpy(tensor) -> np.ndarray:
    import keras

    return keras.ops.convert_to_numpy(tensor)


# --- against Keras ------------------------------------------------------------------------

@pytest.mark.slow
def test_real_decoder_matches_keras(pretrained_bundle: Path, shared_pretrained_dir: Path) -> None:
    """The installed celeba64-original decodes like Keras running the original decoder.keras."""
    oracle = keras_oracle()
    keras_decoder = oracle.Decoder(shape_before_flattening=(4, 4, 128), num_channels=128)
    keras_decoder(np.zeros((1, 200), np.float32))  # build, then load as the original does
    keras_decoder.load_weights(str(shared_pretrained_dir / "decoder.keras"))
    latents = torch.randn(8, 200, generator=torch.Generator().manual_seed(0))
    expected = to_numpy(keras_decoder(latents.numpy())).transpose(0, 3, 1, 2)  # NHWC -> NCHW
    ours = plain_decode(load_bundle(pretrained_bundle), latents).numpy()
    assert np.abs(ours - expected).max() < 1e-5


@pytest.mark.slow
def test_generated_encoder_and_decoder_files_match_keras(tmp_path: Path) -> None:
    """Files written by Keras itself (random weights) import exactly."""
    oracle = keras_oracle()
    encoder = oracle.Encoder(embedding_size=16, num_channels=8)
    encoder(np.zeros((1, 32, 32, 3), np.float32))
    oracle.randomize(encoder, seed=1)
    encoder.save(tmp_path / "encoder.keras")
    decoder = oracle.Decoder(shape_before_flattening=(2, 2, 8), num_channels=8)
    decoder(np.zeros((1, 16), np.float32))
    oracle.randomize(decoder, seed=2)
    decoder.save(tmp_path / "decoder.keras")

    model = import_keras(tmp_path / "decoder.keras", tmp_path / "encoder.keras")
    assert model.config == SMALL_ORIGINAL and model.has_encoder
    images = torch.rand(6, 3, 32, 32, generator=torch.Generator().manual_seed(3))
    mean, log_var, _ = encoder(images.permute(0, 2, 3, 1).numpy())
    ours_mean, ours_log_var = model.encode(images)
    assert np.abs(ours_mean.numpy() - to_numpy(mean)).max() < 1e-5
    assert np.abs(ours_log_var.numpy() - to_numpy(log_var)).max() < 1e-5
    assert (ours_mean > 0).any()  # the comparison is not between two all-zero ReLU outputs
    latents = torch.randn(6, 16, generator=torch.Generator().manual_seed(4))
    expected = to_numpy(decoder(latents.numpy())).transpose(0, 3, 1, 2)
    assert np.abs(plain_decode(model, latents).numpy() - expected).max() < 1e-5


@pytest.mark.slow
def test_whole_vae_file_matches_keras(tmp_path: Path) -> None:
    oracle = keras_oracle()
    vae = oracle.VAE(input_img_size=32, embedding_size=16, num_channels=8)
    vae(np.zeros((1, 32, 32, 3), np.float32))
    oracle.randomize(vae, seed=5)
    vae.save(tmp_path / "vae.keras")
    model = import_keras(tmp_path / "vae.keras")
    assert model.config == SMALL_ORIGINAL and model.has_encoder
    images = torch.rand(4, 3, 32, 32, generator=torch.Generator().manual_seed(6))
    mean, log_var, _ = vae.enc(images.permute(0, 2, 3, 1).numpy())
    assert np.abs(model.encode(images)[0].numpy() - to_numpy(mean)).max() < 1e-5
    latents = torch.randn(4, 16, generator=torch.Generator().manual_seed(7))
    expected = to_numpy(vae.dec(latents.numpy())).transpose(0, 3, 1, 2)
    assert np.abs(plain_decode(model, latents).numpy() - expected).max() < 1e-5


# --- the command and the attribute vectors -------------------------------------------------

def test_import_keras_command_with_the_real_files(shared_pretrained_dir: Path, tmp_path: Path,
                                                  capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "bundle"
    assert main(["import-keras", str(shared_pretrained_dir / "decoder.keras"), "--attributes",
                 str(shared_pretrained_dir / "attributes_embedings.json"), "--out", str(out)]) == 0
    assert "40 attribute vectors; 64px, latent 200" in capsys.readouterr().out
    model = load_bundle(out)
    raw = json.loads((shared_pretrained_dir / "attributes_embedings.json").read_text())
    assert list(model.attributes) == list(raw)
    assert torch.equal(model.attributes["Smiling"], torch.tensor(raw["Smiling"], dtype=torch.float32))


def test_import_keras_command_decoder_plus_encoder(tmp_path: Path) -> None:
    """Decoder and encoder as separate files (written by the exporter, checked by Keras elsewhere)."""
    source = small_model()
    export_keras(source, tmp_path / "orig")
    weights = tmp_path / "orig" / "model_weights"
    assert main(["import-keras", str(weights / "decoder.keras"), "--encoder", str(weights / "encoder.keras"),
                 "--out", str(tmp_path / "bundle")]) == 0
    model = load_bundle(tmp_path / "bundle")
    for ours, theirs in ((model.encoder, source.encoder), (model.decoder, source.decoder)):
        assert all(torch.equal(v, theirs.state_dict()[k]) for k, v in ours.state_dict().items()
                   if not k.endswith("num_batches_tracked"))


def test_attribute_vectors_of_the_wrong_size_are_refused(tmp_path: Path) -> None:
    (tmp_path / "a.json").write_text(json.dumps({"Smiling": [0.1] * 200, "Bald": [0.2] * 199}))
    with pytest.raises(KerasFileError, match="'Bald' has 199 numbers but the model's latent size is 200"):
        read_attribute_vectors(tmp_path / "a.json", 200)
    (tmp_path / "b.json").write_text("{not json")
    with pytest.raises(KerasFileError, match="not JSON"):
        read_attribute_vectors(tmp_path / "b.json", 200)
    (tmp_path / "c.json").write_text(json.dumps({"Smiling": ["x"] * 200}))
    with pytest.raises(KerasFileError, match="not a list of numbers"):
        read_attribute_vectors(tmp_path / "c.json", 200)


def test_wrong_size_attributes_through_the_command(shared_pretrained_dir: Path, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "a.json").write_text(json.dumps({"Smiling": [0.1] * 16}))
    assert main(["import-keras", str(shared_pretrained_dir / "decoder.keras"), "--attributes",
                 str(tmp_path / "a.json"), "--out", str(tmp_path / "bundle")]) == 2
    assert "latent size is 200" in capsys.readouterr().err and not (tmp_path / "bundle").exists()


# --- bad files ----------------------------------------------------------------------------

def test_truncated_archive(shared_pretrained_dir: Path, tmp_path: Path) -> None:
    data = (shared_pretrained_dir / "decoder.keras").read_bytes()
    (tmp_path / "decoder.keras").write_bytes(data[: len(data) // 2])
    with pytest.raises(KerasFileError, match="not a readable .keras file.*interrupted"):
        import_keras(tmp_path / "decoder.keras")


def test_not_a_keras_file(tmp_path: Path) -> None:
    (tmp_path / "photo.keras").write_bytes(b"\x89PNG\r\n\x1a\n" + bytes(100))
    with pytest.raises(KerasFileError, match="not a readable .keras file"):
        import_keras(tmp_path / "photo.keras")
    with zipfile.ZipFile(tmp_path / "other.keras", "w") as archive:
        archive.writestr("readme.txt", "hello")
    with pytest.raises(KerasFileError, match="not a Keras 3 archive.*readme.txt"):
        import_keras(tmp_path / "other.keras")
    with pytest.raises(KerasFileError, match="no such file"):
        import_keras(tmp_path / "missing.keras")


def _rewrite_weights(source: Path, target: Path, edit) -> None:
    """Copy a .keras archive, changing its weights with edit(h5 file)."""
    import io

    import h5py

    with zipfile.ZipFile(source) as archive:
        parts = {name: archive.read(name) for name in archive.namelist()}
    buffer = io.BytesIO(parts["model.weights.h5"])
    with h5py.File(buffer, "r+") as h5:
        edit(h5)
    parts["model.weights.h5"] = buffer.getvalue()
    with zipfile.ZipFile(target, "w") as archive:
        for name, data in parts.items():
            archive.writestr(name, data)


def test_wrong_shapes_and_missing_layers(tmp_path: Path) -> None:
    export_keras(small_model(), tmp_path / "orig")
    decoder = tmp_path / "orig" / "model_weights" / "decoder.keras"

    def shrink_bn(h5) -> None:
        for i in range(4):
            del h5[f"bn2/vars/{i}"]
            h5.create_dataset(f"bn2/vars/{i}", data=np.ones(5, np.float32))

    _rewrite_weights(decoder, tmp_path / "bad_shape.keras", shrink_bn)
    with pytest.raises(KerasFileError, match=r"stages\.1\.bn\.weight: file \(5,\), expected \(8,\)"):
        import_keras(tmp_path / "bad_shape.keras")

    _rewrite_weights(decoder, tmp_path / "no_conv1.keras", lambda h5: h5.__delitem__("conv1"))
    with pytest.raises(KerasFileError, match="conv1"):
        import_keras(tmp_path / "no_conv1.keras")


def test_encoder_given_as_the_model_and_mismatched_pairs(tmp_path: Path) -> None:
    export_keras(small_model(), tmp_path / "a")
    other = ModelConfig(image_size=32, channels=(4, 4, 4, 4), latent_dim=16, head_activation="relu")
    export_keras(small_model(other), tmp_path / "b")
    with pytest.raises(KerasFileError, match="is an encoder; a model needs a decoder"):
        import_keras(tmp_path / "a" / "model_weights" / "encoder.keras")
    with pytest.raises(KerasFileError, match="does not match the decoder"):
        import_keras(tmp_path / "a" / "model_weights" / "decoder.keras",
                     tmp_path / "b" / "model_weights" / "encoder.keras")
    with pytest.raises(KerasFileError, match="not an encoder"):
        import_keras(tmp_path / "a" / "model_weights" / "decoder.keras",
                     tmp_path / "a" / "model_weights" / "decoder.keras")


def _declare_member_size(archive_path: Path, member: str, size: int) -> None:
    """Rewrite the uncompressed size a zip declares for `member` (local and central headers),
    as a zip bomb does, without writing that many bytes."""
    import struct

    data = bytearray(archive_path.read_bytes())
    name = member.encode()
    for signature, size_offset, name_offset in ((b"PK\x03\x04", 22, 30), (b"PK\x01\x02", 24, 46)):
        start = data.find(signature)
        while start != -1:
            if data[start + name_offset:start + name_offset + len(name)] == name:
                struct.pack_into("<I", data, start + size_offset, size)
            start = data.find(signature, start + 4)
    archive_path.write_bytes(bytes(data))


def test_a_zip_bomb_is_refused_from_its_declared_size_before_reading(tmp_path: Path, monkeypatch) -> None:
    export_keras(small_model(), tmp_path / "orig")
    bomb = tmp_path / "bomb.keras"
    bomb.write_bytes((tmp_path / "orig" / "model_weights" / "decoder.keras").read_bytes())
    _declare_member_size(bomb, "model.weights.h5", 3 * 2**30)  # the probe's 3 GiB model.weights.h5
    with zipfile.ZipFile(bomb) as archive:
        assert archive.getinfo("model.weights.h5").file_size == 3 * 2**30
    real_read = zipfile.ZipFile.read

    def read(self, name, *args):
        assert name != "model.weights.h5", "the weights were read before their size was checked"
        return real_read(self, name, *args)

    monkeypatch.setattr(zipfile.ZipFile, "read", read)
    with pytest.raises(KerasFileError, match=r"model.weights.h5 unpacks to 3,072 MiB, more than any facevae model"):
        import_keras(bomb)


def test_weights_that_declare_a_huge_model_are_refused_before_it_is_built(tmp_path: Path) -> None:
    export_keras(small_model(), tmp_path / "orig")

    def huge_latent(h5) -> None:  # HDF5 stores no data for an unwritten chunked array: the file stays small
        width = h5["dense1/vars/0"].shape[1]
        del h5["dense1/vars/0"]
        h5.create_dataset("dense1/vars/0", shape=(50_000_000, width), dtype="f4", chunks=(1024, width))

    _rewrite_weights(tmp_path / "orig" / "model_weights" / "decoder.keras", tmp_path / "huge.keras", huge_latent)
    assert (tmp_path / "huge.keras").stat().st_size < 2**20
    with pytest.raises(UserError, match=r"huge.keras describes a model of [\d,]+ parameters"):
        import_keras(tmp_path / "huge.keras")


def test_a_config_json_that_is_not_json_is_a_keras_file_error(tmp_path: Path) -> None:
    with zipfile.ZipFile(tmp_path / "bad.keras", "w") as archive:
        archive.writestr("config.json", b"\xff\xfe not json")
        archive.writestr("model.weights.h5", b"")
    with pytest.raises(KerasFileError, match="not a readable .keras file"):
        import_keras(tmp_path / "bad.keras")
