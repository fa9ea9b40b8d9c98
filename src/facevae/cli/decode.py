"""`facevae decode`: draw the faces of saved latent codes (.npy), optionally edited."""

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
        "decode", help="draw the faces of saved latent codes (.npy)",
        description="Decode latent codes saved with --latents (an N x D or D float array in a .npy file).",
        epilog="example: facevae generate --latents codes.npy && facevae decode codes.npy --attr Smiling=1",
    )
    parser.add_argument("latents_file", metavar="LATENTS.npy", help="the codes to decode")
    parser.add_argument("--columns", type=int, default=None, help="faces per grid row (default: up to 10)")
    add_attribute_option(parser)
    add_model_options(parser)
    add_output_options(parser, "decoded.png")
    parser.set_defaults(run=run)


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


def run(args: argparse.Namespace) -> int:
    codes = read_latents(args.latents_file)
    pipe = load_pipeline(args)
    return write_result(pipe.decode(codes, **edits_of(args), columns=args.columns), args)
