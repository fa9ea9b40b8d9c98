"""The decode function behind the server's batches: PyTorch (the pipeline) or ONNX Runtime.

Both map chunk x D float32 codes to chunk x H x W x 3 uint8 faces through
facevae.imaging.to_uint8. The ONNX backend runs the float32 decoder exported by
facevae.interop.onnx (BUNDLE-onnx/decoder.onnx beside the bundle, as `facevae export`
writes it; `facevae serve --backend onnx` makes it once). Which is faster depends on the CPU
(benchmarks/serve_load.py compares them; docs/benchmarks.md has the figures). Pixels differ
between backends and precisions by float rounding (at most a level or so of 255); within one
backend the same seed always gives the same bytes.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from ... import imaging
from ...errors import UserError
from ...inference.pipeline import FacePipeline
from .batching import DecodeFn

Backend = Literal["torch", "onnx"]
BACKENDS: tuple[str, ...] = ("torch", "onnx")


def make_decoder(pipeline: FacePipeline, backend: Backend = "torch", threads: int | None = None) -> DecodeFn:
    """The decode function for `backend`; threads: ONNX Runtime's intra-op threads (None: its default)."""
    if backend == "torch":
        device = pipeline.model.device  # the batcher hands over CPU tensors
        return lambda latents: imaging.to_uint8(pipeline.decode_tensor(latents.to(device)))
    if backend == "onnx":
        return _onnx_decoder(pipeline, threads)
    raise UserError(f"unknown backend '{backend}'; choose one of {', '.join(BACKENDS)}")


def onnx_export_dir(bundle: Path) -> Path:
    """Where `facevae export BUNDLE --format onnx` writes by default: BUNDLE-onnx beside it."""
    return bundle.with_name(f"{bundle.name}-onnx")


def fresh_onnx_decoder(bundle: Path | None) -> Path | None:
    """BUNDLE-onnx/decoder.onnx if it exists and is newer than the bundle's decoder weights."""
    if bundle is None:
        return None
    onnx_file = onnx_export_dir(bundle) / "decoder.onnx"
    weights = bundle / "decoder.safetensors"
    if onnx_file.is_file() and weights.is_file() and onnx_file.stat().st_mtime >= weights.stat().st_mtime:
        return onnx_file
    return None


def ensure_onnx_export(bundle: Path) -> Path | None:
    """Export the bundle to BUNDLE-onnx (checked against PyTorch) unless a fresh export is
    there; None if that folder cannot be written (each worker then exports for itself)."""
    if (found := fresh_onnx_decoder(bundle)) is not None:
        return found
    from ...interop.onnx import export_onnx
    from ...model.bundle import load_bundle

    try:
        export_onnx(load_bundle(bundle), onnx_export_dir(bundle), verify=True)
    except PermissionError:
        return None
    return onnx_export_dir(bundle) / "decoder.onnx"


def _onnx_decoder(pipeline: FacePipeline, threads: int | None) -> DecodeFn:
    if pipeline.model.device.type != "cpu":
        raise UserError("the ONNX backend runs on the CPU; use --backend torch with a GPU model")
    try:
        import onnxruntime
    except ImportError:
        raise UserError("the ONNX backend needs onnxruntime: pip install 'facevae[export]'") from None
    onnx_file = fresh_onnx_decoder(pipeline.model.path)
    if onnx_file is not None:
        model_bytes = onnx_file.read_bytes()
    else:  # no export beside the bundle: make one for this process (the exporter takes a while)
        from ...interop.onnx import export_onnx

        with tempfile.TemporaryDirectory(prefix="facevae-serve-onnx-") as folder:
            export_onnx(pipeline.model, Path(folder) / "onnx", verify=False)
            model_bytes = (Path(folder) / "onnx" / "decoder.onnx").read_bytes()
    options = onnxruntime.SessionOptions()
    options.inter_op_num_threads = 1
    if threads:
        options.intra_op_num_threads = threads
    session = onnxruntime.InferenceSession(model_bytes, options, providers=["CPUExecutionProvider"])
    input_name = session.get_inputs()[0].name

    def decode(latents: torch.Tensor) -> np.ndarray:
        images = session.run(None, {input_name: latents.detach().cpu().numpy().astype(np.float32, copy=False)})[0]
        return imaging.to_uint8(images)

    return decode
