"""Synthesis speed on this machine: the plain decoder (baseline) against the pipeline's fast path.

    python benchmarks/synthesis.py            # full: 15 repeats of the grids, 5 photo edits
    python benchmarks/synthesis.py --quick    # a few repeats, well under a minute
    python benchmarks/synthesis.py --grid-only  # only the 70-face grid (a busy machine)

Needs the pretrained model: `facevae download celeba64-original` (or
`facevae download celeba64-original --from ../shared/pretrained/original-celeba64`).
Measured, each as the median wall time of interleaved repeats (so a busy machine slows
every variant alike):
  - 70-face grid with attributes: sample codes, add Smiling + Eyeglasses, decode, uint8 grid
    image (and, separately, PNG encoding); baseline: a plain fp32 eager decode of 70 faces;
  - one face: the same for n = 1;
  - photo edit end to end: read a 800 x 760 JPEG, detect, align, encode (decoder-only model:
    100 refinement steps from the prior mean), edit, decode.
"fast fp32, previous" is the fp32 fast path as it was before the fused/matmul tail (the
phase-split tail and separate activations, assembled here from FastDecoder's bf16 parts),
so before and after are measured in the same run.
It also prints how far the fast paths are from the plain decoder (max |difference| of the
[0, 1] images, and in uint8 levels). To see a CPU without AVX-512 on one that has it, run
with ONEDNN_MAX_CPU_ISA=AVX2 (the table prints the cap and the CPU's flags).
"""

from __future__ import annotations

import argparse
import io
import os
import statistics
import sys
import time
from collections.abc import Callable

import numpy as np
import torch
from PIL import Image

from _machine import machine_line  # benchmarks/_machine.py (the script's folder is on sys.path)
from facevae import load
from facevae.imaging import encode_png, to_uint8
from facevae.inference.pipeline import FacePipeline
from facevae.model.fast_decoder import FastDecoder, FoldedUp, PhaseSplitTail

ATTRIBUTES = {"Smiling": 1.0, "Eyeglasses": 0.5}


def interleaved_medians(variants: dict[str, Callable[[], object]], repeats: int) -> dict[str, tuple[float, float]]:
    """(median wall seconds, median process CPU seconds) per variant; one warm-up call each,
    then round-robin repeats. CPU time is disturbed far less than wall time by other
    processes on a shared machine."""
    for run in variants.values():
        run()
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in variants}
    for _ in range(repeats):
        for name, run in variants.items():
            start, start_cpu = time.perf_counter(), time.process_time()
            run()
            times[name].append((time.perf_counter() - start, time.process_time() - start_cpu))
    return {name: (statistics.median(t for t, _ in values), statistics.median(c for _, c in values))
            for name, values in times.items()}


def photo_bytes(pipe: FacePipeline) -> bytes:
    """A generated face enlarged into a larger picture, as a JPEG (the detector must find it)."""
    face = pipe.generate(n=1, seed=3, temperature=0.6).images[0]
    canvas = Image.new("RGB", (800, 760), (90, 120, 90))
    canvas.paste(Image.fromarray(face).resize((534, 654), Image.Resampling.BICUBIC), (140, 50))
    buffer = io.BytesIO()
    canvas.save(buffer, format="JPEG", quality=92)
    return buffer.getvalue()


def previous_fp32_pipeline(model) -> FacePipeline:
    """The fp32 fast path before the fused/matmul tail: phase-split tail, separate LeakyReLU."""
    pipe = FacePipeline(model, precision="fp32")
    decoder = pipe.decoder
    decoder.tail = PhaseSplitTail(model.decoder.stages[-1], model.decoder.to_rgb, torch.float32)
    decoder.tail.to(memory_format=torch.channels_last).requires_grad_(False)
    for module in decoder.modules():
        if isinstance(module, FoldedUp):
            module.fused = False
    return pipe


