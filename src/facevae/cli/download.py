"""`facevae download NAME [--from DIR] [--force]`: install a registry model as a bundle."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "download",
        help="download a pretrained model, verify its checksums and convert it into a bundle",
        description="Fetch a registered model's files into FACEVAE_HOME (default: your cache folder), "
                    "verify every checksum and convert them into a bundle. Offline: --from DIR with the "
                    "files; a mirror: set FACEVAE_BASE_URL. `facevae models` lists the names.",
    )
    parser.add_argument("name", help="registered model name, e.g. celeba64-original, or a face detector, e.g. "
                                     "yunet-2023mar (fetched on first use otherwise; with --from DIR, any "
                                     "registered detector found in DIR is installed)")
    parser.add_argument("--from", dest="source_dir", metavar="DIR", default=None,
                        help="install from local copies of the files in DIR (flat, or at the source "
                             "repository's relative paths) instead of downloading")
    parser.add_argument("--force", action="store_true", help="reinstall even if the model is installed")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..hub import detector, install, registry
    from ..interop.loading import convert_published

    if args.name in detector.DETECTORS:
        path = detector.install(args.name, source_dir=args.source_dir, progress=not args.quiet, force=args.force)
        used = detector.installed_name(path) or args.name
        instead = f" ({args.source_dir} holds {used}, not {args.name}; either serves)" if used != args.name else ""
        print(f"Installed the face detector {used} ({detector.DETECTORS[used].licence} licence): {path}{instead}")
        return 0
    spec = registry.get(args.name)
    if install.is_installed(args.name) and not args.force:
        print(f"{args.name} is already installed: {registry.bundle_path(args.name)} (--force reinstalls)")
        return 0
    path = install.install(args.name, source_dir=args.source_dir, progress=not args.quiet, force=args.force,
                           convert=convert_published)
    print(f"Installed {args.name} ({spec.licence} licence, by {spec.author}): {path}")
    return 0
