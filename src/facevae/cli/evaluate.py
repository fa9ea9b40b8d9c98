"""`facevae evaluate MODEL [MODEL ...] --data CELEBA_OR_CACHE [--classifier DIR] --out DIR`."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "evaluate", help="compare models: reconstruction quality and speed, and (with a classifier) edit quality",
        description="For each model: MSE, PSNR, SSIM and KL of reconstructing a split (decoder-only models by "
                    "bounded inversion), encode and decode speed; with --classifier, for every attribute the model "
                    "and the classifier both know, how much an edit from -2 to +2 raises its attribute (success), "
                    "moves the others (leak) and changes the picture outside the face. Writes report.md, "
                    "metrics.json, reconstruction.csv, edits.csv and PNG plots to DIR.",
        epilog="examples:\n"
               "  facevae evaluate celeba64-original runs/mine --data ~/data/celeba --out eval/\n"
               "  facevae evaluate runs/mine --data cache/ --classifier runs/classifier --out eval/ --max-images 200",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("models", nargs="+", metavar="MODEL", help="training runs, bundle folders or registered models")
    parser.add_argument("--data", required=True, metavar="CELEBA_OR_CACHE",
                        help="a CelebA folder, an image folder or a prepared cache at the models' image size")
    parser.add_argument("--classifier", metavar="DIR",
                        help="an attribute classifier folder (`facevae classifier train`)")
    parser.add_argument("--out", required=True, metavar="DIR",
                        help="the report folder to write: new, empty, or an earlier report (replaced)")
    parser.add_argument("--split", default="test", choices=("train", "valid", "test", "all"),
                        help="which images of the data (default test; all: every image, e.g. a folder of photos)")
    parser.add_argument("--max-images", type=int, default=500, help="images of the split per model (default 500)")
    parser.add_argument("--edit-images", type=int, default=100,
                        help="codes edited per model and attribute (the first of the split; default 100)")
    parser.add_argument("--invert-steps", type=int, default=100,
                        help="Adam steps per image for models without an encoder (default 100)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..evaluation.evaluate import evaluate_models

    out = evaluate_models(args.models, args.data, args.out, classifier=args.classifier, split=args.split,
                          max_images=args.max_images, edit_images=args.edit_images, invert_steps=args.invert_steps,
                          progress=not args.quiet)
    print((out / "report.md").read_text(encoding="utf-8").split("\n![")[0].rstrip())
    print(f"\nwrote {out}")
    return 0
