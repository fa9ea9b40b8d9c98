"""The `facevae` command: one entry point, one module per subcommand.

Each module in facevae.cli (listed in COMMAND_MODULES) exposes `register(subparsers)`, which adds its parser(s)
and sets `run` as the handler; `synthesis` registers the six synthesis commands from its table.
Modules import heavy libraries inside `run`, so `--help` is fast.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from .. import __version__
from ..errors import UserError, cli_name
from ..extras import missing_extra_error

# Modules in facevae.cli, in the order `--help` lists their subcommands.
COMMAND_MODULES: tuple[str, ...] = (
    "prepare",
    "train",
    "make_bundle",
    "download",
    "models",
    "import_keras",
    "import_seed",
    "export",
    "attributes",
    "synthesis",  # generate, reconstruct, arithmetic, morph, decode, edit: one table
    "directions",
    "classifier",
    "evaluate",
    "gui",
    "serve",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="facevae",
        description="Controllable face generation with a variational autoencoder.",
        epilog="Run `facevae COMMAND --help` for the options of a command. Docs: docs/ in the repository.",
    )
    parser.add_argument("--version", action="version", version=f"facevae {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module_name in COMMAND_MODULES:
        importlib.import_module(f"facevae.cli.{module_name}").register(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "run", None):
        parser.print_help()
        return 0
    try:
        return int(args.run(args) or 0)
    except UserError as error:
        print(f"error: {error.render(cli_name)}", file=sys.stderr)
        return 2
    except ImportError as error:  # an optional extra that is not installed: say which pip install brings it
        missing = missing_extra_error(error)
        if missing is None:
            raise
        print(f"error: {missing}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
