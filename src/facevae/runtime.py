"""Where and how torch computes: one choice of device, precision and threads for every command.

    runtime = pick_runtime("auto", "auto")   # Runtime(device, precision, reason)
    runtime.device, runtime.dtype            # torch.device("cuda"), torch.bfloat16
    runtime.describe()                       # "NVIDIA ..., bf16: the GPU has bfloat16 units"

Training, the inference pipeline, the server and the CLI all call pick_runtime, so "auto"
means the same everywhere:
- device "auto": a CUDA GPU, else Apple's MPS, else the CPU;
- precision "auto": bfloat16 where the hardware has bfloat16 arithmetic (CUDA GPUs that support
  it; CPUs with AVX512-BF16 or AMX), float32 elsewhere, where bfloat16 is emulated and slower.
  "bf16" forces bfloat16 wherever it runs at all; "fp32" never uses it.
Training uses the precision for autocast, the pipeline for its fast decoder's weights.

pick_threads chooses torch's CPU threads from the cores this process may use that other
processes are not already busy on (affinity minus load average), unless a number is given.
"""

from __future__ import annotations

import functools
import math
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from .errors import UserError

DEVICES = "auto, cpu, cuda, cuda:N or mps"
PRECISIONS = ("auto", "fp32", "bf16")
# Faces per decoder call. On a CPU small chunks keep the 64 x 64 x 128 feature maps in the
# caches; an accelerator takes a whole request (or the server's batch) in one call.
CPU_DECODE_BATCH = 8
ACCELERATOR_DECODE_BATCH = 1024


class DeviceError(UserError):
    """A requested device or precision that this machine cannot provide."""


@dataclass(frozen=True)
class Runtime:
    device: torch.device
    precision: str  # "bf16" or "fp32"
    reason: str  # why this precision, in words, for the start-of-run line

    @property
    def dtype(self) -> torch.dtype:
        return torch.bfloat16 if self.precision == "bf16" else torch.float32

    @property
    def autocast_dtype(self) -> torch.dtype | None:
        """The dtype for torch.autocast, or None for plain float32."""
        return torch.bfloat16 if self.precision == "bf16" else None

    @property
    def decode_batch(self) -> int:
        """Faces per decoder call on this device."""
        return CPU_DECODE_BATCH if self.device.type == "cpu" else ACCELERATOR_DECODE_BATCH

    def describe(self) -> str:
        """One line for the user: the device, the threads on a CPU, the precision and why."""
        if self.device.type == "cuda":
            name = torch.cuda.get_device_name(self.device)
        elif self.device.type == "cpu":
            threads = torch.get_num_threads()
            name = (f"CPU ({torch.backends.cpu.get_cpu_capability()}, {threads} thread"
                    f"{'s' if threads != 1 else ''})")
        else:
            name = str(self.device)
        return f"{name}, {self.precision}: {self.reason}"


def pick_runtime(device: str | torch.device = "auto", precision: str = "auto") -> Runtime:
    """The device and precision to compute with; raises DeviceError for what is not here."""
    chosen = resolve_device(device)
    if precision not in PRECISIONS:
        raise DeviceError(f"Unknown precision '{precision}'; use {', '.join(PRECISIONS)}")
    if precision == "fp32":
        return Runtime(chosen, "fp32", "as requested")
    if precision == "bf16":
        if not bf16_runs(chosen):
            raise DeviceError(f"precision bf16 does not run on {chosen} here; use precision fp32 or auto")
        return Runtime(chosen, "bf16", "as requested")
    if chosen.type == "cuda":
        if torch.cuda.is_bf16_supported():
            return Runtime(chosen, "bf16", "the GPU has bfloat16 arithmetic")
        return Runtime(chosen, "fp32", "the GPU has no bfloat16 arithmetic")
    if chosen.type == "cpu":
        if cpu_has_native_bf16() and bf16_runs(chosen):
            return Runtime(chosen, "bf16", "the CPU has bfloat16 instructions")
        return Runtime(chosen, "fp32", "the CPU has no bfloat16 instructions (emulated bfloat16 is slower)")
    return Runtime(chosen, "fp32", f"float32 on {chosen.type}")


