"""Export a bundle's networks to ONNX, checked with ONNX Runtime against PyTorch.

    OUT/decoder.onnx       latents (batch x latent_dim) -> images (batch x 3 x H x W, in [0, 1])
    OUT/encoder.onnx       images (batch x 3 x H x W, in [0, 1]) -> mean, log_var (batch x latent_dim)
                           (only when the bundle has an encoder)
    OUT/facevae-onnx.json  model config, preprocessing, provenance and the attribute vectors

Each network is one self-contained file (no external weight data) with a dynamic batch axis.
Needs the `export` extra (onnx, onnxscript, onnxruntime).
"""

from __future__ import annotations

import json
import logging
import warnings
from pathlib import Path

import numpy as np
import torch

from ..atomic import staged_dir
from ..config import to_dict
from ..errors import UserError
from ..model.bundle import FaceModel

OPSET = 18
# Largest accepted difference relative to max(1, largest output): ONNX Runtime may fuse and
# reorder operations, so float32 rounding differs a little; real errors are far larger.
TOLERANCE = 1e-5


class OnnxExportError(UserError):
    """ONNX export impossible (missing extra) or its output differs from PyTorch."""


def _export(module: torch.nn.Module, example: torch.Tensor, path: Path, inputs: list[str], outputs: list[str]) -> None:
    batch = torch.export.Dim("batch", min=1, max=1 << 16)
    chatter = logging.getLogger("torch.onnx")  # "torchvision is not installed" and the like
    level = chatter.level
    chatter.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", FutureWarning)
            program = torch.onnx.export(module, (example,), input_names=inputs, output_names=outputs,
                                        dynamic_shapes=({0: batch},), dynamo=True, opset_version=OPSET,
                                        verbose=False)
    finally:
        chatter.setLevel(level)
    program.save(str(path), external_data=False)


def _relative_diff(path: Path, module: torch.nn.Module, inputs: torch.Tensor) -> float:
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {session.get_inputs()[0].name: inputs.numpy()})
    with torch.inference_mode():
        expected = module(inputs)
    expected = expected if isinstance(expected, tuple) else (expected,)
    return max(float(np.abs(g - e.numpy()).max() / max(1.0, float(e.abs().max()))) for g, e in zip(got, expected))


def export_onnx(model: FaceModel, out: str | Path, verify: bool = True) -> dict[str, float | None]:
    """Write the ONNX files into the folder `out` (atomically); return {file: largest difference
    from PyTorch, relative to max(1, largest output)}, None where not verified.

    verify runs each file with ONNX Runtime at two batch sizes (1 and 5, proving the batch
    axis is dynamic) and raises OnnxExportError if it differs from PyTorch by > TOLERANCE.
    """
    try:
        import onnx  # noqa: F401
        import onnxscript  # noqa: F401
    except ImportError as error:
        raise OnnxExportError(f"ONNX export needs the export extra: pip install 'facevae[export]' ({error})") from None
    config = model.config
    decoder = model.decoder.cpu().eval()
    encoder = model.encoder.cpu().eval() if model.encoder is not None else None
    out = Path(out)
    generator = torch.Generator().manual_seed(0)
    report: dict[str, float | None] = {}
    with staged_dir(out) as tmp:
        latents = torch.randn(2, config.latent_dim, generator=generator)
        _export(decoder, latents, tmp / "decoder.onnx", ["latents"], ["images"])
        report["decoder.onnx"] = None
        side = config.image_size
        if encoder is not None:
            images = torch.rand(2, config.image_channels, side, side, generator=generator)
            _export(encoder, images, tmp / "encoder.onnx", ["images"], ["mean", "log_var"])
            report["encoder.onnx"] = None
        if verify:
            for batch in (1, 5):
                checks = {"decoder.onnx": (decoder, torch.randn(batch, config.latent_dim, generator=generator))}
                if encoder is not None:
                    checks["encoder.onnx"] = (encoder, torch.rand(batch, config.image_channels, side, side,
                                                                  generator=generator))
                for name, (module, inputs) in checks.items():
                    diff = _relative_diff(tmp / name, module, inputs)
                    if not diff <= TOLERANCE:
                        raise OnnxExportError(f"{name} differs from PyTorch by {diff:.2e} (relative, batch {batch}); "
                                             f"nothing was written")
                    report[name] = max(diff, report[name] or 0.0)
        meta = {"format": "facevae-onnx", "model": to_dict(config), "preprocessing": to_dict(model.preprocessing),
                "files": sorted(report), "provenance": model.provenance,
                "attributes": {k: v.detach().cpu().float().tolist() for k, v in model.attributes.items()}}
        (tmp / "facevae-onnx.json").write_text(json.dumps(meta, indent=1), encoding="utf-8")
    return report
