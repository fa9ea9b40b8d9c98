"""`facevae prepare DATA_DIR`: decode a CelebA or image folder once into a training cache."""

from __future__ import annotations

import argparse

from . import options


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "prepare", help="decode a CelebA or image folder once into a fast uint8 training cache",
        description="Decode every image of DATA_DIR once (all cores, reduced-size JPEG decoding) into a "
                    "uint8 cache with file names, attributes and the train/valid/test split. Accepts the "
                    "official CelebA layout, the Kaggle copy, torchvision's celeba/ folder, or any folder of "
                    ".jpg/.png/.webp images with an optional attribute CSV. Running it again reuses a "
                    "complete cache made from the same files with the same options.",
    )
    parser.add_argument("data_dir", metavar="DATA_DIR", help="the data folder")
    parser.add_argument("--size", type=int, choices=(32, 64, 128, 256), default=64,
                        help="image side in pixels (default 64)")
    parser.add_argument("--crop", choices=("squash", "center"), default="squash",
                        help="squash: resize the whole frame, as the original project did (default); "
                             "center: a centred square of --crop-size pixels of a 178-wide CelebA frame")
    parser.add_argument("--crop-size", type=options.whole(1, 100_000), default=148,
                        help="side of the centred square for --crop center, in pixels of a 178-pixel-wide frame "
                             "(scaled with other widths; default 148)")
    parser.add_argument("--out", metavar="CACHE_DIR",
                        help="where to write the cache (default DATA_DIR/.facevae-cache/SIZE-CROP)")
    parser.add_argument("--workers", type=options.WORKERS, default=0, help="decoding processes (default 0: all cores)")
    parser.add_argument("--val-fraction", type=options.FRACTION, default=0.1,
                        help="validation share when there is no partition file (default 0.1)")
    parser.add_argument("--test-fraction", type=options.FRACTION, default=0.1,
                        help="test share when there is no partition file (default 0.1)")
    parser.add_argument("--split-seed", type=options.SEED, default=0, help="seed of that split (default 0)")
    parser.add_argument("--force", action="store_true", help="rebuild even if a matching cache exists")
    parser.add_argument("--quiet", action="store_true", help="no progress bar or notes")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..config import Preprocessing
    from ..data.prepare import describe_cache, prepare

    path = prepare(args.data_dir, out=args.out, preprocessing=Preprocessing(args.size, args.crop, args.crop_size),
                   workers=args.workers, val_fraction=args.val_fraction, test_fraction=args.test_fraction,
                   split_seed=args.split_seed, progress=not args.quiet, force=args.force)
    print(describe_cache(path))
    return 0
