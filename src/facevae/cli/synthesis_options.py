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

# Beyond this, strengths only give noise and silhouettes (the REST API refuses them: schemas.MAX_STRENGTH).
STRENGTH_WARNING = 10.0
KEEP_MODES = ("orthogonal", "group", "decoded")  # facevae.inference.directions.KEEP_MODES (no torch import here)


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
    parser.add_argument("--device", default="cpu", help="cpu (default), cuda, cuda:N or mps")


def attribute_names(text: str) -> list[str]:
    """`Male,Young` -> ["Male", "Young"]."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise argparse.ArgumentTypeError(f"'{text}' is not a comma-separated list of attribute names, e.g. Male,Young")
    return names


def add_attribute_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--attr", action="append", type=attribute_strength, default=[], metavar="NAME=STRENGTH",
                        help="add an attribute vector times STRENGTH (repeatable), e.g. --attr Smiling=1.5. "
                             "Strength 1 = the mean difference between faces with and without the attribute; "
                             "useful strengths lie within +-3, beyond +-10 only noise")
    parser.add_argument("--keep", type=attribute_names, action="extend", default=[], metavar="NAME,NAME",
                        help="keep these attributes unchanged while editing, e.g. --keep Male,Young")
    parser.add_argument("--keep-mode", choices=KEEP_MODES, default="orthogonal",
                        help="orthogonal (default): edits made orthogonal to the kept vectors; group: also to "
                             "vectors within cosine 0.8 of a kept one; decoded: plus a correction that keeps the "
                             "kept attributes' look in decoded faces (slower; see docs/usage.md)")


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
    for name, strength in strengths.items():
        if abs(strength) > STRENGTH_WARNING:
            print(f"warning: {name}={strength:g} is beyond +-{STRENGTH_WARNING:g}; strengths that large give noise "
                  f"and silhouettes, not more {name} (1 = the mean difference between faces with and without it)",
                  file=sys.stderr)
    return strengths


def edits_of(args: argparse.Namespace) -> dict:
    """The pipeline keywords of the attribute options: attributes, keep, keep_mode."""
    return {"attributes": attributes_of(args), "keep": list(dict.fromkeys(args.keep)), "keep_mode": args.keep_mode}


def load_pipeline(args: argparse.Namespace) -> "FacePipeline":
    from ..inference.pipeline import FacePipeline

    return FacePipeline.load(args.model, device=args.device)


def write_result(result: "SynthesisResult", args: argparse.Namespace) -> int:
    """Save the images (and latents), then say what was written and any notes."""
    for note in result.notes:
        print(f"note: {note}", file=sys.stderr)
    paths = result.save(args.out, scale=args.scale)
    where = paths[0] if Path(args.out).suffix.lower() == ".png" else f"{len(paths)} PNG files in {args.out}"
    print(f"wrote {where}")
    if args.latents:
        print(f"wrote latents {result.save_latents(args.latents)}")
    return 0
