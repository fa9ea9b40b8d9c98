"""The six synthesis commands (generate, reconstruct, arithmetic, morph, decode, edit) from one table.

Each row of COMMANDS is a SynthesisCommand: its name and help texts, its own arguments (as
data), the default --out, and the FacePipeline call that makes its SynthesisResult. Every
command then gets the same model, --attr and output options, the same checks of its output
paths before the model loads, and the same way of writing the result. Heavy imports
(torch, the pipeline) happen inside `run`, so `facevae --help` stays fast.
"""

from __future__ import annotations

import argparse
import math
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..edit_choices import DEFAULT_KEEP_MODE, DEFAULT_STRENGTHS, KEEP_MODES, keep_mode_help
from ..hub.registry import DEFAULT_MODEL
from ..limits import MAX_FACES, MAX_SEED, MAX_STRENGTH
from . import options as bounded

if TYPE_CHECKING:
    from ..inference.pipeline import FacePipeline, SynthesisResult

Argument = tuple[tuple[str, ...], dict[str, Any]]  # parser.add_argument(*flags, **options)


def _arg(*flags: str, **options: Any) -> Argument:
    return flags, options


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


def strengths(text: str) -> tuple[float, ...]:
    """`-2,-1,0,1,2` -> (-2.0, -1.0, 0.0, 1.0, 2.0) for `arithmetic --strengths`."""
    try:
        values = tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a comma-separated list of numbers, e.g. -2,-1,0,1,2"
                                         ) from None
    if not values:
        raise argparse.ArgumentTypeError("give at least one strength")
    if len(values) > MAX_FACES or not all(abs(v) <= MAX_STRENGTH for v in values):
        raise argparse.ArgumentTypeError(f"give at most {MAX_FACES} strengths, each within +-{MAX_STRENGTH:g}")
    return values


def read_latents(path: str):
    """A .npy file of codes, read without pickle; problems become UserErrors."""
    import numpy as np

    from ..errors import UserError

    try:
        with open(path, "rb") as file:
            header = file.read(6)
    except FileNotFoundError:
        raise UserError(f"{path}: no such file") from None
    if header != b"\x93NUMPY":
        raise UserError(f"{path} is not a NumPy .npy file; save codes with `--latents PATH.npy`")
    try:
        array = np.load(path, allow_pickle=False)
    except (ValueError, OSError) as error:
        raise UserError(f"{path} is not a NumPy .npy array of latent codes ({error})") from None
    if not np.issubdtype(array.dtype, np.number):
        raise UserError(f"{path} holds {array.dtype} values, not numbers")
    return array


