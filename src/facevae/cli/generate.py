"""`facevae generate`: faces from the prior, with a seed, a temperature and attribute edits."""

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


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "generate", help="generate random faces, optionally with attribute edits",
        description="Draw faces from the model's prior. The same --seed gives the same picture, byte for byte.",
        epilog="example: facevae generate -n 70 --seed 1 --attr Smiling=1.5 --attr Eyeglasses=1 --out faces.png",
    )
    parser.add_argument("-n", type=int, default=10, help="number of faces (default 10)")
    parser.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    parser.add_argument("--temperature", type=float, default=1.0,
                        help="scale of the prior samples: below 1 gives more typical faces (default 1)")
    parser.add_argument("--columns", type=int, default=None, help="faces per grid row (default: up to 10)")
    add_attribute_option(parser)
    add_model_options(parser)
    add_output_options(parser, "faces.png")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    pipe = load_pipeline(args)
    result = pipe.generate(n=args.n, seed=args.seed, temperature=args.temperature,
                           **edits_of(args), columns=args.columns)
    return write_result(result, args)
