"""`facevae export BUNDLE --format onnx|keras [--out PATH]`."""

from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "export",
        help="export a model to ONNX or to the original Keras project's files",
        description="Export a bundle (or a training run, or a registry name). onnx: decoder.onnx (and "
                    "encoder.onnx) with a dynamic batch axis, checked with ONNX Runtime. keras: the "
                    "original TensorFlow project's model_weights/*.keras, attribute JSON and config.json.",
    )
    parser.add_argument("model", metavar="BUNDLE", help="bundle folder, training run or registry name")
    parser.add_argument("--format", required=True, choices=("onnx", "keras"))
    parser.add_argument("--out", default=None, metavar="PATH",
                        help="output folder (default: next to the bundle, BUNDLE-onnx or BUNDLE-keras)")
    parser.add_argument("--no-verify", action="store_true",
                        help="onnx: skip the ONNX Runtime comparison against PyTorch")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from ..atomic import require_parent_folder
    from ..extras import require_extra
    from ..interop.loading import resolve_model_path
    from ..model.bundle import load_bundle

    if args.format == "onnx":
        require_extra("export")  # before the model is loaded
    if args.out:
        require_parent_folder(args.out, "--out")
    path = resolve_model_path(args.model)
    model = load_bundle(path)
    out = Path(args.out) if args.out else path.with_name(f"{path.name}-{args.format}")
    if args.format == "keras":
        from ..interop.keras_export import export_keras

        export_keras(model, out)
        written = sorted(str(p.relative_to(out)) for p in out.rglob("*") if p.is_file())
        print(f"Wrote the original project's layout to {out}: {', '.join(written)}")
        if not model.has_encoder:
            print("note: the bundle has no encoder, so there is no encoder.keras or vae.keras")
    else:
        from ..interop.onnx import export_onnx

        report = export_onnx(model, out, verify=not args.no_verify)
        for name, diff in report.items():
            check = (f"ONNX Runtime vs PyTorch: largest difference {diff:.1e} (relative)" if diff is not None
                     else "not verified")
            print(f"Wrote {out / name} ({check})")
    return 0
