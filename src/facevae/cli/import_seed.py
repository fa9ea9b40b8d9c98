"""`facevae import-seed (vae.pth | --encoder E --decoder D) [--attributes A.json] --out BUNDLE`."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "import-seed",
        help="convert the seed PyTorch port's .pth state dicts into a bundle",
        description="Read the seed port's vae.pth, or its decoder.pth (and encoder.pth), loaded safely "
                    "with weights_only, and write a facevae bundle with the 'seed' architecture.",
    )
    parser.add_argument("vae", nargs="?", metavar="vae.pth", default=None, help="the seed's whole-VAE state dict")
    parser.add_argument("--encoder", metavar="E.pth", default=None, help="the seed's encoder.pth")
    parser.add_argument("--decoder", metavar="D.pth", default=None, help="the seed's decoder.pth")
    parser.add_argument("--attributes", metavar="A.json", default=None,
                        help="attribute vectors as in the original's attributes_embedings.json")
    parser.add_argument("--out", required=True, metavar="BUNDLE", help="bundle folder to write")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..atomic import require_parent_folder
    from ..interop.keras import read_attribute_vectors
    from ..interop.seed import import_seed
    from ..model.bundle import save_bundle

    require_parent_folder(args.out, "--out")
    model = import_seed(args.vae, args.encoder, args.decoder)
    if args.attributes:
        model.attributes = read_attribute_vectors(args.attributes, model.latent_dim)
        model.provenance["imported_files"]["attributes"] = args.attributes
    path = save_bundle(model, args.out)
    print(f"Wrote bundle {path} ({model.contents()}; seed architecture, {model.config.image_size}px, "
          f"latent {model.latent_dim})")
    return 0
