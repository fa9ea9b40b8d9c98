"""facevae.runtime: the one choice of device, precision and threads, with the machine's answers
(CUDA, MPS, the CPU's bf16 flags, the load average) replaced by each test's."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from facevae import runtime
from facevae.cli.main import build_parser, main
from facevae.errors import UserError
from facevae.runtime import DeviceError, pick_runtime, pick_threads


@pytest.fixture
def cpu_only(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """A machine with no GPU, whose CPU has no bf16 instructions unless a test says so."""
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    monkeypatch.setattr(runtime, "_mps_available", lambda: False)
    monkeypatch.setattr(runtime, "cpu_has_native_bf16", lambda: False)
    return monkeypatch


def test_auto_is_the_cpu_without_a_gpu_and_fp32_without_bf16_instructions(cpu_only: pytest.MonkeyPatch) -> None:
    chosen = pick_runtime()
    assert chosen.device == torch.device("cpu") and chosen.precision == "fp32"
    assert chosen.dtype == torch.float32 and chosen.autocast_dtype is None
    assert "no bfloat16 instructions" in chosen.reason


def test_auto_is_bf16_on_a_cpu_with_bf16_instructions(cpu_only: pytest.MonkeyPatch) -> None:
    cpu_only.setattr(runtime, "cpu_has_native_bf16", lambda: True)
    chosen = pick_runtime("auto", "auto")
    assert chosen.precision == "bf16" and chosen.autocast_dtype == torch.bfloat16
    assert pick_runtime("cpu", "fp32").precision == "fp32"  # asked for: kept


def test_auto_prefers_a_cuda_gpu_then_mps(cpu_only: pytest.MonkeyPatch) -> None:
    cpu_only.setattr(runtime, "_mps_available", lambda: True)
    assert runtime.resolve_device("auto") == torch.device("mps")
    assert pick_runtime("auto").precision == "fp32"  # MPS stays float32
    cpu_only.setattr(torch.cuda, "is_available", lambda: True)
    cpu_only.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: True)
    chosen = pick_runtime()
    assert chosen.device == torch.device("cuda") and chosen.precision == "bf16"
    cpu_only.setattr(torch.cuda, "is_bf16_supported", lambda *args, **kwargs: False)
    assert pick_runtime().precision == "fp32"


def test_forced_bf16_runs_where_bf16_works_at_all(cpu_only: pytest.MonkeyPatch) -> None:
    # this CPU may lack bf16 instructions, but its bf16 convolutions run (emulated)
    assert pick_runtime("cpu", "bf16").precision == "bf16"
    cpu_only.setattr(runtime, "bf16_runs", lambda device: False)
    with pytest.raises(DeviceError, match="bf16 does not run on cpu.*fp32 or auto"):
        pick_runtime("cpu", "bf16")


@pytest.mark.parametrize("device, precision, message", [
    ("cuda", "auto", "sees no CUDA GPU.*`device='cpu'`"),  # the CLI says `--device cpu` (facevae.errors)
    ("cuda:3", "auto", "sees no CUDA GPU"),
    ("mps", "auto", "Metal backend is not available"),
    ("tpu", "auto", "device 'tpu'"),
    ("cpu", "fp16", "Unknown precision 'fp16'; use auto, fp32, bf16"),
])
def test_what_this_machine_cannot_do_is_a_user_error(cpu_only: pytest.MonkeyPatch, device: str, precision: str,
                                                     message: str) -> None:
    with pytest.raises(DeviceError, match=message):
        pick_runtime(device, precision)


def test_cpu_bf16_is_native_only_with_avx512_bf16_or_amx(monkeypatch: pytest.MonkeyPatch) -> None:
    check = runtime.cpu_has_native_bf16.__wrapped__  # the uncached function
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: True)
    monkeypatch.setattr(torch._C._cpu, "_init_amx", lambda: False)
    monkeypatch.setattr(runtime, "read_cpu_flags", lambda: "flags\t: fpu avx2 avx512f avx512_bf16 avx512_vnni")
    assert check()
    monkeypatch.setattr(runtime, "read_cpu_flags", lambda: "flags\t: fpu avx2 avx512f")
    assert not check()
    monkeypatch.setattr(torch._C._cpu, "_init_amx", lambda: True)  # AMX: native whatever the flags say
    assert check()
    monkeypatch.setattr(torch.ops.mkldnn, "_is_mkldnn_bf16_supported", lambda: False)  # no oneDNN bf16 kernels
    assert not check()


def test_describe_names_the_device_threads_precision_and_reason(cpu_only: pytest.MonkeyPatch) -> None:
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        line = pick_runtime("cpu").describe()
    finally:
        torch.set_num_threads(threads)
    assert line.startswith("CPU (") and "1 thread)" in line and "fp32: the CPU has no bfloat16" in line


@pytest.mark.parametrize("cores, load, expected", [
    (2, 0.4, 2),  # idle: every core
    (2, 1.3, 1),  # another job on one core: one thread
    (2, 6.0, 1),  # overloaded: still one
    (16, 3.9, 13),
])
def test_threads_are_the_cores_other_work_leaves_free(monkeypatch: pytest.MonkeyPatch, cores: int, load: float,
                                                      expected: int) -> None:
    monkeypatch.setattr(runtime, "usable_cores", lambda: cores)
    monkeypatch.setattr(runtime, "load_average", lambda: load)
    assert pick_threads() == expected
    assert pick_threads(3) == 3  # asked for: kept


def test_threads_below_one_are_a_user_error() -> None:
    with pytest.raises(UserError, match="--threads must be at least 1"):
        pick_threads(0)


# --- the commands use it ----------------------------------------------------------------

@pytest.mark.parametrize("command", ["generate", "decode", "arithmetic", "morph", "reconstruct", "edit", "serve",
                                     "bundle", "train"])
def test_every_command_defaults_to_the_auto_device(command: str) -> None:
    from facevae.config import TrainConfig

    commands = next(action for action in build_parser()._actions if getattr(action, "choices", None)).choices
    default = commands[command].get_default("device")
    if command == "train":  # no --device: the config's train.device
        assert default is None
        default = TrainConfig().device
    assert default == "auto"


def test_a_synthesis_command_says_which_device_it_used(tiny_bundle: Path, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    threads = torch.get_num_threads()
    try:
        assert main(["generate", "--model", str(tiny_bundle), "-n", "2", "--threads", "1",
                     "--out", str(tmp_path / "faces.png")]) == 0
    finally:
        torch.set_num_threads(threads)
    err = capsys.readouterr().err
    assert "device: CPU (" in err and "1 thread)" in err


def test_the_decode_batch_depends_on_the_device():
    from facevae.runtime import ACCELERATOR_DECODE_BATCH, CPU_DECODE_BATCH, Runtime

    assert Runtime(torch.device("cpu"), "fp32", "").decode_batch == CPU_DECODE_BATCH == 8
    for device in ("cuda", "cuda:1", "mps"):
        assert Runtime(torch.device(device), "fp32", "").decode_batch == ACCELERATOR_DECODE_BATCH
    assert ACCELERATOR_DECODE_BATCH >= 64  # the server's largest request reaches the decoder as one call
