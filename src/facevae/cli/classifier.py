"""`facevae classifier train --data CELEBA_OR_CACHE --out DIR`,
`facevae classifier evaluate DIR --data CELEBA_OR_CACHE [--split test]` and
`facevae classifier merge DIR DIR ... --data CELEBA_OR_CACHE --out DIR`."""

from __future__ import annotations

import argparse
from pathlib import Path

from ..limits import MAX_CLASSIFIER_MEMBERS
from . import options


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "classifier", help="train or score the attribute classifier that `facevae evaluate` measures edits with",
        description="A small CNN with one output per labelled attribute, trained from a CelebA folder or a prepared "
                    "cache (at the cache's image size) with a class-balanced loss. DIR gets config.json, "
                    "classifier.safetensors and metrics.json (validation ROC AUC and accuracy per attribute).",
        epilog="examples:\n"
               "  facevae classifier train --data ~/data/celeba --out runs/classifier\n"
               "  facevae classifier evaluate runs/classifier --data ~/data/celeba --split test\n"
               "  facevae classifier merge runs/light runs/heavier --data ~/data/celeba --out runs/both",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    train = actions.add_parser("train", help="train a classifier into DIR")
    train.add_argument("--data", required=True, metavar="CELEBA_OR_CACHE",
                       help="a CelebA folder, a labelled image folder or a prepared cache")
    train.add_argument("--out", required=True, metavar="DIR", help="the classifier folder to write")
    train.add_argument("--size", type=int, choices=(32, 64, 128, 256), default=64,
                       help="image size when --data is a raw folder (a cache keeps its own; default 64)")
    train.add_argument("--epochs", type=options.whole(1, 1000), default=None,
                       help="most epochs (default: enough for about 1,500 steps, 3 to 60 epochs; training stops "
                            "early when validation AUC stops improving)")
    train.add_argument("--batch-size", type=options.whole(2, 4096), default=None,
                       help="(default 128; smaller for small data)")
    train.add_argument("--patience", type=options.whole(0, 1000), default=5,
                       help="stop after this many epochs without a better mean validation AUC, keeping the best "
                            "epoch (default 5; 0 never stops early)")
    train.add_argument("--noise", type=options.number(0.0, 1.0), default=0.05,
                       help="largest Gaussian noise added to training images (default 0.05; 0 turns it off)")
    train.add_argument("--blur", type=options.number(0.0, 1.0), default=0.5,
                       help="share of training images mixed with a blurred copy (default 0.5)")
    train.add_argument("--shift", type=options.number(0.0, 16.0), default=2.0,
                       help="pixels of random translation, with small random scaling and rotation (default 2)")
    train.add_argument("--lr", type=options.number(0.0, 1.0, low_open=True), default=2e-3,
                       help="AdamW learning rate (default 2e-3)")
    train.add_argument("--channels", default="32,64,128,256",
                       help="channels of the stride-2 stages, comma-separated (default 32,64,128,256)")
    train.add_argument("--convs-per-stage", type=int, default=1, choices=(1, 2),
                       help="2 adds a stride-1 convolution to each stage (deeper, about 3x slower; default 1)")
    train.add_argument("--members", type=options.whole(1, MAX_CLASSIFIER_MEMBERS), default=1, metavar="N",
                       help="an ensemble of N networks whose logits are averaged (ranks faces better and gives "
                            "guided edits steadier gradients; N times the training time; default 1)")
    train.add_argument("--attributes", default="", metavar="NAME,NAME",
                       help="learn only these attributes (default: every labelled one)")
    train.add_argument("--balance-pairs", default="", metavar="A:B,C:D",
                       help="weight the A and B outputs' losses by the four joint cells of their labels, so that "
                            "neither reads the other (e.g. Smiling:Male: CelebA's women smile more often; default: "
                            "none)")
    train.add_argument("--seed", type=options.SEED, default=0)
    train.add_argument("--precision", default="auto", choices=("auto", "fp32", "bf16"),
                       help="auto: bf16 autocast on CPUs/GPUs that compute it natively (default)")
    train.add_argument("--device", default="auto",
                       help="auto (default: a GPU if there is one, else the CPU), cpu, cuda, cuda:N or mps")
    train.add_argument("--quiet", action="store_true", help="no progress bars")
    train.set_defaults(run=run_train)
    evaluate = actions.add_parser("evaluate", help="score a trained classifier on a split")
    evaluate.add_argument("folder", metavar="DIR", help="a classifier folder")
    evaluate.add_argument("--data", required=True, metavar="CELEBA_OR_CACHE")
    evaluate.add_argument("--split", default="test", choices=("train", "valid", "test"), help="(default test)")
    evaluate.add_argument("--max-images", type=options.IMAGES, default=None,
                          help="score only the first N images of the split")
    evaluate.add_argument("--quiet", action="store_true", help="no progress bars")
    evaluate.set_defaults(run=run_evaluate)
    merge = actions.add_parser("merge", help="join classifiers of one architecture into one ensemble",
                               description="Every network of every DIR becomes a member of OUT (their logits "
                                           "averaged): classifiers trained with different recipes in one ensemble. "
                                           "OUT is validated on the data's valid split.")
    merge.add_argument("folders", nargs="+", metavar="DIR", help="two or more classifier folders")
    merge.add_argument("--data", required=True, metavar="CELEBA_OR_CACHE",
                       help="the data to validate the ensemble on (its valid split)")
    merge.add_argument("--out", required=True, metavar="OUT", help="the classifier folder to write")
    merge.add_argument("--quiet", action="store_true", help="no progress bars")
    merge.set_defaults(run=run_merge)


