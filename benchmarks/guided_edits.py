"""Guided against linear attribute edits: quality judged by an independent classifier, and speed.
The figures in docs/benchmarks.md ("Guided edits").

    python benchmarks/guided_edits.py --judge JUDGE_DIR [--judge ...] --codes CODES.npy [--guide DIR] [--steps 5]
    python benchmarks/guided_edits.py --timing-only

Quality (needs --judge, classifier folders that did NOT guide the edits): the codes (an
N x D .npy, e.g. inverted real faces; or --generated N faces from the prior, drawn with
--seed) are edited at -strength and +strength, linearly (the pipeline's resolve_attributes) and guided
(facevae.inference.guided with the guide classifier, default the shipped one). With P_s the
mean probability over faces at strength s:

    success         P_+s - P_-s of the target, by the guide and by each judge
    judge/guide     a judge's success over the guide's: under 0.8 the guide is being fooled
    inside          mean |pixel(+s) - pixel(-s)| inside the face box (evaluation.edits.FACE_BOX), 1/255 steps
    guided/linear   the guided edit's inside change over the linear one's
    leak            P_+s - P_-s of the kept attribute, signed, with its standard error over the
                    faces (keep pairs: the faces' own spread makes small leaks hard to resolve)

Speed: seconds for one face and for a 70-face grid, linear against guided at several step
counts, and for one face keeping one attribute against keeping everything else ("*"), in this
process's threads, with the machine line of benchmarks/_machine.py.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from _machine import machine_line
from facevae.errors import UserError
from facevae.evaluation.edits import face_mask, for_classifier
from facevae.inference.guided import GuidedSettings, pipeline_guided_edit
from facevae.inference.pipeline import FacePipeline
from facevae.model import classifier as clf
from facevae.model.shipped import load_shipped

ATTRIBUTES = ("Smiling", "Male", "Blond_Hair", "Young", "Eyeglasses")
PAIRS = (("Male", "Smiling"), ("Smiling", "Male"))


def edited(pipe: FacePipeline, method: str, codes: torch.Tensor, strengths: dict[str, float], keep: tuple[str, ...],
           guide: torch.nn.Module, settings: GuidedSettings) -> torch.Tensor:
    """N x 3 x S x S images of the codes edited by `method`: "guided", "linear" (keep mode auto)
    or "linear MODE" (another keep mode of the linear edit)."""
    if method.startswith("linear"):
        moved = codes + pipe.resolve_attributes(strengths, keep, method.removeprefix("linear").strip() or "auto")
    else:
        moved = pipeline_guided_edit(pipe, codes, strengths, keep, guide, settings)
    return pipe.decode_tensor(moved).float().clamp(0, 1)


def measure(pipe: FacePipeline, classifiers: dict[str, torch.nn.Module], codes: torch.Tensor, target: str,
            keep: tuple[str, ...], strength: float, settings: GuidedSettings,
            methods: tuple[str, ...] = ("linear", "guided")) -> dict[str, dict[str, float]]:
    """{method: {inside, success_ROLE, and with keep: leak_ROLE (signed, keep[0]), leak_se_ROLE}}."""
    inside = face_mask(pipe.image_size)
    rows = {}
    for method in methods:
        images = {s: edited(pipe, method, codes, {target: s}, keep, classifiers["guide"], settings)
                  for s in (-strength, strength)}
        row = {"inside": float((images[strength] - images[-strength]).abs().mean((0, 1))[inside].mean() * 255)}
        for role, model in classifiers.items():
            change = (model.probabilities(for_classifier(images[strength], model))
                      - model.probabilities(for_classifier(images[-strength], model)))  # N x A
            row[f"success_{role}"] = float(change[:, model.attribute_names.index(target)].mean())
            if keep:
                kept = change[:, model.attribute_names.index(keep[0])]  # N: per face, signed
                row[f"leak_{role}"] = float(kept.mean())
                row[f"leak_se_{role}"] = float(kept.std() / len(kept) ** 0.5)
        rows[method] = row
    return rows


def quality_tables(pipe: FacePipeline, classifiers: dict[str, torch.nn.Module], codes: torch.Tensor,
                   strength: float, settings: GuidedSettings, attributes: tuple[str, ...], pairs: bool,
                   keep_modes: tuple[str, ...] = ()) -> None:
    judges = [role for role in classifiers if role != "guide"]
    roles = "guide / " + " / ".join(judges)
    print(f"\nEdits at strength +-{strength:g} of {len(codes)} faces; guided: {settings}\n")
    print(f"| attribute | linear success ({roles}) | guided success ({roles}) | {', '.join(judges)} / guide (guided) "
          "| inside linear | inside guided | guided/linear |")
    print("|---|---|---|---|---|---|---|")
    for target in attributes:
        rows = measure(pipe, classifiers, codes, target, (), strength, settings)
        lin, gui = rows["linear"], rows["guided"]
        ratios = ", ".join(f"{gui[f'success_{j}'] / max(gui['success_guide'], 1e-9):.2f}" for j in judges)
        print(f"| {target} | {_successes(lin, judges)} | {_successes(gui, judges)} | {ratios} | {lin['inside']:.1f} "
              f"| {gui['inside']:.1f} | {gui['inside'] / max(lin['inside'], 1e-9):.2f} |", flush=True)
    if not pairs:
        return
    print(f"\nKeep pairs: success / signed leak of the kept attribute (+- its standard error over the faces), "
          f"judged by {', '.join(judges)}; linear: keep mode auto unless named\n")
    print("| edit | keep | method | " + " | ".join(judges) + " | guide |")
    print("|---|---|---|" + "---|" * (len(judges) + 1))
    for target, kept in PAIRS:
        methods = ["linear"]
        for mode in keep_modes:
            try:
                pipe.resolve_attributes({target: strength}, (kept,), mode)
                methods.append(f"linear {mode}")
            except UserError as error:  # e.g. group: keeping the whole group leaves too little of the target
                print(f"| {target} | {kept} | linear {mode} | refused: {error} |")
        rows = measure(pipe, classifiers, codes, target, (kept,), strength, settings, (*methods, "guided"))
        for method, row in rows.items():
            cells = [f"{row[f'success_{r}']:.3f} / {row[f'leak_{r}']:+.3f} +- {row[f'leak_se_{r}']:.3f}"
                     for r in [*judges, "guide"]]
            print(f"| {target} | {kept} | {method} | " + " | ".join(cells) + " |", flush=True)


def _successes(row: dict[str, float], judges: list[str]) -> str:
    return " / ".join(f"{row[f'success_{role}']:.3f}" for role in ["guide", *judges])


def timing_table(pipe: FacePipeline, guide: torch.nn.Module, step_counts: tuple[int, ...]) -> None:
    print("\n| faces | linear (s) | " + " | ".join(f"guided, {n} steps (s)" for n in step_counts) + " |")
    print("|---|---|" + "---|" * len(step_counts))
    warm = pipe.sample_latents(1, seed=0)  # the first passes set up oneDNN's kernels: not timed
    edited(pipe, "guided", warm, {"Smiling": 2.0}, ("Male",), guide, GuidedSettings(steps=2))
    for count, counts in ((1, step_counts), (70, step_counts[1:2])):
        codes = pipe.sample_latents(count, seed=1)
        started = time.perf_counter()
        edited(pipe, "linear", codes, {"Smiling": 2.0}, ("Male",), guide, GuidedSettings())
        cells = [f"{time.perf_counter() - started:.2f}"]
        for steps in step_counts:
            if steps not in counts:
                cells.append("-")
                continue
            started = time.perf_counter()
            edited(pipe, "guided", codes, {"Smiling": 2.0}, ("Male",), guide, GuidedSettings(steps=steps))
            cells.append(f"{time.perf_counter() - started:.2f}")
        print(f"| {count} | " + " | ".join(cells) + " |", flush=True)
    # Keeping everything else holds every other attribute as each of the guide's networks reads it.
    print(f"\n| one face, Smiling +2, {GuidedSettings.steps} steps, keeping | guided (s) |\n|---|---|")
    face = pipe.sample_latents(1, seed=1)
    for keep in (("Male",), ("*",)):
        started = time.perf_counter()
        edited(pipe, "guided", face, {"Smiling": 2.0}, keep, guide, GuidedSettings())
        print(f"| {', '.join(keep)} | {time.perf_counter() - started:.2f} |", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="celeba64-original")
    parser.add_argument("--guide", default=None, help="guide classifier folder (default: the shipped one)")
    parser.add_argument("--judge", action="append", default=[],
                        help="an independent classifier folder that judges the edits (repeat for several)")
    parser.add_argument("--codes", default=None, help="N x D .npy of codes to edit (e.g. inverted real faces)")
    parser.add_argument("--generated", type=int, default=40, help="faces from the prior when --codes is not given")
    parser.add_argument("--seed", type=int, default=0, help="seed of the --generated faces (another face set)")
    parser.add_argument("--faces", type=int, default=None, help="edit only the first N codes")
    parser.add_argument("--attributes", default=",".join(ATTRIBUTES), help="attributes of the first table")
    parser.add_argument("--no-pairs", action="store_true", help="skip the keep-pair table")
    parser.add_argument("--linear-keep-modes", default="",
                        help="keep-pair table: also the linear edit with these keep modes (e.g. orthogonal,decoded)")
    parser.add_argument("--strength", type=float, default=2.0)
    parser.add_argument("--steps", type=int, default=GuidedSettings.steps)
    parser.add_argument("--anchor", type=float, default=GuidedSettings.anchor)
    parser.add_argument("--hold-mean", action="store_true",
                        help="an ensemble guide holds only its members' mean reading of a kept attribute")
    parser.add_argument("--gradients-only", action="store_true",
                        help="keep by the guide's gradients alone, not also the kept attributes' vectors")
    parser.add_argument("--keep-ridge", type=float, default=GuidedSettings.keep_ridge,
                        help="ridge of the kept gradients' damped projection (0: the exact projection)")
    parser.add_argument("--timing-only", action="store_true")
    parser.add_argument("--no-timing", action="store_true")
    args = parser.parse_args()
    torch.manual_seed(0)
    pipe = FacePipeline.load(args.model, device="cpu")
    guide = clf.load(args.guide) if args.guide else load_shipped()
    print(machine_line())
    print(f"model {args.model} ({pipe.precision}); guide {args.guide or 'shipped'}; judge {args.judge}")
    if not args.timing_only:
        if not args.judge:
            parser.error("--judge is required for the quality tables (or pass --timing-only)")
        generated = f"{args.generated} generated faces (prior, seed {args.seed})"
        codes = (pipe.as_latents(np.load(args.codes)) if args.codes else
                 pipe.sample_latents(args.generated, seed=args.seed))[:args.faces]
        print(f"codes: {args.codes or generated}, {len(codes)} faces")
        names = tuple(name for name in args.attributes.split(",") if name)
        judges = {f"judge {number}": clf.load(folder) for number, folder in enumerate(args.judge, 1)}
        quality_tables(pipe, {"guide": guide, **judges}, codes, args.strength,
                       GuidedSettings(steps=args.steps, anchor=args.anchor, hold_members=not args.hold_mean,
                                      project_vectors=not args.gradients_only, keep_ridge=args.keep_ridge),
                       names, not args.no_pairs, tuple(mode for mode in args.linear_keep_modes.split(",") if mode))
    if not args.no_timing:
        timing_table(pipe, guide, (3, 5, 10, 20))


if __name__ == "__main__":
    main()
