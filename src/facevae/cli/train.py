"""`facevae train --data DATA_OR_CACHE [--config FILE] [--preset NAME] [--out RUN_DIR]
[--set section.key=value ...] [--resume] [--device DEV] [--compile] [--max-steps N] [--minutes M]`.

Defaults are the original project's recipe (reconstruction weight 2000, Adam 5e-4, batch 128,
12 epochs, Keras's initialisation) on the `celeba64` model: the original architecture without
the ReLU on the encoder heads, which collapses new training (docs/training.md). Several GPUs or
machines: `torchrun --nproc_per_node=N -m facevae train ...`.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import options


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "train",
        help="train a VAE on CelebA (or any face folder) into a run folder with checkpoints and a bundle",
        description="Train on a prepared cache or a raw image folder (prepared first, once). The run folder "
                    "gets config.json, checkpoints/last.pt and best.pt, TensorBoard logs, sample grids and, "
                    "at the end, bundle/ (load it with facevae.load(RUN_DIR)). Ctrl-C saves and stops; "
                    "--resume continues exactly where it stopped.",
        epilog="examples:\n"
               "  facevae train --data ~/data/celeba --out runs/celeba64\n"
               "  facevae train --data cache/ --preset compact --set train.epochs=3 --set train.lr=1e-3\n"
               "  facevae train --data ~/data/faces --preset compact --minutes 5 --out runs/quick\n"
               "  facevae train --out runs/celeba64 --resume\n"
               "  torchrun --nproc_per_node=4 -m facevae train --data ~/data/celeba --out runs/ddp",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--data", metavar="DATA_OR_CACHE", default=None,
                        help="a CelebA folder, a folder of face images, or a prepared cache "
                             "(default: the config's data.path; with --resume, the run's own data)")
    parser.add_argument("--config", metavar="FILE", default=None,
                        help="TOML or JSON config with [model], [data], [train] sections, or the original "
                             "project's config.json")
    parser.add_argument("--preset", metavar="NAME", default=None,
                        help="model preset: celeba64 (default), original (the Keras model exactly, ReLU heads), seed, "
                             "compact, celeba128, celeba256")
    parser.add_argument("--out", metavar="RUN_DIR", default=None,
                        help="run folder (default: the config's train.out_dir)")
    parser.add_argument("--set", dest="overrides", metavar="SECTION.KEY=VALUE", action="append", default=[],
                        help="override one setting, e.g. --set train.batch_size=256 (repeatable)")
    parser.add_argument("--resume", action="store_true",
                        help="continue RUN_DIR from checkpoints/last.pt (its config.json unless --config/--preset)")
    parser.add_argument("--device", default=None, help="auto (default), cpu, cuda, cuda:N or mps")
    parser.add_argument("--compile", action="store_true", help="torch.compile the model (faster on GPUs after warm-up)")
    parser.add_argument("--max-steps", type=options.whole(1, 10**9), default=None, metavar="N",
                        help="stop at optimiser step N of the run (counting steps before a --resume), saving "
                             "last.pt as Ctrl-C does, then write the bundle; --resume continues exactly")
    parser.add_argument("--minutes", type=options.number(0.0, 10**6, low_open=True), default=None, metavar="M",
                        help="stop after M minutes of training in this invocation, as --max-steps does")
    parser.add_argument("--threads", type=options.THREADS, default=None, metavar="N",
                        help="CPU threads (default: the cores not busy with other work, from the load average; "
                             "on a loaded machine two threads wait on each other and train several times slower)")
    parser.add_argument("--quiet", action="store_true", help="no progress bars (warnings are still shown)")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..config import load_run_config
    from ..errors import UserError
    from ..runtime import set_threads
    from ..training.budget import Budget
    from ..training.checkpoint import load_checkpoint
    from ..training.run import TrainingInterrupted, train

    set_threads(args.threads)
    overrides = list(args.overrides)
    if args.device:
        overrides.append(f"train.device={args.device}")
    if args.compile:
        overrides.append("train.compile=true")
    config_file = args.config
    run_dir = Path(args.out) if args.out else None
    if args.resume and run_dir is None and config_file is None:
        raise UserError("--resume needs the run folder to continue: --out RUN_DIR, or the --config that "
                        "names it (train.out_dir, or model_save_path in the original project's config.json)")
    if args.resume and run_dir is not None and config_file is None and args.preset is None and (
            run_dir / "config.json").is_file():
        config_file = run_dir / "config.json"  # the run's own resolved config
    config = load_run_config(config_file, args.preset, overrides)
    run_dir = run_dir or Path(config.train.out_dir)  # the same folder for a first run and its --resume
    data = args.data or config.data.path
    if not data and args.resume:
        data = load_checkpoint(run_dir / "checkpoints" / "last.pt")["data"]["cache"]
    if not data:
        raise UserError("No training data: pass --data with a CelebA folder, an image folder or a prepared cache "
                        "(or set data.path in the config)")
    try:
        train(config, data, run_dir, resume=args.resume, progress=not args.quiet,
              budget=Budget(max_steps=args.max_steps, minutes=args.minutes))
    except TrainingInterrupted as stop:
        print(stop, file=sys.stderr)
        return 130
    return 0