def attribute_names(text: str) -> list[str]:
    """`Male,Young` -> ["Male", "Young"]."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise argparse.ArgumentTypeError(f"'{text}' is not a comma-separated list of attribute names, e.g. Male,Young")
    return names


def attributes_of(args: argparse.Namespace) -> dict[str, float]:
    """Repeated --attr options as a dict; a repeated name adds up. Warns beyond STRENGTH_WARNING."""
    strengths: dict[str, float] = {}
    for name, strength in getattr(args, "attr", []):
        strengths[name] = strengths.get(name, 0.0) + strength
    for name, strength in strengths.items():
        if abs(strength) > STRENGTH_WARNING:
            print(f"warning: {name}={strength:g} is beyond +-{STRENGTH_WARNING:g}; strengths that large give noise "
                  f"and silhouettes, not more {name} (1 = the mean difference between faces with and without it)",
                  file=sys.stderr)
    return strengths


def edits_of(args: argparse.Namespace) -> dict:
    """The pipeline keywords of the attribute options: attributes, keep, keep_mode (and method,
    for the commands with --method linear|guided)."""
    edits = {"attributes": attributes_of(args), "keep": list(dict.fromkeys(args.keep)), "keep_mode": args.keep_mode}
    return {**edits, "method": args.edit_method} if hasattr(args, "edit_method") else edits


# Beyond this, strengths only give noise and silhouettes (the REST API refuses them: schemas.MAX_STRENGTH).
STRENGTH_WARNING = 10.0

# --- the arguments the commands share, and the table -----------------------------------

SEED = _arg("--seed", type=bounded.SEED, default=0, help="random seed (default 0)")
COLUMNS = _arg("--columns", type=bounded.COLUMNS, default=None, help="faces per grid row (default: up to 10)")
PRIOR_SCALE = _arg("--temperature", type=bounded.TEMPERATURE, default=1.0,
                   help="scale of the prior samples (default 1)")
ATTRIBUTE_EDITS = (
    _arg("--attr", action="append", type=attribute_strength, default=[], metavar="NAME=STRENGTH",
         help="add an attribute vector times STRENGTH (repeatable), e.g. --attr Smiling=1.5. "
              "Strength 1 = the mean difference between faces with and without the attribute; "
              "useful strengths lie within +-3, beyond +-10 only noise"),
    _arg("--keep", type=attribute_names, action="extend", default=[], metavar="NAME,NAME",
         help="keep these attributes unchanged while editing, e.g. --keep Male,Young; with --method guided, "
              "--keep '*' keeps every other attribute the classifier knows"),
    _arg("--keep-mode", choices=list(KEEP_MODES), default=DEFAULT_KEEP_MODE,
         help=keep_mode_help() + " (see docs/usage.md)"),
)
EDIT_METHOD = _arg(
    "--method", dest="edit_method", choices=("linear", "guided"), default="linear",
    help="linear (default): add strength x the attribute vector, the same offset for every face (instant); "
         "guided: walk each face along the shipped attribute classifier's gradient, holding --keep attributes "
         "(a path as long as the linear edit's; seconds per face, see docs/usage.md)")
MODEL_OPTIONS = (
    _arg("--model", default=DEFAULT_MODEL, metavar="NAME_OR_PATH",
         help=f"registered model, bundle folder or training run (default: {DEFAULT_MODEL})"),
    _arg("--device", default="auto",
         help="auto (default: a GPU if there is one, else the CPU), cpu, cuda, cuda:N or mps"),
    _arg("--threads", type=bounded.THREADS, default=None, metavar="N",
         help="CPU threads (default: the cores not busy with other work, from the load average)"),
)


def output_options(default_out: str) -> tuple[Argument, ...]:
    return (
        _arg("--out", default=default_out,
             help=f"a .png file gets a grid; any other path is a folder with one PNG per face "
                  f"(default: {default_out})"),
        _arg("--latents", metavar="PATH.npy", help="also save the latent codes of the result (.npy)"),
        _arg("--scale", type=bounded.SCALE, default=1, help="enlarge each face by this integer factor"),
    )


@dataclass(frozen=True)
class SynthesisCommand:
    """One synthesis subcommand: what `--help` says, its own arguments and its pipeline call."""

    name: str
    help: str
    description: str
    epilog: str
    default_out: str
    arguments: tuple[Argument, ...]  # before the shared ones, in --help order
    synthesize: Callable[["FacePipeline", argparse.Namespace], "SynthesisResult"]
    edits: bool = True  # takes --attr
    check: Callable[[argparse.Namespace], None] | None = None  # runs before the model loads


def _check_morph(args: argparse.Namespace) -> None:
    from ..errors import UserError

    if bool(args.start) != bool(args.end):
        raise UserError("give both --from and --to images, or neither for random faces")


def _check_decode(args: argparse.Namespace) -> None:
    args.codes = read_latents(args.latents_file)


# Pivotal tuning of photos (facevae.inference.tuning), on by default for photos.
TUNE_OPTIONS = (
    _arg("--no-tune", action="store_true",
         help="do not tune a decoder copy to each photo (faster; the face is then a look-alike, not the person)"),
    _arg("--tune-steps", type=bounded.TUNE_STEPS, default=None, metavar="N",
         help="steps of the per-photo decoder tuning (default: the library's TuningSettings().steps)"),
)


def tune_steps_of(args: argparse.Namespace) -> int | None:
    """0 with --no-tune, else --tune-steps (None: the default)."""
    return 0 if args.no_tune else args.tune_steps


def _reconstruct(pipe: "FacePipeline", args: argparse.Namespace) -> "SynthesisResult":
    steps = args.refine_steps if args.invert or not pipe.model.has_encoder else 0
    if not pipe.model.has_encoder:
        print(f"note: this model has no encoder; finding each code by {steps} optimisation steps", file=sys.stderr)
    return pipe.reconstruct(args.images, refine_steps=steps, columns=args.columns, whole_image=args.whole_image,
                            tune_steps=tune_steps_of(args))


COMMANDS: tuple[SynthesisCommand, ...] = (
    SynthesisCommand(
        "generate", "generate random faces, optionally with attribute edits",
        "Draw faces from the model's prior. The same --seed gives the same picture, byte for byte.",
        "example: facevae generate -n 70 --seed 1 --attr Smiling=1.5 --attr Eyeglasses=1 --out faces.png",
        "faces.png",
        (_arg("-n", type=bounded.FACES, default=10, help="number of faces (default 10)"), SEED,
         _arg("--temperature", type=bounded.TEMPERATURE, default=1.0,
              help="scale of the prior samples: below 1 gives more typical faces (default 1)"), COLUMNS,
         EDIT_METHOD),
        lambda pipe, args: pipe.generate(n=args.n, seed=args.seed, temperature=args.temperature,
                                         **edits_of(args), columns=args.columns),
    ),
    SynthesisCommand(
        "reconstruct", "encode and decode images (originals above reconstructions)",
        "Find the face in each image, frame it like CelebA's aligned images (as `facevae edit` does), "
        "encode it with the encoder's mean and decode it. Models without an encoder find the code by "
        "optimisation.",
        "example: facevae reconstruct 000001.jpg 000002.jpg --out recon.png",
        "reconstructions.png",
        (_arg("images", nargs="+", metavar="IMAGE", help="image files (PNG, JPEG, WebP, BMP, GIF)"),
         _arg("--invert", action="store_true",
              help="refine each code by optimisation for a closer likeness (see --refine-steps)"),
         _arg("--refine-steps", type=bounded.REFINE_STEPS, default=60,
              help="optimisation steps with --invert, or for models without an encoder (default 60)"),
         _arg("--whole-image", action="store_true",
              help="skip face detection: the pictures are already faces framed like CelebA"),
         _arg("--columns", type=bounded.COLUMNS, default=10, help="images per grid row (default 10)"), *TUNE_OPTIONS),
        _reconstruct, edits=False,
    ),
    SynthesisCommand(
        "arithmetic", "one attribute at several strengths on the same faces",
        "Rows are faces, columns add ATTRIBUTE times each strength; the unmodified column is framed.",
        "example: facevae arithmetic Eyeglasses -n 5 --seed 3 --out glasses.png",
        "arithmetic.png",
        (_arg("attribute", metavar="ATTRIBUTE", help="attribute name, e.g. Smiling"),
         _arg("-n", type=bounded.FACES, default=5, help="number of faces (rows, default 5)"), SEED, PRIOR_SCALE,
         _arg("--strengths", type=strengths, default=DEFAULT_STRENGTHS, metavar="S1,S2,...",
              help=f"comma-separated strengths (default {','.join(map(str, DEFAULT_STRENGTHS))}; "
                   "write --strengths=-3,0,3); "
                   "1 = the mean difference between faces with and without the attribute"), EDIT_METHOD),
        lambda pipe, args: pipe.arithmetic(args.attribute, n=args.n, seed=args.seed, strengths=args.strengths,
                                           temperature=args.temperature, **edits_of(args)),
    ),
    SynthesisCommand(
        "morph", "interpolate between pairs of faces (random or your images)",
        "Each row goes from one face to another in --steps steps. --method slerp follows the sphere, "
        "where the prior puts its faces; linear interpolation passes through blander faces mid-way.",
        "example: facevae morph -n 4 --steps 10 --method slerp --out morph.png",
        "morph.png",
        (_arg("-n", type=bounded.FACES, default=5, help="number of pairs (rows) for random faces (default 5)"),
         _arg("--steps", type=bounded.MORPH_STEPS, default=10, help="faces per row, both ends included (default 10)"),
         _arg("--method", choices=("linear", "slerp"), default="linear", help="interpolation (default linear)"),
         _arg("--seed", type=bounded.whole(0, MAX_SEED - 1), default=0,
              help="random seed: starts use SEED, ends SEED+1 (default 0)"),
         PRIOR_SCALE,
         _arg("--from", dest="start", nargs="+", metavar="IMAGE",
              help="start faces from photos (each face framed like `facevae edit`), one row each"),
         _arg("--to", dest="end", nargs="+", metavar="IMAGE", help="end faces from images, as many as --from"),
         _arg("--whole-image", action="store_true",
              help="skip face detection: the --from/--to pictures are already faces framed like CelebA"),
         *TUNE_OPTIONS),
        lambda pipe, args: pipe.morph(n_pairs=args.n, steps=args.steps, seed=args.seed, method=args.method,
                                      start=args.start, end=args.end, temperature=args.temperature,
                                      whole_image=args.whole_image, tune_steps=tune_steps_of(args), **edits_of(args)),
        check=_check_morph,
    ),
    SynthesisCommand(
        "decode", "draw the faces of saved latent codes (.npy)",
        "Decode latent codes saved with --latents (an N x D or D float array in a .npy file).",
        "example: facevae generate --latents codes.npy && facevae decode codes.npy --attr Smiling=1",
        "decoded.png",
        (_arg("latents_file", metavar="LATENTS.npy", help="the codes to decode"), COLUMNS, EDIT_METHOD),
        lambda pipe, args: pipe.decode(args.codes, **edits_of(args), columns=args.columns),
        check=_check_decode,
    ),
    SynthesisCommand(
        "edit", "edit the face in your photo (smile, glasses, hair colour, ...)",
        "Find the face, frame it like CelebA's aligned images, encode it, apply the --attr edits and "
        "write photo | reconstruction | edited side by side.",
        "example: facevae edit me.jpg --attr Smiling=1.5 --attr Eyeglasses=1 --out result.png",
        "edited.png",
        (_arg("photo", metavar="PHOTO", help="a photo with a face (PNG, JPEG, WebP, BMP, GIF)"),
         _arg("--refine-steps", type=bounded.REFINE_STEPS, default=60,
              help="optimisation steps for a closer likeness (0 = encoder only; default 60)"),
         _arg("--whole-image", action="store_true",
              help="skip face detection: the picture is already a face framed like CelebA"), EDIT_METHOD,
         *TUNE_OPTIONS),
        lambda pipe, args: pipe.edit(args.photo, **edits_of(args), refine_steps=args.refine_steps,
                                     whole_image=args.whole_image, tune_steps=tune_steps_of(args)),
    ),
)


# --- registering and running ------------------------------------------------------------

def register(subparsers: argparse._SubParsersAction) -> None:
    for command in COMMANDS:
        parser = subparsers.add_parser(command.name, help=command.help, description=command.description,
                                       epilog=command.epilog)
        shared = ATTRIBUTE_EDITS if command.edits else ()
        for flags, options in (*command.arguments, *shared, *MODEL_OPTIONS, *output_options(command.default_out)):
            parser.add_argument(*flags, **options)
        parser.set_defaults(run=lambda args, command=command: run(command, args))


def run(command: SynthesisCommand, args: argparse.Namespace) -> int:
    """Check the output paths and the command's inputs, load the model, synthesise, write."""
    from ..atomic import require_parent_folder
    from ..inference.pipeline import FacePipeline
    from ..runtime import set_threads

    require_parent_folder(args.out, "--out")
    if args.latents:
        require_parent_folder(args.latents, "--latents")
    if command.check is not None:
        command.check(args)
    set_threads(args.threads)
    pipeline = FacePipeline.load(args.model, device=args.device)
    args.computed_on = pipeline.runtime.describe()  # said with the result, after any error message
    result = command.synthesize(pipeline, args)
    if command.edits:  # what this model cannot draw, before the user finds out (inference.edit_quality)
        from ..inference.edit_quality import weak_notes

        result.notes = [*result.notes, *weak_notes(pipeline.model, [*attributes_of(args),
                                                                    *filter(None, [getattr(args, "attribute", None)])])]
    return write_result(result, args)


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
