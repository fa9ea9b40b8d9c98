"""The default training recipe's learning curve on real faces, beside the original project's.

    python benchmarks/train_curve.py                          # one original epoch: 1,266 steps x 128
    python benchmarks/train_curve.py --steps 300              # shorter
    python benchmarks/train_curve.py --minutes 60             # as far as an hour of training goes
    python benchmarks/train_curve.py --from-run --run RUN_DIR # table, plot, grid of a run made before

It runs the real command, `facevae train --data DATA --out RUN_DIR --max-steps STEPS --quiet`
with the default settings plus `--set train.val_every_steps=100` (validation does not change
the training: it uses its own noise and leaves batch-norm statistics alone) and enough epochs
for STEPS (the default learning rate is constant, so the epoch count changes nothing else).
It reads RUN_DIR/metrics.jsonl while the run trains: every 100 steps a row of the table (train
and validation reconstruction as 2000 x MSE, KL in nats) is printed and the whole table, with
the plot, is rewritten, so a run cut short still leaves a usable table. The baseline is the
original TensorFlow project's first epoch (../shared/reference/original-training.md; about
1,266 steps of 128 on 162,079 training images).

At the end: 16 faces generated from the run's bundle (codes from N(0, I), seed 0) as a grid
(a run stopped by Ctrl-C first gets the bundle of its last checkpoint), their mean pairwise
pixel difference, and whether the run meets issue 18's bar (KL above 5 nats from step 200 on,
last train reconstruction <= 90, faces not near copies: >= 10/255). Only generated faces are
drawn; no CelebA pixel goes into the outputs.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

import facevae
from _machine import machine_line  # benchmarks/_machine.py (the script's folder is on sys.path)
from facevae.evaluation.plots import Axes, _canvas, _legend, colour, nice_range
from facevae.imaging import encode_png, make_grid, to_uint8, write_atomic
from facevae.training.run import make_bundle

ROOT = Path(__file__).resolve().parent.parent
ORIGINAL_STEPS = 1266  # 162,079 training images / 128, the original's first epoch
# The original's epoch-1 means (../shared/reference/original-training.md): recon = 2000 x MSE.
ORIGINAL_EPOCH_1 = {"train_recon": 65.21, "train_kl": 15.85, "val_recon": 54.30, "val_kl": 16.46}
ROW_EVERY = 100
BAR = {"kl_from_step": 200, "kl_above": 5.0, "last_recon_at_most": 90.0, "spread_at_least": 10 / 255}


def read_metrics(run: Path) -> dict[int, dict[str, float]]:
    """metrics.jsonl -> step -> {tag: value}; a later line for the same step and tag wins
    (a resumed run logs its steps again); a half-written last line is skipped."""
    steps: dict[int, dict[str, float]] = {}
    path = run / "metrics.jsonl"
    if not path.is_file():
        return steps
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if not any(tag.startswith("epoch/") for tag in record):  # epoch lines count epochs, not steps
            steps.setdefault(int(record.pop("step")), {}).update(record)
    return steps


def curve_rows(steps: dict[int, dict[str, float]]) -> list[dict[str, float]]:
    """One row per ROW_EVERY steps (and one at the last step): the step-weighted mean of the
    logged training windows since the previous row (train/*), and the validation at that step
    (val/*) when there was one."""
    rows, window, previous, last = [], [], 0, max(steps, default=0)
    for step in sorted(steps):
        values = steps[step]
        if "train/weighted_recon" in values:
            window.append((step - previous, values))  # (steps in the logged window, its means)
            previous = step
        if (step % ROW_EVERY == 0 or step == last) and window:
            row = {"step": step, "train_recon": _mean(window, "train/weighted_recon"),
                   "train_kl": _mean(window, "train/kl"), "images_per_s": _mean(window, "train/images_per_s")}
            if "val/weighted_recon" in values:
                row.update(val_recon=values["val/weighted_recon"], val_kl=values["val/kl"])
            rows.append(row)
            window = []
    return rows


def _windows(steps: dict[int, dict[str, float]]) -> list[tuple[int, dict[str, float]]]:
    """(steps in the window, its means) for every logged training window, in order."""
    logged = [step for step in sorted(steps) if "train/weighted_recon" in steps[step]]
    return [(step - before, steps[step]) for before, step in zip([0] + logged, logged)]


def _mean(windows: list[tuple[int, dict[str, float]]], tag: str) -> float:
    """The mean over steps of `tag`, from windows of (step count, means)."""
    return sum(count * values[tag] for count, values in windows) / max(1, sum(count for count, _ in windows))


def table(rows: list[dict[str, float]], steps: dict[int, dict[str, float]]) -> str:
    """Markdown: our rows, our mean over every logged window, and the original's epoch-1 means."""
    def cell(row: dict[str, float], key: str) -> str:
        return f"{row[key]:.1f}" if key in row else "-"

    lines = ["| step | train recon (2000 x MSE) | train KL (nats) | val recon | val KL | images/s |",
             "|---:|---:|---:|---:|---:|---:|"]
    lines += [f"| {r['step']} | {r['train_recon']:.1f} | {r['train_kl']:.1f} | {cell(r, 'val_recon')} | "
              f"{cell(r, 'val_kl')} | {r['images_per_s']:.0f} |" for r in rows]
    windows = _windows(steps)
    if windows:
        last = max(steps)
        lines.append(f"| mean of steps 1-{last} | {_mean(windows, 'train/weighted_recon'):.1f} | "
                     f"{_mean(windows, 'train/kl'):.1f} | - | - | - |")
    o = ORIGINAL_EPOCH_1
    lines.append(f"| original, epoch 1 (~{ORIGINAL_STEPS} steps) mean | {o['train_recon']} | {o['train_kl']} | "
                 f"{o['val_recon']} | {o['val_kl']} | - |")
    return "\n".join(lines)


def plot(rows: list[dict[str, float]], title: str) -> bytes:
    """PNG: train/val reconstruction and KL against steps, the original's epoch-1 means as dashes."""
    series = {"train recon": [(r["step"], r["train_recon"]) for r in rows],
              "val recon": [(r["step"], r["val_recon"]) for r in rows if "val_recon" in r],
              "train KL": [(r["step"], r["train_kl"]) for r in rows],
              "val KL": [(r["step"], r["val_kl"]) for r in rows if "val_kl" in r]}
    originals = {"original recon, ep. 1": ORIGINAL_EPOCH_1["train_recon"],
                 "original KL, ep. 1": ORIGINAL_EPOCH_1["train_kl"]}
    ys = [y for points in series.values() for _, y in points] + list(originals.values())
    axes = Axes(nice_range(0, max([ORIGINAL_STEPS] + [r["step"] for r in rows]))[:2],
                nice_range(0, max(ys))[:2])
    image, draw = _canvas(axes, title, "optimiser step (batch 128)", "2000 x MSE  /  KL (nats)")
    for index, points in enumerate(series.values()):
        line = [axes.point(x, y) for x, y in points]
        if len(line) > 1:
            draw.line(line, fill=colour(index), width=2)
        for x, y in line:
            draw.ellipse((x - 2, y - 2, x + 2, y + 2), fill=colour(index))
    for index, value in enumerate(originals.values(), start=len(series)):
        x0, y = axes.point(axes.x_range[0], value)
        x1, _ = axes.point(axes.x_range[1], value)
        for start in range(int(x0), int(x1), 12):  # dashes
            draw.line((start, y, min(start + 6, x1), y), fill=colour(index), width=2)
    _legend(draw, list(series) + list(originals))
    return encode_png(image)


def generated_faces(run: Path, count: int = 16) -> tuple[bytes, float]:
    """A grid of `count` faces decoded by the run's bundle from codes drawn with seed 0, and
    their mean pairwise pixel difference in [0, 1]."""
    model = facevae.load(run)
    codes = torch.randn(count, model.latent_dim, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        faces = model.decoder(codes).float()  # count x 3 x S x S in [0, 1], eval mode
    flat = faces.flatten(1)
    spread = float((torch.cdist(flat, flat, p=1) / flat.shape[1]).sum() / (count * (count - 1)))
    return encode_png(make_grid(to_uint8(faces), columns=8, scale=2)), spread


def verdict(steps: dict[int, dict[str, float]], spread: float | None) -> str:
    """Issue 18's bar, checked on the logged windows (every 50 steps by default)."""
    windows = {s: v for s, v in sorted(steps.items()) if "train/kl" in v}
    late_kl = [v["train/kl"] for s, v in windows.items() if s >= BAR["kl_from_step"]]
    last_recon = windows[max(windows)]["train/weighted_recon"] if windows else float("nan")
    checks = [
        (f"KL above {BAR['kl_above']:g} nats from step {BAR['kl_from_step']} on (lowest logged: "
         f"{min(late_kl) if late_kl else float('nan'):.2f})", bool(late_kl) and min(late_kl) > BAR["kl_above"]),
        (f"last logged train reconstruction <= {BAR['last_recon_at_most']:g} (got {last_recon:.1f} at step "
         f"{max(windows) if windows else '-'})", last_recon <= BAR["last_recon_at_most"]),
    ]
    if spread is not None:
        checks.append((f"16 generated faces not near copies: mean pairwise difference {255 * spread:.1f}/255 "
                       f">= {255 * BAR['spread_at_least']:.0f}/255", spread >= BAR["spread_at_least"]))
    return "\n".join(f"- {'PASS' if ok else 'FAIL'}: {text}" for text, ok in checks)


def write_outputs(run: Path, out: Path, header: str, final: bool) -> str:
    """Rewrite OUT/train_curve.md and .png from the run's metrics (and, when final, the grid)."""
    steps = read_metrics(run)
    rows = curve_rows(steps)
    spread = None
    parts = [header, "", table(rows, steps)]
    if final and (run / "checkpoints" / "last.pt").is_file():
        if not (run / "bundle").is_dir():  # stopped by Ctrl-C: the bundle of its last checkpoint
            make_bundle(run, checkpoint="last", attributes=False, progress=False)
        grid, spread = generated_faces(run)
        write_atomic(out / "train_curve_generated.png", grid)
        parts += ["", f"16 generated faces: {out / 'train_curve_generated.png'}"]
    if rows:
        write_atomic(out / "train_curve.png", plot(rows, "default recipe on the 8,000-face sample, batch 128"))
    parts += ["", verdict(steps, spread)]
    text = "\n".join(parts) + "\n"
    write_atomic(out / "train_curve.md", text.encode())
    return text


def train_command(args: argparse.Namespace) -> list[str]:
    command = [sys.executable, "-m", "facevae", "train", "--data", str(args.data), "--out", str(args.run),
               "--max-steps", str(args.steps), "--quiet", "--set", f"train.val_every_steps={ROW_EVERY}",
               "--set", f"train.epochs={args.steps}"]  # enough epochs for --max-steps to end the run
    command += ["--minutes", str(args.minutes)] if args.minutes else []
    return command + (["--resume"] if (args.run / "checkpoints" / "last.pt").is_file() else [])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "celeba-sample")
    parser.add_argument("--steps", type=int, default=ORIGINAL_STEPS, help="optimiser steps (batch 128)")
    parser.add_argument("--minutes", type=float, default=None,
                        help="stop after this many minutes of training even before --steps (a partial curve)")
    parser.add_argument("--run", type=Path, default=Path("runs/train_curve"),
                        help="the run folder (an unfinished one is resumed)")
    parser.add_argument("--out", type=Path, default=None, help="where the table, plot and grid go (default: --run)")
    parser.add_argument("--from-run", action="store_true", help="do not train: report on --run as it is")
    args = parser.parse_args()
    out = args.out or args.run
    out.mkdir(parents=True, exist_ok=True)
    command = train_command(args)
    if args.from_run:
        header = f"# Training curve of {args.run} (report made {time.ctime()})\n{machine_line()}"
        print(write_outputs(args.run, out, header, final=True))
        return 0
    header = "\n".join([f"# Training curve: {args.steps} steps of the default recipe on {args.data}",
                        machine_line(), f"command: {' '.join(command[1:])}", f"started: {time.ctime()}"])
    print(header, flush=True)
    process = subprocess.Popen(command, env={**os.environ, "PYTHONUNBUFFERED": "1"})
    reported = 0
    while process.poll() is None:
        time.sleep(15)
        rows = curve_rows(read_metrics(args.run))
        if len(rows) > reported:
            write_outputs(args.run, out, header + f"\nload average: {os.getloadavg()}", final=False)
            for row in rows[reported:]:
                print(json.dumps(row), flush=True)
            reported = len(rows)
    print(write_outputs(args.run, out, header + f"\nfinished: {time.ctime()}, load average: {os.getloadavg()}",
                        final=True))
    return process.returncode


if __name__ == "__main__":
    sys.exit(main())
