"""`facevae evaluate MODEL [MODEL ...] --data CELEBA_OR_CACHE [--classifier DIR] --out DIR`."""

from __future__ import annotations

import argparse
import sys

from . import options


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "evaluate", help="compare models: reconstruction quality and speed, and (with a classifier) edit quality",
        description="For each model: MSE, PSNR, SSIM and KL of reconstructing a split (decoder-only models by "
                    "bounded inversion), encode and decode speed; with --classifier, for every attribute the model "
                    "and the classifier both know, how much an edit from -2 to +2 raises its attribute (success), "
                    "moves the others (leak) and changes the picture outside the face. Writes report.md, "
                    "metrics.json, reconstruction.csv, edits.csv and PNG plots to DIR. The plan and a time "
                    "estimate for this machine are printed first.",
        epilog="examples:\n"
               "  facevae evaluate celeba64-original runs/mine --data ~/data/celeba --out eval/\n"
               "  facevae evaluate runs/mine --data cache/ --classifier runs/classifier --out eval/ --quick",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("models", nargs="+", metavar="MODEL", help="training runs, bundle folders or registered models")
    parser.add_argument("--data", required=True, metavar="CELEBA_OR_CACHE",
                        help="a CelebA folder, an image folder or a prepared cache at the models' image size")
    parser.add_argument("--classifier", metavar="DIR",
                        help="an attribute classifier folder (`facevae classifier train`), or 'shipped': the "
                             "CelebA classifier facevae ships (64px)")
    parser.add_argument("--out", required=True, metavar="DIR",
                        help="the report folder to write: new, empty, or an earlier report (replaced)")
    parser.add_argument("--split", default="test", choices=("train", "valid", "test", "all"),
                        help="which images of the data (default test; all: every image, e.g. a folder of photos)")
    parser.add_argument("--max-images", type=options.IMAGES, default=None,
                        help="images of the split per model (default 200; 64 with --quick)")
    parser.add_argument("--edit-images", type=options.IMAGES, default=None,
                        help="codes edited per model and attribute (the first of the split; default 50; "
                             "16 with --quick)")
    parser.add_argument("--invert-steps", type=options.REFINE_STEPS, default=None,
                        help="Adam steps per image for models without an encoder (default 60; 20 with --quick)")
    parser.add_argument("--quick", action="store_true",
                        help="a rough comparison in about a minute per model: smaller defaults for the three sizes")
    parser.add_argument("--methods", default="linear", metavar="linear,guided",
                        help="edit methods scored side by side (default linear; guided walks each face along the "
                             "--guide classifier's gradient, see docs/usage.md)")
    parser.add_argument("--guide", metavar="DIR", default=None,
                        help="the classifier that steers guided edits (default: the shipped one); the report warns "
                             "when it is also the --classifier that judges them")
    parser.add_argument("--record-quality", action="store_true",
                        help="store each model's linear edit quality in its bundle folder (edit_quality.json), so the "
                             "CLI, GUI and API mark the attributes it draws weakly")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..evaluation.evaluate import evaluate_models
    from ..evaluation.plan import DEFAULT_SIZES, QUICK_SIZES

    sizes = {**(QUICK_SIZES if args.quick else DEFAULT_SIZES),
             **{key: getattr(args, key) for key in DEFAULT_SIZES if getattr(args, key) is not None}}
    out = evaluate_models(args.models, args.data, args.out, classifier=args.classifier, split=args.split,
                          **sizes, progress=not args.quiet, say=lambda text: print(text, file=sys.stderr, flush=True),
                          methods=tuple(part.strip() for part in args.methods.split(",") if part.strip()),
                          guide=args.guide, record_quality=args.record_quality)
    print((out / "report.md").read_text(encoding="utf-8").split("\n![")[0].rstrip())
    print(f"\nwrote {out}")
    return 0
