"""`facevae reconstruct`: images through the model and back, originals above reconstructions."""

from __future__ import annotations

import argparse

from .synthesis_options import add_model_options, add_output_options, load_pipeline, write_result


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "reconstruct", help="encode and decode images (originals above reconstructions)",
        description="Find the face in each image, frame it like CelebA's aligned images (as `facevae edit` does), "
                    "encode it with the encoder's mean and decode it. Models without an encoder find the code by "
                    "optimisation.",
        epilog="example: facevae reconstruct 000001.jpg 000002.jpg --out recon.png",
    )
    parser.add_argument("images", nargs="+", metavar="IMAGE", help="image files (PNG, JPEG, WebP, BMP, GIF)")
    parser.add_argument("--invert", action="store_true",
                        help="refine each code by optimisation for a closer likeness (see --refine-steps)")
    parser.add_argument("--refine-steps", type=int, default=100,
                        help="optimisation steps with --invert, or for models without an encoder (default 100)")
    parser.add_argument("--whole-image", action="store_true",
                        help="skip face detection: the pictures are already faces framed like CelebA")
    parser.add_argument("--columns", type=int, default=10, help="images per grid row (default 10)")
    add_model_options(parser)
    add_output_options(parser, "reconstructions.png")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import sys

    pipe = load_pipeline(args)
    steps = args.refine_steps if args.invert or not pipe.model.has_encoder else 0
    if not pipe.model.has_encoder:
        print(f"note: this model has no encoder; finding each code by {steps} optimisation steps", file=sys.stderr)
    result = pipe.reconstruct(args.images, refine_steps=steps, columns=args.columns,
                              whole_image=args.whole_image)
    return write_result(result, args)