def _names(text: str) -> tuple[str, ...]:
    return tuple(part.strip() for part in text.split(",") if part.strip())


def run_train(args: argparse.Namespace) -> int:
    from ..config import ConfigError
    from ..data.cache import is_cache
    from ..errors import UserError
    from ..evaluation.classifier_training import ClassifierTrainConfig, train_classifier
    from ..evaluation.data import open_cache

    try:
        channels = tuple(int(part) for part in _names(args.channels))
    except ValueError:
        raise UserError(f"--channels must be numbers separated by commas, e.g. 32,64,128; got {args.channels!r}"
                        ) from None
    try:
        config = ClassifierTrainConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, seed=args.seed,
                                       shift=args.shift, blur=args.blur, noise=args.noise, patience=args.patience,
                                       precision=args.precision, device=args.device,
                                       attributes=_names(args.attributes),
                                       balance_pairs=_names(args.balance_pairs))
    except ConfigError as error:
        raise UserError(str(error)) from None
    _check_channels(channels)  # before a raw folder is prepared: minutes of work for a config that cannot be built
    cache = open_cache(args.data, None if is_cache(args.data) else args.size)
    out = train_classifier(cache, args.out, config, channels, progress=not args.quiet,
                           convs_per_stage=args.convs_per_stage, members=args.members)
    _print_metrics(out / "metrics.json", "validation")
    print(f"wrote classifier {out}")
    return 0


def _check_channels(channels: tuple[int, ...]) -> None:
    """The classifier's size at the largest image that uses every stage, checked without allocating."""
    from ..config import ConfigError
    from ..errors import UserError
    from ..model.classifier import ClassifierConfig, check_classifier_size

    try:
        config = ClassifierConfig(2 ** (len(channels) + 2), ("attribute",), channels)
    except ConfigError as error:
        raise UserError(f"--channels: {error}") from None
    check_classifier_size(config, f"--channels {','.join(map(str, channels))}")


def run_evaluate(args: argparse.Namespace) -> int:
    from ..evaluation.classifier_training import score_split, split_metrics
    from ..evaluation.data import open_cache
    from ..evaluation.output import check_writable, writing
    from ..evaluation.report import json_bytes
    from ..imaging import write_atomic
    from ..model import classifier as clf

    model = clf.load(args.folder)
    target = Path(args.folder).expanduser() / f"evaluation_{args.split}.json"
    check_writable(target)  # before the scoring, not after it
    _, meta = clf.read_config(args.folder)
    data = meta.get("data", {})
    cache = open_cache(args.data, model.image_size, data.get("crop", "squash"), data.get("crop_size", 148))
    scores = score_split(model, cache, args.split, max_images=args.max_images, progress=not args.quiet)
    metrics = {"split": args.split, "data": str(cache.path), **split_metrics(scores, model.attribute_names)}
    with writing(target):
        path = write_atomic(target, json_bytes(metrics))
    _print_table(metrics["auc"], metrics["accuracy"], f"{args.split} split, {metrics['images']} images")
    print(f"wrote {path}")
    return 0


def run_merge(args: argparse.Namespace) -> int:
    from ..evaluation.classifier_merge import merge_classifiers
    from ..evaluation.data import open_cache
    from ..model import classifier as clf

    config, meta = clf.read_config(args.folders[0])
    data = meta.get("data", {})
    cache = open_cache(args.data, config.image_size, data.get("crop", "squash"), data.get("crop_size", 148))
    out = merge_classifiers(args.folders, args.out, cache, progress=not args.quiet)
    _print_metrics(out / "metrics.json", "validation")
    print(f"wrote classifier {out} ({clf.read_config(out)[0].members} members)")
    return 0


def _print_metrics(path, what: str) -> None:
    import json

    metrics = json.loads(path.read_text())
    _print_table(metrics["val_auc"], metrics["val_accuracy"], f"{what}, {metrics['images']} images")


def _print_table(auc: dict, accuracy: dict, title: str) -> None:
    width = max(len(name) for name in auc)
    print(f"{'attribute':<{width}}  ROC AUC  accuracy   ({title})")
    for name in auc:
        shown = "   n/a " if auc[name] is None else f"{auc[name]:7.3f}"
        print(f"{name:<{width}}  {shown}  {accuracy[name]:8.3f}")