def accuracy(model, latents: torch.Tensor, precisions: tuple[str, ...]) -> list[tuple[str, float, int, float]]:
    with torch.inference_mode():
        plain = model.decoder(latents)
        rows = []
        for precision in precisions:
            fast = FastDecoder(model.decoder, precision)(latents)
            levels = np.abs(to_uint8(fast).astype(int) - to_uint8(plain).astype(int))
            rows.append((precision, float((fast - plain).abs().max()), int(levels.max()), float(levels.mean())))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="few repeats (under a minute)")
    parser.add_argument("--grid-only", action="store_true", help="only the 70-face grid, no one-face or edit rows")
    parser.add_argument("--fp32-only", action="store_true", help="no bf16 rows (bf16 is emulated, slowly, on CPUs "
                        "without AVX512-BF16/AMX)")
    parser.add_argument("--model", default="celeba64-original")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's choice)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    grid_repeats, edit_repeats = (5, 1) if args.quick else (15, 5)

    model = load(args.model)
    plain = FacePipeline(model, fast=False)
    fp32 = FacePipeline(model, precision="fp32")
    previous = previous_fp32_pipeline(model)
    bf16 = FacePipeline(model, precision="bf16")
    default = FacePipeline(model)
    latents70 = plain.sample_latents(70, 0) + plain.resolve_attributes(ATTRIBUTES)

    def plain_decode(n: int) -> Callable[[], object]:
        codes = latents70[:n]
        return lambda: torch.inference_mode()(model.decoder)(codes)

    def grid(pipe: FacePipeline, n: int) -> Callable[[], object]:
        return lambda: pipe.generate(n=n, seed=0, attributes=ATTRIBUTES, columns=10).grid()

    grid_image = default.generate(n=70, seed=0, attributes=ATTRIBUTES, columns=10).grid()
    load_before = os.getloadavg()[0]
    many = interleaved_medians({
        "plain fp32 eager decode (baseline)": plain_decode(70),
        "pipeline, fast fp32": grid(fp32, 70),
        "pipeline, fast fp32, previous": grid(previous, 70),
        **({} if args.fp32_only else {"pipeline, fast bf16": grid(bf16, 70)}),
        "PNG encoding of the 70-face grid": lambda: encode_png(grid_image),
    }, grid_repeats)
    one = {} if args.grid_only else interleaved_medians({
        "plain fp32 eager decode (baseline)": plain_decode(1),
        "pipeline, fast fp32": grid(fp32, 1),
        "pipeline, fast fp32, previous": grid(previous, 1),
        **({} if args.fp32_only else {"pipeline, fast bf16": grid(bf16, 1)}),
    }, grid_repeats * 3)
    photo = photo_bytes(default)
    edit = {} if args.grid_only else interleaved_medians({
        "plain fp32 decoder": lambda: plain.edit(photo, ATTRIBUTES, refine_steps=100),
        "pipeline, fast fp32": lambda: fp32.edit(photo, ATTRIBUTES, refine_steps=100),
        "pipeline, fast fp32, previous": lambda: previous.edit(photo, ATTRIBUTES, refine_steps=100),
        **({} if args.fp32_only else {"pipeline, fast bf16": lambda: bf16.edit(photo, ATTRIBUTES, refine_steps=100)}),
    }, edit_repeats)
    load_after = os.getloadavg()[0]

    print(f"\nfacevae synthesis benchmark: {args.model}, torch {torch.__version__}; default precision on this "
          f"machine: {default.precision}; load average {load_before:.1f} before, {load_after:.1f} after; "
          f"{' '.join(sys.argv[1:]) or 'full'} run\n{machine_line()}")
    print(f"\n{'task':<34} {'variant':<36} {'wall median':>12} {'vs baseline':>12} {'CPU median':>12} "
          f"{'vs baseline':>12}")
    for task, results, base in (("70-face grid with attributes", many, "plain fp32 eager decode (baseline)"),
                                ("one face", one, "plain fp32 eager decode (baseline)"),
                                ("photo edit, 100 refinement steps", edit, "plain fp32 decoder")):
        for variant, (seconds, cpu) in results.items():
            png = variant.startswith("PNG")
            ratio, cpu_ratio = ("", "") if png else (f"{results[base][0] / seconds:.2f}x",
                                                     f"{results[base][1] / cpu:.2f}x")
            print(f"{task:<34} {variant:<36} {seconds * 1000:>9.1f} ms {ratio:>12} {cpu * 1000:>9.1f} ms "
                  f"{cpu_ratio:>12}")
    print("\naccuracy against the plain decoder (64 faces):")
    precisions = ("fp32",) if args.fp32_only else ("fp32", "bf16")
    for precision, max_abs, max_levels, mean_levels in accuracy(model, plain.sample_latents(64, 1), precisions):
        print(f"  fast {precision}: max |diff| {max_abs:.2e}; uint8 levels: max {max_levels}, mean {mean_levels:.3f}")


if __name__ == "__main__":
    main()
