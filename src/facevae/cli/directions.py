"""`facevae directions`: discovered directions (SeFa) of any model, labelled or not, as a
picture, optionally named and stored in the bundle like attribute vectors."""

from __future__ import annotations

import argparse

from ..edit_choices import DEFAULT_STRENGTHS
from ..hub.registry import DEFAULT_MODEL
from ..limits import MAX_FACES
from . import options
from .synthesis import strengths as strength_list


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "directions", help="discover edit directions of a model without labels (SeFa); picture and store",
        description="Closed-form factorisation of the decoder's first layer (SeFa): the latent directions that "
                    "change the decoder's first layer most, largest first, each a unit vector (strength 1 = one "
                    "prior standard deviation). Writes one row per direction: the same face at each strength. "
                    "--store adds them to the bundle as discovered_0, discovered_1, ... (or your --name), usable "
                    "as --attr discovered_0=2 like attribute vectors.",
        epilog="examples:\n"
               "  facevae directions --model runs/faces --count 8 --out directions.png\n"
               "  facevae directions --model runs/faces --count 8 --name 0=Pose --name 3=Light --store\n"
               "  facevae generate --model runs/faces --attr Pose=2",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--model", default=DEFAULT_MODEL, metavar="NAME_OR_PATH",
                        help=f"registered model, bundle folder or training run (default: {DEFAULT_MODEL})")
    parser.add_argument("--count", type=options.whole(1, MAX_FACES), default=8, help="how many directions (default 8)")
    parser.add_argument("--name", action="append", default=[], metavar="INDEX=NAME",
                        help="name direction INDEX (from 0), e.g. --name 3=Pose (repeatable)")
    parser.add_argument("--seed", type=options.SEED, default=0, help="the face shown in every row (default 0)")
    parser.add_argument("--strengths", type=strength_list, default=DEFAULT_STRENGTHS, metavar="S1,S2,...",
                        help=f"columns (default {','.join(map(str, DEFAULT_STRENGTHS))}; write --strengths=-3,0,3)")
    parser.add_argument("--out", default=None,
                        help="the picture (default directions.png; with --store, a picture only when --out is given)")
    parser.add_argument("--scale", type=options.SCALE, default=1, help="enlarge each face by this integer factor")
    parser.add_argument("--store", action="store_true", help="add the directions to the bundle")
    parser.add_argument("--bundle-out", metavar="BUNDLE_DIR",
                        help="with --store: write the updated bundle here instead of updating it in place")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..inference.discovered import direction_grid, direction_names, parse_names, sefa_directions
    from ..inference.pipeline import FacePipeline
    from ..interop.loading import load, resolve_model_path
    from ..model.bundle import save_bundle

    path = resolve_model_path(args.model)
    model = load(path)
    directions, shares = sefa_directions(model.decoder, args.count)
    names = direction_names(args.count, parse_names(args.name, args.count))
    pipeline = FacePipeline(model)
    out = args.out or (None if args.store else "directions.png")
    if out is not None:
        result = direction_grid(pipeline, directions, names, tuple(args.strengths), args.seed)
        print(f"wrote {result.save(out, scale=args.scale)[0]}")
    width = max(len(name) for name in names)
    print(f"{'direction':<{width}}  share of the first layer's response")
    for name, share in zip(names, shares):
        print(f"{name:<{width}}  {float(share):.3f}")
    if args.store:
        for name, direction in zip(names, directions):
            model.attributes[name] = direction
        model.provenance["discovered"] = {"method": "sefa", "names": names}
        print(f"wrote bundle {save_bundle(model, args.bundle_out or path)}")
    return 0
