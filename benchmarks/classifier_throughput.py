"""Attribute-classifier throughput on this machine, against the VAE it judges, same run.

    python benchmarks/classifier_throughput.py                  # 64x64, 40 attributes, batch 128
    python benchmarks/classifier_throughput.py --quick          # a few seconds

Rows (all on the same generated 64x64 batch, CelebA's 40 labels):
- baseline: one training step of the original FaceVAE (fp32 forward + backward + Adam, the
  loss of `facevae train`), the model the classifier is meant to judge;
- classifier training steps (`facevae.evaluation.classifier_training.train_step`) in fp32 and,
  where the CPU computes bf16 natively, under bf16 autocast (what precision=auto picks);
- classifier scoring (`AttributeClassifier.probabilities`, fp32).

Each row runs `--warmup` untimed steps, then `--rounds` interleaved rounds of `--steps`
steps; the table gives the median images/s and the minutes one CelebA training epoch
(162,770 images) would take at that rate (data loading from the uint8 cache not included).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable

import torch

from _machine import machine_line
from facevae.config import MODEL_PRESETS
from facevae.data.splits import OFFICIAL_COUNTS
from facevae.evaluation.classifier_training import train_step
from facevae.model.classifier import AttributeClassifier, ClassifierConfig
from facevae.model.losses import kl_divergence
from facevae.model.vae import FaceVAE
from facevae.runtime import cpu_has_native_bf16
from facevae.testing.celeba import CELEBA_ATTRIBUTES


def measure(step: Callable[[], None], batch: int, warmup: int, steps: int) -> float:
    for _ in range(warmup):
        step()
    started = time.perf_counter()
    for _ in range(steps):
        step()
    return batch * steps / (time.perf_counter() - started)


def vae_step(batch: torch.Tensor) -> Callable[[], None]:
    model = FaceVAE(MODEL_PRESETS["original"]).train()
    optimiser = torch.optim.Adam(model.parameters(), lr=5e-4)

    def step() -> None:
        recon, mean, log_var = model(batch)
        loss = 2000 * ((recon - batch) ** 2).mean() + kl_divergence(mean, log_var)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
    return step


def classifier_step(batch: torch.Tensor, targets: torch.Tensor, dtype: torch.dtype | None) -> Callable[[], None]:
    model = AttributeClassifier(ClassifierConfig(64, tuple(CELEBA_ATTRIBUTES))).train()
    optimiser = torch.optim.AdamW(model.parameters(), lr=2e-3, weight_decay=1e-4)
    weights = torch.full((len(CELEBA_ATTRIBUTES),), 2.0)  # loss weights (broadcast over the batch)

    def step() -> None:
        train_step(model, optimiser, batch, targets, weights, dtype)
    return step


def scoring_step(batch: torch.Tensor) -> Callable[[], None]:
    model = AttributeClassifier(ClassifierConfig(64, tuple(CELEBA_ATTRIBUTES))).eval()

    def step() -> None:
        model.probabilities(batch)
    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--steps", type=int, default=4, help="timed steps per round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--quick", action="store_true", help="batch 32, 2 steps, 1 round")
    args = parser.parse_args()
    if args.quick:
        args.batch_size, args.steps, args.rounds, args.warmup = 32, 2, 1, 1
    torch.manual_seed(0)
    batch = torch.rand(args.batch_size, 3, 64, 64)
    targets = (torch.rand(args.batch_size, len(CELEBA_ATTRIBUTES)) < 0.3).float()
    rows: dict[str, Callable[[], None]] = {
        "baseline: VAE training step (original model, fp32)": vae_step(batch),
        "classifier training step, fp32": classifier_step(batch, targets, None),
    }
    if cpu_has_native_bf16():
        rows["classifier training step, bf16 autocast (auto here)"] = classifier_step(batch, targets, torch.bfloat16)
    rows["classifier scoring (probabilities), fp32"] = scoring_step(batch)
    rates: dict[str, list[float]] = {name: [] for name in rows}
    for round_ in range(args.rounds):  # interleaved, so a burst from another process hits every row
        for name, step in rows.items():
            rates[name].append(measure(step, args.batch_size, args.warmup if round_ == 0 else 0, args.steps))
            print(f"round {round_ + 1}: {name}: {rates[name][-1]:,.1f} images/s", file=sys.stderr, flush=True)
    epoch = OFFICIAL_COUNTS["train"]
    print(f"{machine_line()}")
    print(f"batch {args.batch_size}, 64x64, {len(CELEBA_ATTRIBUTES)} attributes; median of {args.rounds} round(s) "
          f"of {args.steps} steps; load average {' '.join(f'{v:.1f}' for v in os.getloadavg())}\n")
    baseline = statistics.median(rates[next(iter(rows))])
    print("| what | images/s | min per CelebA epoch (162,770) | vs VAE step |\n|---|---:|---:|---:|")
    for name, values in rates.items():
        rate = statistics.median(values)
        print(f"| {name} | {rate:,.1f} | {epoch / rate / 60:,.1f} | {rate / baseline:.1f}x |")


if __name__ == "__main__":
    main()
