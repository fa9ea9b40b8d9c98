"""The seed's .pth files: synthetic state dicts with the seed's names, checked against a direct
functional computation of the seed's architecture (PyTorch defaults, symmetric padding)."""

from __future__ import annotations

import argparse
import pickle
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from facevae.cli.main import main
from facevae.config import MODEL_PRESETS
from facevae.interop.seed import SeedFileError, import_seed
from facevae.model.bundle import load_bundle
from support.models import plain_decode


def seed_state(image: int = 64, width: int = 128, latent: int = 200, seed: int = 0) -> dict[str, torch.Tensor]:
    """A random `VAE_pt.state_dict()` with the seed's names and PyTorch layouts."""
    g = torch.Generator().manual_seed(seed)
    flat = width * (image // 16) ** 2
    state: dict[str, torch.Tensor] = {}

    def weights(name: str, *shape: int, fan_in: int) -> None:
        state[f"{name}.weight"] = torch.randn(*shape, generator=g) / fan_in**0.5
        state[f"{name}.bias"] = torch.randn(shape[1] if name.split(".")[1].startswith("convtr") else shape[0],
                                            generator=g) * 0.1

    def bn(name: str, n: int) -> None:
        state[f"{name}.weight"] = torch.rand(n, generator=g) + 0.5
        state[f"{name}.bias"] = torch.randn(n, generator=g) * 0.1
        state[f"{name}.running_mean"] = torch.randn(n, generator=g) * 0.1
        state[f"{name}.running_var"] = torch.rand(n, generator=g) + 0.5
        state[f"{name}.num_batches_tracked"] = torch.tensor(100)

    for i in range(1, 5):
        weights(f"enc.conv{i}", width, 3 if i == 1 else width, 3, 3, fan_in=9 * width)
        bn(f"enc.bn{i}", width)
    weights("enc.dense_mean", latent, flat, fan_in=flat)
    weights("enc.dense_log_var", latent, flat, fan_in=flat)
    weights("dec.dense1", flat, latent, fan_in=latent)
    bn("dec.bn_dense", flat)
    for i in range(1, 5):
        weights(f"dec.convtr{i}", width, width, 3, 3, fan_in=9 * width)
        bn(f"dec.bn{i}", width)
    weights("dec.conv1", 3, width, 3, 3, fan_in=9 * width)
    return state


def _bn(x: torch.Tensor, s: dict, name: str) -> torch.Tensor:
    return F.batch_norm(x, s[f"{name}.running_mean"], s[f"{name}.running_var"], s[f"{name}.weight"],
                        s[f"{name}.bias"], training=False, eps=1e-5)


def seed_decode(s: dict[str, torch.Tensor], z: torch.Tensor, width: int) -> torch.Tensor:
    """The seed's Decoder_pt.forward for a batch of more than one, written out."""
    x = F.leaky_relu(_bn(F.linear(z, s["dec.dense1.weight"], s["dec.dense1.bias"]), s, "dec.bn_dense"), 0.01)
    side = int((x.shape[1] // width) ** 0.5)
    x = x.view(-1, width, side, side)  # channels-first reshape
    for i in range(1, 5):
        x = F.conv_transpose2d(x, s[f"dec.convtr{i}.weight"], s[f"dec.convtr{i}.bias"], stride=2, padding=1,
                               output_padding=1)
        x = F.leaky_relu(_bn(x, s, f"dec.bn{i}"), 0.01)
    return torch.sigmoid(F.conv2d(x, s["dec.conv1.weight"], s["dec.conv1.bias"], padding=1))


def seed_encode(s: dict[str, torch.Tensor], images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    x = images
    for i in range(1, 5):
        x = F.conv2d(x, s[f"enc.conv{i}.weight"], s[f"enc.conv{i}.bias"], stride=2, padding=1)
        x = F.leaky_relu(_bn(x, s, f"enc.bn{i}"), 0.01)
    x = x.flatten(1)  # channels-first flatten
    return (F.linear(x, s["enc.dense_mean.weight"], s["enc.dense_mean.bias"]),
            F.linear(x, s["enc.dense_log_var.weight"], s["enc.dense_log_var.bias"]))


def test_vae_pth_matches_the_seed_architecture(tmp_path: Path) -> None:
    state = seed_state()
    torch.save(state, tmp_path / "vae.pth")
    model = import_seed(tmp_path / "vae.pth")
    assert model.config == MODEL_PRESETS["seed"] and model.has_encoder
    z = torch.randn(4, 200, generator=torch.Generator().manual_seed(1))
    assert (plain_decode(model, z) - seed_decode(state, z, 128)).abs().max() < 1e-5
    images = torch.rand(3, 3, 64, 64, generator=torch.Generator().manual_seed(2))
    mean, log_var = model.encode(images)
    ref_mean, ref_log_var = seed_encode(state, images)
    assert (mean - ref_mean).abs().max() < 1e-5 and (log_var - ref_log_var).abs().max() < 1e-5
    assert (mean < 0).any()  # no ReLU on the heads, unlike the original


def test_single_face_is_decoded_like_in_a_batch_not_like_the_seed_quirk(tmp_path: Path) -> None:
    """The seed skipped bn_dense for a batch of one; facevae decodes one face as in any batch."""
    state = seed_state(image=32, width=8, latent=16)
    torch.save(state, tmp_path / "vae.pth")
    model = import_seed(tmp_path / "vae.pth")
    z = torch.randn(3, 16, generator=torch.Generator().manual_seed(3))
    assert torch.allclose(plain_decode(model, z[:1]), plain_decode(model, z)[:1], atol=1e-6)
    assert (plain_decode(model, z[:1]) - seed_decode(state, z[:1], 8)).abs().max() < 1e-5


def test_separate_files_through_the_cli(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    state = seed_state(image=32, width=8, latent=16)
    torch.save({k.removeprefix("enc."): v for k, v in state.items() if k.startswith("enc.")}, tmp_path / "encoder.pth")
    torch.save({k.removeprefix("dec."): v for k, v in state.items() if k.startswith("dec.")}, tmp_path / "decoder.pth")
    (tmp_path / "attributes.json").write_text('{"Smiling": [' + ", ".join(["0.5"] * 16) + "]}")
    assert main(["import-seed", "--encoder", str(tmp_path / "encoder.pth"), "--decoder", str(tmp_path / "decoder.pth"),
                 "--attributes", str(tmp_path / "attributes.json"), "--out", str(tmp_path / "bundle")]) == 0
    assert "seed architecture, 32px, latent 16" in capsys.readouterr().out
    model = load_bundle(tmp_path / "bundle")
    assert model.config.padding == "symmetric" and model.config.channels == (8, 8, 8, 8)
    assert torch.equal(model.attributes["Smiling"], torch.full((16,), 0.5))
    z = torch.randn(5, 16)
    assert (plain_decode(model, z) - seed_decode(state, z, 8)).abs().max() < 1e-5


def test_decoder_only_has_no_encoder(tmp_path: Path) -> None:
    state = seed_state(image=32, width=8, latent=16)
    torch.save({k: v for k, v in state.items() if k.startswith("dec.")}, tmp_path / "decoder.pth")
    model = import_seed(decoder=tmp_path / "decoder.pth")
    assert not model.has_encoder and model.config.image_size == 32


class NotAStateDict:
    value = 1


@pytest.mark.parametrize("content, message", [
    (lambda p: p.write_bytes(pickle.dumps(argparse.Namespace(a=1))), "not a plain PyTorch state dict"),
    (lambda p: torch.save(NotAStateDict(), p), "Unsupported global"),
    (lambda p: torch.save([torch.zeros(2)], p), "not a state dict"),
    (lambda p: p.write_bytes(b"\x00garbage" * 10), "not a plain PyTorch state dict"),
    (lambda p: torch.save({"fc.weight": torch.zeros(2, 2)}, p), "no 'dec.*' tensors"),
])
def test_files_that_are_not_seed_state_dicts(tmp_path: Path, content, message: str) -> None:
    content(tmp_path / "vae.pth")
    with pytest.raises(SeedFileError, match=message):
        import_seed(tmp_path / "vae.pth")


def test_wrong_shapes_are_named(tmp_path: Path) -> None:
    state = seed_state(image=32, width=8, latent=16)
    state["dec.bn2.weight"] = torch.ones(5)
    torch.save(state, tmp_path / "vae.pth")
    with pytest.raises(SeedFileError, match=r"wrong shapes stages\.1\.bn\.weight \(5,\)"):
        import_seed(tmp_path / "vae.pth")


def test_cli_reports_a_bad_file_without_traceback(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    (tmp_path / "vae.pth").write_text("not a checkpoint")
    assert main(["import-seed", str(tmp_path / "vae.pth"), "--out", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error:") and "Traceback" not in err and not (tmp_path / "b").exists()