def resolve_device(name: str | torch.device = "auto") -> torch.device:
    """"auto" -> CUDA, then Apple MPS, then CPU; otherwise the named device, checked."""
    if isinstance(name, torch.device):
        name = str(name)
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
        raise DeviceError(f"Unknown device '{name}'; use {DEVICES}") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError(f"Device '{name}' was requested but this PyTorch sees no CUDA GPU "
                              f"(torch {torch.__version__}); use {{option}} or install a CUDA build of torch",
                              option="device", value="cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise DeviceError(f"Device '{name}' does not exist: this machine has {torch.cuda.device_count()} GPU(s)")
    elif device.type == "mps" and not _mps_available():
        raise DeviceError("Device 'mps' was requested but Apple's Metal backend is not available here; "
                          "use {option}", option="device", value="cpu")
    elif device.type not in ("cpu", "cuda", "mps"):
        raise DeviceError(f"Unsupported device '{name}'; use {DEVICES}")
    return device


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def bf16_runs(device: torch.device) -> bool:
    """Whether bfloat16 convolutions run on this device at all (not whether they are faster)."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    return _bf16_conv_runs(device.type)


@functools.cache
def _bf16_conv_runs(device_type: str) -> bool:
    try:
        conv = torch.nn.Conv2d(2, 2, 3).to(device_type, torch.bfloat16)
        return bool(torch.isfinite(conv(torch.ones(1, 2, 4, 4, dtype=torch.bfloat16, device=device_type))).all())
    except (RuntimeError, TypeError):
        return False


def read_cpu_flags() -> str:
    """The instruction-set flags Linux reports ('' elsewhere)."""
    try:
        return Path("/proc/cpuinfo").read_text()
    except OSError:
        return ""


@functools.cache
def cpu_has_native_bf16() -> bool:
    """True on CPUs with bfloat16 instructions (AVX512-BF16 or AMX), where oneDNN's bf16
    kernels beat fp32. Elsewhere bf16 is emulated and slower, so "auto" keeps fp32."""
    try:
        if not torch.ops.mkldnn._is_mkldnn_bf16_supported():
            return False
        if torch._C._cpu._init_amx():  # private but stable since torch 2.2
            return True
    except (AttributeError, RuntimeError):
        return False
    flags = read_cpu_flags()  # other systems: AMX only, checked above
    return "avx512_bf16" in flags or "amx_bf16" in flags


# --- threads ----------------------------------------------------------------------------

def usable_cores() -> int:
    """The cores this process may run on (its CPU affinity, e.g. a container's limit)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def load_average() -> float:
    """Runnable processes over the last minute (0 where the system does not say)."""
    try:
        return os.getloadavg()[0]
    except (AttributeError, OSError):
        return 0.0


def pick_threads(requested: int | None = None) -> int:
    """`requested` if given, else the usable cores that are not already busy: on a 2-core
    machine running another job, one thread, so two threads do not wait on each other."""
    if requested is not None:
        if requested < 1:
            raise UserError(f"--threads must be at least 1, not {requested}")
        return requested
    cores = usable_cores()
    busy = math.floor(load_average())  # whole cores taken by other work
    return max(1, min(cores, cores - busy))


def set_threads(requested: int | None = None) -> int:
    """torch.set_num_threads(pick_threads(requested)); returns the count."""
    threads = pick_threads(requested)
    torch.set_num_threads(threads)
    return threads


def fused_adam_supported(device: torch.device) -> bool:
    """Whether torch's fused Adam kernel runs on this device (CUDA; CPU and MPS in newer torch)."""
    try:
        param = torch.nn.Parameter(torch.zeros(1, device=device))
        param.grad = torch.zeros(1, device=device)
        torch.optim.Adam([param], fused=True).step()
        return True
    except (RuntimeError, TypeError, ValueError):
        return False
