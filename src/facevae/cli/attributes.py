"""`facevae attributes`: compute attribute vectors from labels (or fit them from a classifier's
scores) into a bundle, orthogonal variants, and a report of how the vectors are entangled."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from ..errors import UserError
from ..hub.registry import DEFAULT_MODEL
from . import options

if TYPE_CHECKING:
    from ..model.bundle import FaceModel


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "attributes", help="compute attribute vectors from labelled images into a bundle; entanglement report",
        description="With --data: encode one split of a CelebA folder or prepared cache once and store, for each "
                    "labelled attribute, mean code with it minus mean code without it (and the counts) in the "
                    "bundle: strength 1 of a vector is the mean difference between faces with and without the "
                    "attribute. --from-classifier fits directions in the same unit from a classifier's scores of "
                    "sampled faces. --orthogonal adds directions with other attributes projected out. --report writes "
                    "the cosine-similarity matrix of the bundle's vectors (cosine.png, cosine.csv).",
        epilog="examples:\n"
               "  facevae attributes --model runs/celeba --data ~/data/celeba --report report/\n"
               "  facevae attributes --model celeba64-original --orthogonal Eyeglasses:Male,Young\n"
               "  facevae attributes --model celeba64-original --from-classifier my-classifier --out my-bundle\n"
               "  facevae generate --attr Eyeglasses_orthogonal=2",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--model", default=DEFAULT_MODEL, metavar="RUN_OR_BUNDLE",
                        help="training run, bundle folder or registered model (default celeba64-original)")
    parser.add_argument("--data", metavar="DATA_OR_CACHE", help="CelebA / labelled image folder, or a prepared cache")
    parser.add_argument("--split", default="train", choices=("train", "valid", "test"), help="(default train)")
    parser.add_argument("--batch-size", type=options.whole(1, 4096), default=256,
                        help="images per encoder batch (default 256)")
    parser.add_argument("--max-images", type=options.IMAGES, default=None,
                        help="use only the first N images of the split")
    parser.add_argument("--orthogonal", action="append", default=[], metavar="TARGET:OTHER,OTHER",
                        help="add TARGET_orthogonal: TARGET without its components along OTHERs (repeatable)")
    parser.add_argument("--from-classifier", metavar="CLASSIFIER_DIR",
                        help="fit directions from a facevae classifier's scores of sampled faces (InterFaceGAN-style; "
                             "works for decoder-only models); stored as NAME + --suffix")
    parser.add_argument("--samples", type=options.whole(1, 10**6), default=2000,
                        help="with --from-classifier: faces to sample (2000)")
    parser.add_argument("--seed", type=options.SEED, default=0,
                        help="with --from-classifier: sampling seed (default 0)")
    parser.add_argument("--suffix", default="_fitted",
                        help="with --from-classifier: appended to each name (default _fitted; '' replaces the "
                             "mean-difference vectors of the same name)")
    parser.add_argument("--report", metavar="DIR", help="write cosine.png and cosine.csv of the vectors to DIR")
    parser.add_argument("--out", metavar="BUNDLE_DIR",
                        help="write the updated bundle here instead of updating the model's bundle in place")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import sys

    from ..atomic import require_parent_folder
    from ..config import DataConfig
    from ..data.prepare import ensure_cache
    from ..inference import attributes as attrs
    from ..interop.loading import load, resolve_model_path
    from ..model.bundle import save_bundle

    if not (args.data or args.orthogonal or args.report or args.from_classifier):
        raise UserError("nothing to do: give --data to compute vectors, --from-classifier DIR, "
                        "--orthogonal TARGET:OTHER,... or --report DIR")
    for flag, value in (("--out", args.out), ("--report", args.report)):
        if value:
            require_parent_folder(value, flag)
    path = resolve_model_path(args.model)
    model = load(path)
    changed = False
    if args.data:
        pre = model.preprocessing
        cache = ensure_cache(args.data, DataConfig(crop=pre.crop, crop_size=pre.crop_size), model.config.image_size)
        result = attrs.compute_attribute_vectors(model, cache, args.split, args.batch_size, args.max_images)
        for name, reason in result.skipped.items():
            print(f"left out {name}: {reason}", file=sys.stderr)
        if not result.vectors:
            raise UserError("no attribute has both positive and negative examples in this split; nothing to store")
        model.attributes, model.attribute_counts = result.vectors, result.counts
        model.provenance["attributes"] = {"data": str(cache.path), "split": args.split,
                                          "images": sum(next(iter(result.counts.values())))}
        print(f"computed {len(result.vectors)} attribute vectors from {cache.path} ({args.split} split)")
        changed = True
    if args.from_classifier:
        add_fitted(model, args)
        changed = True
    for spec in args.orthogonal:
        target, others = parse_orthogonal(spec)
        name = target + attrs.ORTHOGONAL_SUFFIX
        model.attributes[name] = attrs.orthogonalize(model.attributes, target, others)
        if target in model.attribute_counts:
            model.attribute_counts[name] = model.attribute_counts[target]
        model.provenance.setdefault("orthogonal", {})[name] = {"target": target, "without": others}
        print(f"added {name}: {target} without its components along {', '.join(others)}")
        changed = True
    if changed:
        out = save_bundle(model, args.out or path)
        print(f"wrote bundle {out}")
    if args.report:
        from ..evaluation.similarity import write_similarity_report

        for written in write_similarity_report(model.attributes, args.report):
            print(f"wrote {written}")
    return 0


def parse_orthogonal(spec: str) -> tuple[str, list[str]]:
    """`TARGET:OTHER,OTHER` -> (target, [others])."""
    target, sep, rest = spec.partition(":")
    others = [name.strip() for name in rest.split(",") if name.strip()]
    if not sep or not target.strip() or not others:
        raise UserError(f"'{spec}' is not TARGET:OTHER,OTHER, e.g. Eyeglasses:Male,Young")
    return target.strip(), others


def add_fitted(model: "FaceModel", args: argparse.Namespace) -> None:
    """Fit one direction per classifier attribute and add it to the model's vectors."""
    import sys

    from ..evaluation.classifier import load as load_classifier
    from ..inference.fitted import fit_directions
    from ..inference.pipeline import FacePipeline

    classifier = load_classifier(args.from_classifier)
    if classifier.image_size != model.config.image_size:
        raise UserError(f"the classifier in {args.from_classifier} takes {classifier.image_size}x"
                        f"{classifier.image_size} images but the model draws {model.config.image_size}x"
                        f"{model.config.image_size}; train a classifier at the model's size")
    classifier = classifier.to(model.device).eval()
    fitted = fit_directions(FacePipeline(model), classifier.probabilities, list(classifier.attribute_names),
                            samples=args.samples, seed=args.seed)
    for name, reason in fitted.skipped.items():
        print(f"left out {name}: {reason}", file=sys.stderr)
    for name, vector in fitted.vectors.items():
        model.attributes[name + args.suffix] = vector
        model.attribute_counts[name + args.suffix] = fitted.counts[name]
    model.provenance["fitted"] = {"classifier": str(args.from_classifier), "samples": args.samples,
                                  "seed": args.seed, "names": [n + args.suffix for n in fitted.vectors]}
    print(f"fitted {len(fitted.vectors)} directions from {args.from_classifier} on {args.samples} sampled faces")
