"""`facevae models`: the registry's models and face detectors, and the bundles installed in FACEVAE_HOME."""

from __future__ import annotations

import argparse


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "models",
        help="list the registered pretrained models, face detectors and the installed bundles",
        description="List the models and face detectors `facevae download NAME` can install and the bundles "
                    "already installed in FACEVAE_HOME.",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    import json

    from ..hub import detector, install, registry

    print("Registered models (facevae download NAME):")
    for name, spec in registry.REGISTRY.items():
        state = "installed" if install.is_installed(name) else "not installed"
        print(f"  {name:<20} {state:<14} {spec.description}")
        print(f"  {'':<20} {'':<14} {spec.licence} licence, {spec.author}; {spec.source}")
    print("\nFace detectors, for framing photos (facevae download NAME [--from DIR]):")
    for name, spec in detector.DETECTORS.items():
        state = "installed" if detector.installed_path(name).is_file() else "not installed"
        default = " (the default)" if name == detector.DEFAULT_DETECTOR else ""
        print(f"  {name:<20} {state:<14} {spec.description}{default}")
        print(f"  {'':<20} {'':<14} file {spec.file.filename}, {spec.licence} licence; {spec.source}")
    home = registry.facevae_home()
    installed = install.installed_models()
    print(f"\nInstalled bundles in {home / 'models'}:" + ("" if installed else " none"))
    for name, path in installed:
        meta = json.loads((path / "config.json").read_text())
        model = meta.get("model", {})
        encoder = "with encoder" if meta.get("has_encoder") else "no encoder"
        attributes = len(meta.get("attributes", {}).get("names", []))
        print(f"  {name:<20} {model.get('image_size')}px, latent {model.get('latent_dim')}, {encoder}, "
              f"{attributes} attribute vectors  {path}")
    return 0
