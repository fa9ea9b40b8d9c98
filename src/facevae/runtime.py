"""What the CPU can do natively, for choosing a precision."""

from __future__ import annotations

import functools
from pathlib import Path

import torch


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
    try:  # Linux reports the instruction-set flags; other systems: AMX only, checked above
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags
