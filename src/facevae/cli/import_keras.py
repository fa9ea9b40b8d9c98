"""`facevae import-keras FILE.keras [--encoder E.keras] [--attributes A.json] --out BUNDLE`."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "import-keras",
        help="convert the original TensorFlow/Keras project's .keras files into a bundle",
        description="Read the original project's decoder.keras (or the whole vae.keras), optionally its "
                    "encoder.keras and attributes_embedings.json, and write a facevae bundle. Keras and "
                    "TensorFlow are not needed.",
    )
    parser.add_argument("model", metavar="FILE.keras", help="decoder.keras or vae.keras")
    parser.add_argument("--encoder", metavar="E.keras", default=None,
                        help="encoder.keras (with a decoder-only FILE); without an encoder the bundle can "
                             "generate and edit but not encode photos directly")
    parser.add_argument("--attributes", metavar="A.json", default=None,
                        help="attributes_embedings.json: attribute name -> latent vector")
    parser.add_argument("--out", required=True, metavar="BUNDLE", help="bundle folder to write")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..atomic import require_parent_folder
    from ..interop.keras import import_keras
    from ..model.bundle import save_bundle

    require_parent_folder(args.out, "--out")
    model = import_keras(args.model, args.encoder, args.attributes)
    path = save_bundle(model, args.out)
    print(f"Wrote bundle {path} ({model.contents()}; {model.config.image_size}px, latent {model.latent_dim})")
    return 0
