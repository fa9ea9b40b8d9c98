"""`facevae morph`: faces turning into other faces, along a line or the sphere (slerp)."""

from __future__ import annotations

import argparse

from .synthesis_options import (
    add_attribute_option,
    add_model_options,
    add_output_options,
    attributes_of,
    load_pipeline,
    write_result,
)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "morph", help="interpolate between pairs of faces (random or your images)",
        description="Each row goes from one face to another in --steps steps. --method slerp follows the sphere, "
                    "where the prior puts its faces; linear interpolation passes through blander faces mid-way.",
        epilog="example: facevae morph -n 4 --steps 10 --method slerp --out morph.png",
    )
    parser.add_argument("-n", type=int, default=5, help="number of pairs (rows) for random faces (default 5)")
    parser.add_argument("--steps", type=int, default=10, help="faces per row, both ends included (default 10)")
    parser.add_argument("--method", choices=("linear", "slerp"), default="linear", help="interpolation (default linear)")
    parser.add_argument("--seed", type=int, default=0, help="random seed: starts use SEED, ends SEED+1 (default 0)")
    parser.add_argument("--temperature", type=float, default=1.0, help="scale of the prior samples (default 1)")
    parser.add_argument("--from", dest="start", nargs="+", metavar="IMAGE",
                        help="start faces from photos (each face framed like `facevae edit`), one row each")
    parser.add_argument("--to", dest="end", nargs="+", metavar="IMAGE", help="end faces from images, as many as --from")
    parser.add_argument("--whole-image", action="store_true",
                        help="skip face detection: the --from/--to pictures are already faces framed like CelebA")
    add_attribute_option(parser)
    add_model_options(parser)
    add_output_options(parser, "morph.png")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..errors import UserError

    if bool(args.start) != bool(args.end):
        raise UserError("give both --from and --to images, or neither for random faces")
    pipe = load_pipeline(args)
    result = pipe.morph(n_pairs=args.n, steps=args.steps, seed=args.seed, method=args.method,
                        start=args.start, end=args.end, temperature=args.temperature, attributes=attributes_of(args),
                        whole_image=args.whole_image)
    return write_result(result, args)
