"""Torch CPU threads for a photo edit, on an idle CPU and on one that another job keeps busy.

    python benchmarks/threads.py            # 5 interleaved rounds
    python benchmarks/threads.py --quick    # 2 rounds of 30 steps

The workload is what `facevae edit` spends its time on with a decoder-only model: 100 Adam
refinement steps of one latent code through the original 64x64 decoder (weights random: the
arithmetic is the same as the pretrained model's). It runs with 1 thread, with every usable
core, and with facevae.runtime.pick_threads' choice (the default of the synthesis commands:
usable cores minus the whole cores the 1-minute load average says are busy), each condition
in the same rounds, interleaved. Condition "as found" is the machine as it is (its load average
is printed: idle only where nothing else runs); "+1 spinner" adds one process spinning on a
core beside it (and waits for the load average to show it). The table gives the median
seconds per edit.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import platform
import statistics
import time

import torch

from facevae.config import ModelConfig
from facevae.inference.pipeline import FacePipeline
from facevae.model.bundle import FaceModel
from facevae.model.vae import Decoder
from facevae.runtime import load_average, pick_threads, read_cpu_flags, usable_cores


def spin() -> None:
    while True:
        pass


def cpu_line() -> str:
    flags = [flag for flag in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if f" {flag}" in read_cpu_flags()]
    return (f"{platform.processor() or platform.machine()}, {usable_cores()} usable cores, flags: "
            f"{' '.join(flags) or 'none of avx2/avx512'}; torch {torch.__version__}")


def one_edit(pipe: FacePipeline, steps: int) -> float:
    started = time.perf_counter()
    pipe.encode(torch.rand(1, 3, 64, 64), refine_steps=steps)
    return time.perf_counter() - started


def measure(pipe: FacePipeline, steps: int, rounds: int, thread_counts: dict[str, int]) -> dict[str, float]:
    times: dict[str, list[float]] = {name: [] for name in thread_counts}
    for _ in range(rounds):
        for name, threads in thread_counts.items():
            torch.set_num_threads(threads)
            times[name].append(one_edit(pipe, steps))
    return {name: statistics.median(values) for name, values in times.items()}


def wait_for_load(minimum: float, limit_s: float = 90.0) -> float:
    """The 1-minute load average moves slowly: wait until it shows the spinning process."""
    deadline = time.monotonic() + limit_s
    while load_average() < minimum and time.monotonic() < deadline:
        time.sleep(2)
    return load_average()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=100, help="refinement steps per edit (facevae's default: 100)")
    parser.add_argument("--quick", action="store_true", help="2 rounds of 30 steps")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.steps = 2, 30
    torch.manual_seed(0)
    model = FaceModel(ModelConfig(), Decoder(ModelConfig()).eval(), None)
    pipe = FacePipeline(model, precision="fp32")
    cores = usable_cores()
    print(f"machine: {cpu_line()}", flush=True)
    one_edit(pipe, 5)  # warm-up: kernel selection

    rows = []
    for condition in ("as found", "+1 spinner"):
        spinner = None
        if condition == "+1 spinner":
            spinner = multiprocessing.Process(target=spin, daemon=True)
            spinner.start()
            wait_for_load(load_average() + 0.7)
        load = load_average()
        chosen = pick_threads()
        counts = {"1 thread": 1, f"{cores} threads (all cores)": cores, f"auto ({chosen})": chosen}
        try:
            medians = measure(pipe, args.steps, args.rounds, counts)
        finally:
            if spinner is not None:
                spinner.terminate()
                spinner.join()
        rows.append((condition, load, medians))

    print()
    print(f"| machine | load average at start | threads | seconds per edit ({args.steps} steps, median of "
          f"{args.rounds}) | vs 1 thread |")
    print("|---|---:|---|---:|---:|")
    for condition, load, medians in rows:
        base = medians["1 thread"]
        for name, seconds in medians.items():
            print(f"| {condition} | {load:.2f} | {name} | {seconds:.2f} | {base / seconds:.2f}x |")
    print(f"\n(os.cpu_count() = {os.cpu_count()})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
