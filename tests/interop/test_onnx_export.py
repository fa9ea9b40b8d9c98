"""ONNX export: one self-contained file per network, a dynamic batch axis, and outputs that
ONNX Runtime computes like PyTorch (the exporter checks; these tests check again, independently)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from facevae.cli.main import main
from facevae.interop.onnx import export_onnx
from facevae.model.bundle import load_bundle, save_bundle
from support.models import plain_decode, small_model

onnxruntime = pytest.importorskip("onnxruntime", reason="the export extra (onnx, onnxruntime) is not installed")

pytestmark = [pytest.mark.slow, pytest.mark.filterwarnings("ignore::FutureWarning")]


def run(path: Path, inputs: np.ndarray) -> list[np.ndarray]:
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: inputs})


def test_encoder_and_decoder_match_pytorch_at_any_batch_size(tmp_path: Path) -> None:
    model = small_model()
    report = export_onnx(model, tmp_path / "onnx")
    assert set(report) == {"decoder.onnx", "encoder.onnx"}  # the outputs are checked below, by running them
    out = tmp_path / "onnx"
    assert sorted(p.name for p in out.iterdir()) == ["decoder.onnx", "encoder.onnx", "facevae-onnx.json"]
    session = onnxruntime.InferenceSession(str(out / "decoder.onnx"), providers=["CPUExecutionProvider"])
    assert isinstance(session.get_inputs()[0].shape[0], str)  # a named, dynamic batch axis
    for batch in (1, 3, 9):
        latents = torch.randn(batch, 16, generator=torch.Generator().manual_seed(batch))
        (images,) = run(out / "decoder.onnx", latents.numpy())
        assert images.shape == (batch, 3, 32, 32)
        np.testing.assert_allclose(images, plain_decode(model, latents).numpy(), rtol=1e-5, atol=1e-5)
        photos = torch.rand(batch, 3, 32, 32, generator=torch.Generator().manual_seed(batch))
        mean, log_var = run(out / "encoder.onnx", photos.numpy())
        ref_mean, ref_log_var = model.encode(photos)
        np.testing.assert_allclose(mean, ref_mean.numpy(), rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(log_var, ref_log_var.numpy(), rtol=1e-5, atol=1e-5)
    meta = json.loads((out / "facevae-onnx.json").read_text())
    assert meta["model"]["latent_dim"] == 16 and len(meta["attributes"]["Smiling"]) == 16


def test_export_command_on_the_real_decoder(pretrained_bundle: Path, tmp_path: Path,
                                            capsys: pytest.CaptureFixture) -> None:
    """The original's TF-style padding (pad, crop) survives the export."""
    assert main(["export", str(pretrained_bundle), "--format", "onnx", "--out", str(tmp_path / "onnx")]) == 0
    assert "decoder.onnx (ONNX Runtime vs PyTorch: largest difference" in capsys.readouterr().out
    assert not (tmp_path / "onnx" / "encoder.onnx").exists()
    latents = torch.randn(4, 200, generator=torch.Generator().manual_seed(0))
    (images,) = run(tmp_path / "onnx" / "decoder.onnx", latents.numpy())
    assert np.abs(images - plain_decode(load_bundle(pretrained_bundle), latents).numpy()).max() < 1e-5


def test_symmetric_padding_models_export_too(tiny_bundle: Path, tmp_path: Path) -> None:
    """Graded by running the files here, not by the exporter's own report."""
    model = load_bundle(tiny_bundle)
    assert model.config.padding == "symmetric"
    export_onnx(model, tmp_path / "onnx", verify=False)
    latents = torch.randn(6, model.latent_dim, generator=torch.Generator().manual_seed(1))
    (images,) = run(tmp_path / "onnx" / "decoder.onnx", latents.numpy())
    with torch.inference_mode():
        expected = model.decoder.eval()(latents).numpy()
    np.testing.assert_allclose(images, expected, rtol=1e-5, atol=1e-5)
    if model.encoder is not None:
        photos = torch.rand(6, 3, model.config.image_size, model.config.image_size,
                            generator=torch.Generator().manual_seed(2))
        with torch.inference_mode():
            expected_mean, expected_log_var = model.encoder.eval()(photos)
        mean, log_var = run(tmp_path / "onnx" / "encoder.onnx", photos.numpy())
        np.testing.assert_allclose(mean, expected_mean.numpy(), rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(log_var, expected_log_var.numpy(), rtol=1e-5, atol=1e-5)


def test_failed_export_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from facevae.interop import onnx as onnx_export

    monkeypatch.setattr(onnx_export, "TOLERANCE", -1.0)  # every comparison now fails
    bundle = save_bundle(small_model(encoder=False), tmp_path / "b")
    with pytest.raises(onnx_export.OnnxExportError, match="differs from PyTorch"):
        export_onnx(load_bundle(bundle), tmp_path / "onnx")
    assert [p.name for p in tmp_path.iterdir()] == ["b"]
