"""Training throughput: the seed's loop against facevae's trainer, same run, same data.

    python benchmarks/train_throughput.py                       # CPU: original model, batch 128
    python benchmarks/train_throughput.py --quick               # under a minute on a laptop CPU
    python benchmarks/train_throughput.py --device cuda --batch-size 1024 --compile

Both loops train the same model (`--preset`, default the original architecture) on the
same N generated 178x218 JPEGs (CelebA's size and quality):

- seed-style: what the seed's PyTorch port does: a DataLoader whose workers decode and
  resize every JPEG every epoch with PIL, float32 NCHW batches, pin_memory, fp32, default
  Adam, and `.item()` on three loss terms every step (a host-device sync each step);
- facevae: `facevae.training.trainer.Trainer` on the prepared uint8 cache of those JPEGs
  (made by `facevae.data.prepare.prepare`, not timed): batches normalised on the device,
  the split resident on the GPU, bf16 autocast where it is faster, channels_last, fused
  Adam, optional torch.compile, and no sync inside a step.

Each loop runs `--warmup` steps untimed, then `--steps` timed steps (data loading
included); the table gives images per second and the ratio.
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
from PIL import Image
from torch.utils.data import DataLoader, Dataset

from facevae.config import MODEL_PRESETS, DataConfig, RunConfig, TrainConfig
from facevae.data.cache import ImageCache
from facevae.data.prepare import prepare
from facevae.losses import kl_divergence
from facevae.model import FaceVAE
from facevae.training.device import autocast_dtype, describe, resolve_device
from facevae.training.trainer import Trainer

WIDTH, HEIGHT = 178, 218  # CelebA's aligned images


def make_jpegs(folder: Path, count: int, seed: int = 0) -> list[Path]:
    """`count` 178x218 JPEGs (quality 90) with smooth shapes and noise, about CelebA's file size."""
    rng = np.random.default_rng(seed)
    image_dir = folder / "img_align_celeba"
    image_dir.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(count):
        coarse = rng.uniform(0, 255, (7, 6, 3)).astype(np.uint8)
        smooth = np.asarray(Image.fromarray(coarse).resize((WIDTH, HEIGHT), Image.BICUBIC), np.float32)
        pixels = np.clip(smooth + rng.normal(0, 6, smooth.shape), 0, 255).astype(np.uint8)
        path = image_dir / f"{i + 1:06d}.jpg"
        Image.fromarray(pixels).save(path, quality=90)
        paths.append(path)
    return paths


class SeedStyleDataset(Dataset):
    """The seed's CelebADataset: open, decode, resize and convert one JPEG per item, every epoch."""

    def __init__(self, paths: list[Path], size: int) -> None:
        self.paths, self.size = paths, size

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> torch.Tensor:
        image = Image.open(self.paths[index]).convert("RGB").resize((self.size, self.size), Image.BILINEAR)
        return torch.from_numpy(np.asarray(image, np.float32) / 255.0).permute(2, 0, 1)  # like ToTensor()


def seed_style_loop(paths: list[Path], args: argparse.Namespace, device: torch.device) -> float:
    """Images per second of the seed's loop over `args.steps` timed steps."""
    config = MODEL_PRESETS[args.preset]
    torch.manual_seed(0)
    model = FaceVAE(config).to(device)
    optimizer = torch.optim.Adam(model.parameters(), lr=5e-4)
    loader = DataLoader(SeedStyleDataset(paths, config.image_size), batch_size=args.batch_size, shuffle=True,
                        num_workers=args.seed_workers, pin_memory=device.type == "cuda", drop_last=True,
                        persistent_workers=args.seed_workers > 0)
    total_loss = recon_total = kl_total = 0.0
    done, images_timed, start = 0, 0, 0.0
    while done < args.warmup + args.steps:
        for images in loader:
            if done == args.warmup:
                _sync(device)
                start = time.perf_counter()
            images = images.to(device)
            recon, mean, log_var = model(images)
            recon_loss = args.recon_weight * F.mse_loss(recon, images)
            kl = kl_divergence(mean, log_var)
            loss = recon_loss + kl
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total_loss += loss.item()  # the seed's per-step bookkeeping: three syncs
            recon_total += recon_loss.item()
            kl_total += kl.item()
            images_timed += len(images) if done >= args.warmup else 0
            done += 1
            if done == args.warmup + args.steps:
                break
    _sync(device)
    return images_timed / (time.perf_counter() - start)


