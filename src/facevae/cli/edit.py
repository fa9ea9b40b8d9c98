"""`facevae edit`: your photo with attribute edits (face found and framed like CelebA)."""

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
        "edit", help="edit the face in your photo (smile, glasses, hair colour, ...)",
        description="Find the face, frame it like CelebA's aligned images, encode it, apply the --attr edits and "
                    "write photo | reconstruction | edited side by side.",
        epilog="example: facevae edit me.jpg --attr Smiling=1.5 --attr Eyeglasses=1 --out result.png",
    )
    parser.add_argument("photo", metavar="PHOTO", help="a photo with a face (PNG, JPEG, WebP, BMP, GIF)")
    parser.add_argument("--refine-steps", type=int, default=100,
                        help="optimisation steps for a closer likeness (0 = encoder only; default 100)")
    parser.add_argument("--whole-image", action="store_true",
                        help="skip face detection: the picture is already a face framed like CelebA")
    add_attribute_option(parser)
    add_model_options(parser)
    add_output_options(parser, "edited.png")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    pipe = load_pipeline(args)
    result = pipe.edit(args.photo, **edits_of(args), refine_steps=args.refine_steps, whole_image=args.whole_image)
    return write_result(result, args)
