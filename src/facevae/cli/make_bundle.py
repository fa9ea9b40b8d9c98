"""`facevae bundle RUN_DIR [--checkpoint best|last] [--out DIR]`: a run's inference bundle."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "bundle",
        help="make the inference bundle of a training run from its best (or last) checkpoint",
        description="Write a bundle (config.json + safetensors weights, no pickle) from a run's "
                    "checkpoints/best.pt or last.pt. Training does this itself when it ends; use this for a "
                    "run that was stopped, or to bundle the last weights instead of the best.",
    )
    parser.add_argument("run_dir", metavar="RUN_DIR", help="the training run folder (facevae train --out)")
    parser.add_argument("--checkpoint", choices=("best", "last"), default="best",
                        help="which checkpoint (default: best validation loss)")
    parser.add_argument("--out", metavar="DIR", default=None, help="bundle folder (default: RUN_DIR/bundle)")
    parser.add_argument("--no-attributes", action="store_true",
                        help="skip the attribute vectors (they need one encoder pass over the training images)")
    parser.add_argument("--device", default="auto", help="device for that pass: auto (default), cpu, cuda, mps")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..atomic import require_parent_folder
    from ..runtime import resolve_device
    from ..training.run import make_bundle

    if args.out:
        require_parent_folder(args.out, "--out")
    path = make_bundle(args.run_dir, args.checkpoint, args.out, attributes=not args.no_attributes,
                       device=resolve_device(args.device))
    print(f"Bundle written: {path}")
    return 0