def facevae_loop(cache: ImageCache, args: argparse.Namespace, device: torch.device) -> float:
    """Images per second of facevae's Trainer over `args.steps` timed steps."""
    train = TrainConfig(batch_size=args.batch_size, recon_weight=args.recon_weight, device=str(device),
                        compile=args.compile, checkpoint_every_steps=0, log_every_steps=10**9,
                        precision=args.precision, num_workers=0)
    config = RunConfig(model=MODEL_PRESETS[args.preset], data=DataConfig(), train=train)
    trainer = Trainer(config, cache, None, device=device, progress=False)

    def run(steps: int) -> None:
        while steps > 0:
            before = trainer.progress.step
            trainer.train_epoch(max_steps=steps)  # may end an epoch first and go on in the next
            steps -= trainer.progress.step - before

    run(args.warmup)
    _sync(device)
    start = time.perf_counter()
    run(args.steps)
    _sync(device)
    return args.steps * args.batch_size / (time.perf_counter() - start)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--batch-size", type=int, default=None, help="default 128 (--quick: 32)")
    parser.add_argument("--preset", default="original", choices=sorted(MODEL_PRESETS))
    parser.add_argument("--steps", type=int, default=None, help="timed steps per loop (default 10; --quick 3)")
    parser.add_argument("--warmup", type=int, default=None, help="untimed steps first (default 2; GPU 10)")
    parser.add_argument("--images", type=int, default=None, help="JPEGs to generate (default: enough for 2 epochs, "
                                                                 "at most 8192)")
    parser.add_argument("--seed-workers", type=int, default=min(4, os.cpu_count() or 1),
                        help="DataLoader workers of the seed-style loop (default min(4, cores))")
    parser.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16"), help="facevae's precision")
    parser.add_argument("--compile", action="store_true", help="torch.compile facevae's model")
    parser.add_argument("--recon-weight", type=float, default=2000.0)
    parser.add_argument("--skip-seed", action="store_true", help="time facevae's loop only")
    parser.add_argument("--quick", action="store_true", help="batch 32, 3 steps: a check that runs in under a minute")
    args = parser.parse_args()
    device = resolve_device(args.device)
    gpu = device.type == "cuda"
    args.batch_size = args.batch_size or (32 if args.quick else 128)
    args.steps = args.steps or (3 if args.quick else 50 if gpu else 10)
    args.warmup = args.warmup if args.warmup is not None else (1 if args.quick else 10 if gpu else 2)
    count = args.images or min(8192, max(2 * args.batch_size, (args.warmup + args.steps) * args.batch_size // 2))
    count = max(count, args.batch_size)

    with tempfile.TemporaryDirectory(prefix="facevae-bench-") as tmp:
        started = time.perf_counter()
        paths = make_jpegs(Path(tmp) / "data", count)
        size = MODEL_PRESETS[args.preset].image_size
        cache_dir = prepare(Path(tmp) / "data", out=Path(tmp) / "cache", size=size, val_fraction=0.0,
                            test_fraction=0.0, progress=False)
        cache = ImageCache.open(cache_dir)
        setup = time.perf_counter() - started
        dtype = autocast_dtype(device, args.precision)
        print(f"device: {describe(device, dtype)}; torch {torch.__version__}; {os.cpu_count()} CPU cores", flush=True)
        print(f"data: {count:,} JPEGs {WIDTH}x{HEIGHT} -> {size}x{size} cache ({setup:.1f} s to make, not timed); "
              f"model preset '{args.preset}', batch {args.batch_size}, {args.warmup} warm-up + {args.steps} timed "
              f"steps", flush=True)
        seed_rate = None if args.skip_seed else seed_style_loop(paths, args, device)
        if seed_rate is not None:
            print(f"  seed-style loop: {seed_rate:,.1f} images/s", flush=True)
        ours = facevae_loop(cache, args, device)
        print(f"  facevae trainer: {ours:,.1f} images/s", flush=True)

    print()
    print("| loop | data path | precision | images/s | vs seed |")
    print("|---|---|---|---:|---:|")
    if seed_rate is not None:
        print(f"| seed-style | DataLoader, {args.seed_workers} workers decoding JPEGs | fp32 NCHW | "
              f"{seed_rate:,.1f} | 1.00x |")
    extras = ", compiled" if args.compile else ""
    ratio = f"{ours / seed_rate:.2f}x" if seed_rate else "-"
    print(f"| facevae | uint8 cache{', GPU-resident' if gpu else ''} | "
          f"{'bf16' if dtype == torch.bfloat16 else 'fp32'} channels_last{extras} | {ours:,.1f} | {ratio} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
