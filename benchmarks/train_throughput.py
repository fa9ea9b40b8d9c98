"""Training throughput: the seed's loop against facevae's trainer, same run, same data.

    python benchmarks/train_throughput.py                       # CPU: original model, batch 128
    python benchmarks/train_throughput.py --quick               # under a minute on a laptop CPU
    python benchmarks/train_throughput.py --device cuda --batch-size 1024 --compile

Both loops train the same model (`--preset`, default the original architecture) on the
same N generated 178x218 face-like JPEGs (CelebA's size and quality, the generator
benchmarks/prepare_throughput.py uses):

- seed-style: what the seed's PyTorch port does: the seed's DataLoader (benchmarks/seed_style.py,
  the same one prepare_throughput.py times: Pillow full decode + resize of every JPEG every
  epoch, float32 NCHW batches, pin_memory on a GPU) with `--seed-workers` worker processes
  (default: every core, at most 8), fp32, default Adam, and `.item()` on three loss terms
  every step (a host-device sync each step);
- facevae: `facevae.training.trainer.Trainer` on the prepared uint8 cache of those JPEGs
  (made by `facevae.data.prepare.prepare`, not timed): batches normalised on the device,
  the split resident on the GPU, bf16 autocast where it is faster, channels_last, fused
  Adam, optional torch.compile, and no sync inside a step.

Each loop runs `--warmup` steps untimed, then `--steps` timed steps (data loading
included) split into `--rounds` interleaved rounds; the table gives the median images per
second over the rounds (robust to another process's burst) and the ratio.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from _machine import machine_line  # benchmarks/_machine.py (the script's folder is on sys.path)
from facevae.config import MODEL_PRESETS, DataConfig, Preprocessing, RunConfig, TrainConfig
from facevae.data.cache import ImageCache
from facevae.data.prepare import prepare
from facevae.model.losses import kl_divergence
from facevae.model.vae import FaceVAE
from facevae.runtime import pick_runtime, resolve_device
from facevae.testing.celeba import face_image, jpeg_bytes
from facevae.training.trainer import Trainer
from seed_style import default_workers, seed_loader

WIDTH, HEIGHT = 178, 218  # CelebA's aligned images


def make_jpegs(folder: Path, count: int) -> list[Path]:
    """`count` 178x218 face-like JPEGs (quality 90), about CelebA's file size."""
    image_dir = folder / "img_align_celeba"
    image_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        path = image_dir / f"{i + 1:06d}.jpg"
        path.write_bytes(jpeg_bytes(face_image(np.random.default_rng(i), WIDTH, HEIGHT), quality=90))
        paths.append(path)
    return paths


class SeedStyleLoop:
    """The seed's training loop, `steps` steps at a time (the DataLoader goes on across calls)."""

    def __init__(self, paths: list[Path], args: argparse.Namespace, device: torch.device) -> None:
        config = MODEL_PRESETS[args.preset]
        torch.manual_seed(0)
        self.model = FaceVAE(config).to(device)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=5e-4)
        self.loader = seed_loader(paths, config.image_size, args.batch_size, args.seed_workers,
                                  pin_memory=device.type == "cuda", drop_last=True, persistent=True)
        self.batches = iter(self.loader)
        self.device, self.recon_weight = device, args.recon_weight
        self.total_loss = self.recon_total = self.kl_total = 0.0

    def run(self, steps: int) -> int:
        """Train `steps` steps; returns the number of images."""
        images_done = 0
        for _ in range(steps):
            try:
                images = next(self.batches)
            except StopIteration:  # a new epoch: every JPEG is decoded again
                self.batches = iter(self.loader)
                images = next(self.batches)
            images = images.to(self.device)
            recon, mean, log_var = self.model(images)
            recon_loss = self.recon_weight * F.mse_loss(recon, images)
            kl = kl_divergence(mean, log_var)
            loss = recon_loss + kl
            self.optimizer.zero_grad()
            loss.backward()
            self.optimizer.step()
            self.total_loss += loss.item()  # the seed's per-step bookkeeping: three syncs
            self.recon_total += recon_loss.item()
            self.kl_total += kl.item()
            images_done += len(images)
        return images_done


class FacevaeLoop:
    """facevae's Trainer on the cache, `steps` optimiser steps at a time."""

    def __init__(self, cache: ImageCache, args: argparse.Namespace, device: torch.device, compile: bool) -> None:
        train = TrainConfig(batch_size=args.batch_size, recon_weight=args.recon_weight, device=str(device),
                            compile=compile, checkpoint_every_steps=0, log_every_steps=10**9,
                            precision=args.precision, num_workers=0)
        config = RunConfig(model=MODEL_PRESETS[args.preset], data=DataConfig(), train=train)
        self.trainer = Trainer(config, cache, None, device=device, progress=False)
        self.batch_size = args.batch_size
        self.resident = self.trainer.train_batches.resident is not None  # whole split in GPU memory

    def run(self, steps: int) -> int:
        remaining = steps
        while remaining > 0:
            before = self.trainer.progress.step
            self.trainer.train_epoch(max_steps=remaining)  # may end an epoch first and go on in the next
            remaining -= self.trainer.progress.step - before
        return steps * self.batch_size


