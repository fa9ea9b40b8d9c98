"""Which device to train on, and at which precision.

Precision "auto" picks bf16 autocast where it makes training faster:
- CUDA GPUs that support bf16 (Ampere and newer);
- CPUs with bf16 instructions (AVX512-BF16, e.g. AMD Zen 4 and Intel Cooper Lake; AMX, Intel
  Sapphire Rapids and newer), where it trains faster than fp32 (docs/benchmarks.md).
Other CPUs emulate bf16 (slower), so "auto" keeps fp32 there; `precision = "bf16"` still
forces it. Apple MPS stays fp32.
"""

from __future__ import annotations

import torch

from ..errors import UserError
from ..runtime import cpu_has_native_bf16


class DeviceError(UserError):
    """A requested device or precision that this machine cannot provide."""


def resolve_device(name: str = "auto") -> torch.device:
    """"auto" -> CUDA, then Apple MPS, then CPU; otherwise the named device, checked."""
    name = name.strip().lower()
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise DeviceError(f"Unknown device '{name}'; use auto, cpu, cuda, cuda:N or mps") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError(f"Device '{name}' was requested but this PyTorch sees no CUDA GPU "
                              f"(torch {torch.__version__}); use --device cpu or install a CUDA build of torch")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise DeviceError(f"Device '{name}' does not exist: this machine has {torch.cuda.device_count()} GPU(s)")
    elif device.type == "mps" and not _mps_available():
        raise DeviceError("Device 'mps' was requested but Apple's Metal backend is not available here; use --device cpu")
    elif device.type not in ("cpu", "cuda", "mps"):
        raise DeviceError(f"Unsupported device '{name}'; use auto, cpu, cuda, cuda:N or mps")
    return device


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def bf16_supported(device: torch.device) -> bool:
    """Whether bf16 autocast runs on this device at all (not whether it is faster)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        try:
            if not torch.ops.mkldnn._is_mkldnn_bf16_supported():
                return False
            a = torch.ones(8, 8, dtype=torch.bfloat16)
            return bool(torch.isfinite(a @ a).all())
        except (AttributeError, RuntimeError):
            return False
    if device.type == "mps":
        try:
            return bool(torch.isfinite(torch.ones(2, 2, dtype=torch.bfloat16, device=device).sum()))
        except (RuntimeError, TypeError):
            return False
    return False


def autocast_dtype(device: torch.device, precision: str) -> torch.dtype | None:
    """The autocast dtype for the requested precision, or None for plain fp32."""
    if precision == "fp32":
        return None
    if precision == "bf16":
        if not bf16_supported(device):
            raise DeviceError(f"train.precision = bf16 is not supported on {device} here; use precision=fp32 or auto")
        return torch.bfloat16
    if precision != "auto":
        raise DeviceError(f"Unknown precision '{precision}'; use auto, fp32 or bf16")
    if device.type == "cuda" and torch.cuda.is_bf16_supported():
        return torch.bfloat16
    if device.type == "cpu" and cpu_has_native_bf16() and bf16_supported(device):
        return torch.bfloat16
    return None


def fused_adam_supported(device: torch.device) -> bool:
    """torch's fused Adam kernel exists for CUDA, CPU (torch >= 2.4) and MPS (torch >= 2.5)."""
    try:
        param = torch.nn.Parameter(torch.zeros(1, device=device))
        param.grad = torch.zeros(1, device=device)
        torch.optim.Adam([param], fused=True).step()
        return True
    except (RuntimeError, TypeError, ValueError):
        return False


def describe(device: torch.device, dtype: torch.dtype | None) -> str:
    """A one-line summary for the start of a run."""
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    elif device.type == "cpu":
        name = f"CPU ({torch.backends.cpu.get_cpu_capability()}, {torch.get_num_threads()} threads)"
    else:
        name = str(device)
    return f"{name}, {'bf16 autocast' if dtype == torch.bfloat16 else 'fp32'}"
