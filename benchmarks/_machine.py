"""One line describing the machine a benchmark ran on, printed with every table.

Speed figures depend on the CPU's vector instructions (AVX2 vs AVX-512, bf16 and AMX
support), on how many threads ran and on what else the machine was doing, so every
benchmark prints this line: the CPU's model name, its instruction-set flags that matter
to oneDNN and MLAS, the ISA PyTorch dispatches to, any ONEDNN_MAX_CPU_ISA or ATEN_CPU_CAPABILITY cap, the core
count and the load average.
"""

from __future__ import annotations

import os
import platform
import re
import sys
from pathlib import Path

FLAG_PATTERN = re.compile(r"^(avx2|fma|f16c|avx_vnni|avx512\w*|amx\w*)$")


def cpu_flags() -> list[str]:
    """The vector-instruction flags of /proc/cpuinfo that matter here, sorted; [] off Linux."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return []
    flags = next((line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")), [])
    return sorted({flag for flag in flags if FLAG_PATTERN.match(flag)})


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def machine_line() -> str:
    """'CPU: <model>; flags: ...; torch ISA: ...; N CPUs; load average x' (torch ISA only when
    torch is already imported, so torch-free benchmarks stay torch-free)."""
    parts = [f"CPU: {cpu_model()}", f"flags: {' '.join(cpu_flags()) or 'unknown'}"]
    torch = sys.modules.get("torch")
    if torch is not None:
        parts.append(f"torch ISA: {torch.backends.cpu.get_cpu_capability()}, {torch.get_num_threads()} torch threads")
    for cap in ("ONEDNN_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY"):  # an emulated smaller CPU (e.g. AVX2 only)
        if os.environ.get(cap):
            parts.append(f"{cap}={os.environ[cap]}")
    parts.append(f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.1f}")
    return "; ".join(parts)