def measure(loops: dict[str, object], args: argparse.Namespace, device: torch.device) -> dict[str, float]:
    """Warm every loop up, then time them in interleaved rounds, so that a busy machine slows
    them alike; returns each loop's median images per second over the rounds."""
    for name, loop in loops.items():
        started = time.perf_counter()
        loop.run(args.warmup)  # type: ignore[attr-defined]
        _sync(device)
        print(f"  warm-up {name}: {time.perf_counter() - started:.1f} s", flush=True)
    rates: dict[str, list[float]] = {name: [] for name in loops}
    rounds = max(1, min(args.rounds, args.steps))
    for round_index in range(rounds):
        steps = args.steps // rounds + (1 if round_index < args.steps % rounds else 0)
        for name, loop in loops.items():
            _sync(device)
            started = time.perf_counter()
            images = loop.run(steps)  # type: ignore[attr-defined]
            _sync(device)
            rates[name].append(images / (time.perf_counter() - started))
        print(f"  round {round_index + 1}/{rounds}: " + ", ".join(
            f"{name} {rates[name][-1]:,.1f} img/s" for name in loops), flush=True)
    return {name: float(np.median(values)) for name, values in rates.items()}


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--batch-size", type=int, default=None, help="default 128 (--quick: 32)")
    parser.add_argument("--preset", default="original", choices=sorted(MODEL_PRESETS))
    parser.add_argument("--steps", type=int, default=None, help="timed steps per loop (default 12; GPU 60; --quick 2)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved timing rounds (default 3)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed steps first (default 2; GPU 10)")
    parser.add_argument("--images", type=int, default=None, help="JPEGs to generate (default: about 2 epochs' "
                                                                 "worth, at most 8192)")
    parser.add_argument("--seed-workers", type=int, default=default_workers(),
                        help="DataLoader workers of the seed-style loop (default: every core, at most 8)")
    parser.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16"), help="facevae's precision")
    parser.add_argument("--compile", action="store_true",
                        help="also time facevae with torch.compile (first compilation: about a minute)")
    parser.add_argument("--recon-weight", type=float, default=2000.0)
    parser.add_argument("--skip-seed", action="store_true", help="time facevae's loop only")
    parser.add_argument("--quick", action="store_true", help="batch 32, 2 steps: a check that runs in about a minute")
    return parser.parse_args()


def print_table(rates: dict[str, float], loops: dict[str, object], args: argparse.Namespace,
                dtype: torch.dtype | None) -> None:
    precision = "bf16" if dtype == torch.bfloat16 else "fp32"
    data_path = f"uint8 cache{', GPU-resident' if getattr(loops['facevae'], 'resident', False) else ''}"
    rows = {"seed-style": (f"the seed's DataLoader, {args.seed_workers} workers decoding JPEGs", "fp32, NCHW"),
            "facevae": (data_path, f"{precision}, channels_last"),
            "facevae --compile": (data_path, f"{precision}, channels_last, torch.compile")}
    base = rates.get("seed-style")
    print()
    print(machine_line())
    print("| loop | data path | precision, layout | images/s (median of rounds) | vs seed-style |")
    print("|---|---|---|---:|---:|")
    for name, rate in rates.items():
        ratio = f"{rate / base:.2f}x" if base else "-"
        print(f"| {name} | {rows[name][0]} | {rows[name][1]} | {rate:,.1f} | {ratio} |")


def main() -> int:
    args = parse_args()
    device = resolve_device(args.device)
    gpu = device.type == "cuda"
    args.batch_size = args.batch_size or (32 if args.quick else 128)
    args.steps = args.steps or (2 if args.quick else 60 if gpu else 12)
    args.warmup = args.warmup if args.warmup is not None else (1 if args.quick else 10 if gpu else 2)
    if args.quick:
        args.rounds = 1
    count = args.images or min(8192, (args.warmup + args.steps) * args.batch_size // 2)
    # Whole batches only: a smaller last batch would make --compile compile again inside a timed round.
    count = -(-max(count, 2 * args.batch_size) // args.batch_size) * args.batch_size

    with tempfile.TemporaryDirectory(prefix="facevae-bench-") as tmp:
        started = time.perf_counter()
        paths = make_jpegs(Path(tmp) / "data", count)
        size = MODEL_PRESETS[args.preset].image_size
        cache = ImageCache.open(prepare(Path(tmp) / "data", out=Path(tmp) / "cache", preprocessing=Preprocessing(size),
                                        val_fraction=0.0, test_fraction=0.0, progress=False))
        runtime = pick_runtime(device, args.precision)
        dtype = runtime.autocast_dtype
        print(f"device: {runtime.describe()}; torch {torch.__version__}; {os.cpu_count()} CPU cores; "
              f"load average {os.getloadavg()[0]:.2f}", flush=True)
        print(f"data: {count:,} JPEGs {WIDTH}x{HEIGHT} -> {size}x{size} cache (made in "
              f"{time.perf_counter() - started:.1f} s, not timed); model preset '{args.preset}', batch "
              f"{args.batch_size}, {args.warmup} warm-up + {args.steps} timed steps each", flush=True)
        loops: dict[str, object] = {}
        if not args.skip_seed:
            loops["seed-style"] = SeedStyleLoop(paths, args, device)
        loops["facevae"] = FacevaeLoop(cache, args, device, compile=False)
        if args.compile:
            loops["facevae --compile"] = FacevaeLoop(cache, args, device, compile=True)
        rates = measure(loops, args, device)
    print_table(rates, loops, args, dtype)
    print(f"load average {os.getloadavg()[0]:.2f} after")
    return 0


if __name__ == "__main__":
    sys.exit(main())
