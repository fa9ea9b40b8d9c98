"""Options shared by the synthesis commands (generate, decode, arithmetic, morph, reconstruct,
edit): the model, the attribute edits, the output and the latents, parsed the same way."""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from ..hub.registry import DEFAULT_MODEL

if TYPE_CHECKING:
    from ..inference.pipeline import FacePipeline, SynthesisResult



def attribute_strength(text: str) -> tuple[str, float]:
    """`NAME=STRENGTH` -> (name, strength); argparse reports a ValueError as a usage error."""
    name, sep, value = text.partition("=")
    try:
        strength = float(value)
    except ValueError:
        strength = math.nan
    if not sep or not name.strip() or not math.isfinite(strength):
        raise argparse.ArgumentTypeError(f"'{text}' is not NAME=STRENGTH, e.g. Smiling=1.5")
    return name.strip(), strength


def add_model_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default=DEFAULT_MODEL, metavar="NAME_OR_PATH",
                        help=f"registered model, bundle folder or training run (default: {DEFAULT_MODEL})")
    parser.add_argument("--device", default="auto",
                        help="auto (default: a GPU if there is one, else the CPU), cpu, cuda, cuda:N or mps")
    parser.add_argument("--threads", type=int, default=None, metavar="N",
                        help="CPU threads (default: the cores not busy with other work, from the load average)")


def add_attribute_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--attr", action="append", type=attribute_strength, default=[], metavar="NAME=STRENGTH",
                        help="add an attribute vector times STRENGTH (repeatable), e.g. --attr Smiling=1.5")


def add_output_options(parser: argparse.ArgumentParser, default_out: str) -> None:
    parser.add_argument("--out", default=default_out,
                        help=f"a .png file gets a grid; any other path is a folder with one PNG per face "
                             f"(default: {default_out})")
    parser.add_argument("--latents", metavar="PATH.npy", help="also save the latent codes of the result (.npy)")
    parser.add_argument("--scale", type=int, default=1, help="enlarge each face by this integer factor")


def attributes_of(args: argparse.Namespace) -> dict[str, float]:
    """Repeated --attr options as a dict; a repeated name adds up."""
    strengths: dict[str, float] = {}
    for name, strength in args.attr:
        strengths[name] = strengths.get(name, 0.0) + strength
    return strengths


def load_pipeline(args: argparse.Namespace) -> "FacePipeline":
    from ..inference.pipeline import FacePipeline
    from ..runtime import set_threads

    set_threads(args.threads)
    pipeline = FacePipeline.load(args.model, device=args.device)
    args.computed_on = pipeline.runtime.describe()  # said with the result, after any error message
    return pipeline


def write_result(result: "SynthesisResult", args: argparse.Namespace) -> int:
    """Save the images (and latents), then say what was written and any notes."""
    if getattr(args, "computed_on", None):
        print(f"device: {args.computed_on}", file=sys.stderr)
    for note in result.notes:
        print(f"note: {note}", file=sys.stderr)
    paths = result.save(args.out, scale=args.scale)
    where = paths[0] if Path(args.out).suffix.lower() == ".png" else f"{len(paths)} PNG files in {args.out}"
    print(f"wrote {where}")
    if args.latents:
        print(f"wrote latents {result.save_latents(args.latents)}")
    return 0
