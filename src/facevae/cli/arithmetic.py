"""`facevae arithmetic`: the same faces with one attribute from -3 to +3 (the original's grid)."""

from __future__ import annotations

import argparse

from .synthesis_options import (
    add_attribute_option,
    add_model_options,
    add_output_options,
    edits_of,
    load_pipeline,
    write_result,
)


def strengths(text: str) -> tuple[float, ...]:
    try:
        values = tuple(float(v) for v in text.split(",") if v.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(f"'{text}' is not a comma-separated list of numbers, e.g. -2,-1,0,1,2")
    if not values:
        raise argparse.ArgumentTypeError("give at least one strength")
    return values


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "arithmetic", help="one attribute at several strengths on the same faces",
        description="Rows are faces, columns add ATTRIBUTE times each strength; the unmodified column is framed.",
        epilog="example: facevae arithmetic Eyeglasses -n 5 --seed 3 --out glasses.png",
    )
    parser.add_argument("attribute", metavar="ATTRIBUTE", help="attribute name, e.g. Smiling")
    parser.add_argument("-n", type=int, default=5, help="number of faces (rows, default 5)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--temperature", type=float, default=1.0, help="scale of the prior samples (default 1)")
    parser.add_argument("--strengths", type=strengths, default=(-3, -2, -1, 0, 1, 2, 3), metavar="S1,S2,...",
                        help="comma-separated strengths (default -3,-2,-1,0,1,2,3; write --strengths=-3,0,3); "
                             "1 = the mean difference between faces with and without the attribute")
    add_attribute_option(parser)
    add_model_options(parser)
    add_output_options(parser, "arithmetic.png")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    pipe = load_pipeline(args)
    result = pipe.arithmetic(args.attribute, n=args.n, seed=args.seed, strengths=args.strengths,
                             temperature=args.temperature, **edits_of(args))
    return write_result(result, args)
