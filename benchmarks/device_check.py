"""The GPU checks of the training issue, as one script for a lent GPU machine (about 5 minutes).

    python benchmarks/device_check.py                   # on a CUDA machine
    python benchmarks/device_check.py --device cpu --quick   # the same steps on a CPU, as a dry run

Runs, on generated CelebA-sized JPEGs, each step as its own process:

1. `facevae train` (original model, bf16, --compile) for 2 epochs: the CUDA data path (the
   split resident in GPU memory), autocast, checkpoints, samples and the bundle;
2. `facevae train --resume` for a third epoch from checkpoints/last.pt;
3. `torchrun --nproc_per_node=1 -m facevae train` on CUDA: the NCCL process group and DDP;
4. an out-of-memory run (celeba256 widened to 512 channels per stage, a batch of 4096: some
   400 GB of activations), which must stop with facevae's message naming the batch size;
5. `benchmarks/train_throughput.py --batch-size 1024 --compile`: the seed-style loop against
   facevae, images per second.

It prints a table of what passed and how long each step took, then the benchmark's own
table. With OUT set (the device tool's output folder) the full log goes to $OUT/device_check.log.

Packages: the device image has torch, numpy, Pillow, safetensors, tqdm and tensorboard;
facevae also needs simplejpeg and h5py. Carry simplejpeg as a wheel (docs/contributing.md)
and run with PYTHONPATH=src (no install needed).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "src"))  # a checkout without an install (the lent GPU machine)

from _machine import machine_line  # noqa: E402 (benchmarks/_machine.py)
from train_throughput import make_jpegs  # noqa: E402


def run_step(name: str, command: list[str], log: list[str], expect_failure: str | None = None,
             timeout: int = 600) -> tuple[str, bool, float, str]:
    """Run one step; (name, passed, seconds, the last line of its output)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO / "src"), os.environ.get("PYTHONPATH")]))}
    started = time.perf_counter()
    try:
        result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=timeout)
        output, code = result.stdout + result.stderr, result.returncode
    except subprocess.TimeoutExpired as error:
        output, code = f"{error.stdout or ''}{error.stderr or ''}\ntimed out after {timeout} s", -1
    seconds = time.perf_counter() - started
    log += [f"$ {' '.join(command)}", output, f"[exit {code}, {seconds:.1f} s]"]
    print(f"{name}: exit {code} in {seconds:.1f} s", flush=True)
    passed = code == 0 if expect_failure is None else (code != 0 and expect_failure in output)
    lines = [line for line in output.strip().splitlines() if line.strip()]
    return name, passed, seconds, (lines[-1][:120] if lines else "")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--quick", action="store_true", help="small sizes (a dry run on a CPU)")
    args = parser.parse_args()
    python, facevae = sys.executable, [sys.executable, "-m", "facevae"]
    images, batch, bench_batch = (96, 16, 32) if args.quick else (4096, 256, 1024)
    log: list[str] = []
    rows = []
    with tempfile.TemporaryDirectory(prefix="facevae-device-") as tmp:
        data, run_dir = Path(tmp) / "faces", Path(tmp) / "run"
        make_jpegs(data, images)
        common = ["--data", str(data), "--device", args.device, "--quiet",
                  "--set", f"train.batch_size={batch}", "--set", "train.checkpoint_every_steps=5"]
        rows.append(run_step("train 2 epochs (--compile)", facevae + ["train", *common, "--out", str(run_dir),
                                                                     "--compile", "--set", "train.epochs=2"], log))
        rows.append(run_step("resume for a 3rd epoch", facevae + ["train", "--out", str(run_dir), "--resume",
                                                                  "--device", args.device, "--quiet",
                                                                  "--set", "train.epochs=3"], log))
        summary = {"samples": len(list((run_dir / "samples").glob("*.png"))),
                   "bundle": (run_dir / "bundle" / "config.json").is_file(),
                   "best.pt": (run_dir / "checkpoints" / "best.pt").is_file()}
        log.append(f"run folder: {json.dumps(summary)}")
        rows.append(("run folder complete", summary["samples"] >= 3 and summary["bundle"] and summary["best.pt"], 0.0,
                     json.dumps(summary)))
        rows.append(run_step("torchrun, 1 process (DDP)", [python, "-m", "torch.distributed.run", "--nproc_per_node=1",
                                                           "-m", "facevae", "train", *common, "--out",
                                                           str(Path(tmp) / "ddp"), "--set", "train.epochs=1"], log))
        if args.device.startswith("cuda"):
            rows.append(run_step("out of memory is explained", facevae + [
                "train", "--data", str(data), "--device", args.device, "--quiet", "--preset",
                "celeba256", "--out", str(Path(tmp) / "oom"), "--set", f"train.batch_size={images}",
                "--set", "model.channels=[512,512,512,512,512,512]"], log,
               expect_failure="Out of GPU memory with a batch of"))
        bench = [python, str(REPO / "benchmarks" / "train_throughput.py"), "--device", args.device,
                 "--batch-size", str(bench_batch), "--compile"] + (["--quick"] if args.quick else [])
        rows.append(run_step("train_throughput.py", bench, log, timeout=900))
    print(f"\n{machine_line()}")
    print("\n| step | passed | seconds | last line |\n|---|---|---:|---|")
    for name, passed, seconds, last in rows:
        print(f"| {name} | {'yes' if passed else 'NO'} | {seconds:.1f} | {last.replace('|', '/')} |")
    benchmark_output = log[-2].strip().splitlines()
    print("\n" + "\n".join(line for line in benchmark_output if line.startswith(("|", "device:", "data:"))))
    if os.environ.get("OUT"):
        Path(os.environ["OUT"], "device_check.log").write_text("\n".join(log), encoding="utf-8")
    return 0 if all(passed for _, passed, _, _ in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
