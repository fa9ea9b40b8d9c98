"""`facevae gui`: start the Streamlit app (facevae/app/gui/script.py) on this machine.

The model is resolved here first, so the default `celeba64-original` is downloaded with the
registry's progress bar in the terminal rather than behind a spinner. If a registry model cannot
be downloaded (offline) the app still starts and its page explains how to get it; a mistyped
name or a missing folder stops here with the error.
Options reach the app through FACEVAE_GUI_* environment variables (see facevae.app.gui.common).
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from . import options


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "gui",
        help="interactive face generation in the browser (Streamlit)",
        description="Start the facevae GUI: generate, reconstruct, edit, blend faces and explore "
                    "attributes. Open the printed URL in a browser; Ctrl-C stops it.",
    )
    parser.add_argument("--model", default=None,
                        help="registry name, bundle folder or training run (default: celeba64-original, "
                             "downloaded on first use)")
    parser.add_argument("--data", default=None,
                        help="a prepared cache or a CelebA/image folder; its validation split feeds "
                             "'Reconstruct faces'")
    parser.add_argument("--runs-dir", default=None,
                        help="a folder of training runs to offer in the model picker")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default: 127.0.0.1)")
    parser.add_argument("--port", type=options.whole(1, 65535), default=8501, help="port (default: 8501)")
    parser.set_defaults(run=run)


def streamlit_flags(host: str, port: int) -> dict[str, object]:
    """Streamlit options: headless, no usage statistics, no browser, no file watcher."""
    from ..imaging import MAX_IMAGE_BYTES

    return {
        "server.address": host,
        "server.port": port,
        "server.headless": True,
        "server.fileWatcherType": "none",
        "server.runOnSave": False,
        "server.maxUploadSize": max(1, MAX_IMAGE_BYTES // (1024 * 1024)),
        "browser.gatherUsageStats": False,
        "browser.serverAddress": host,
        "browser.serverPort": port,
        "global.developmentMode": False,
        "client.toolbarMode": "minimal",
        "theme.base": "light",
    }


def run(args: argparse.Namespace) -> int:
    from ..errors import UserError
    from ..hub.registry import DEFAULT_MODEL, REGISTRY
    from ..interop.loading import resolve_model_path

    model = args.model or DEFAULT_MODEL
    try:
        model = str(resolve_model_path(model, download=True))  # downloads with progress on first use
    except UserError as error:
        if model not in REGISTRY:  # a mistyped name or path: the page could only repeat this
            print(f"error: {error}", file=sys.stderr)
            return 2
        print(f"warning: {error}\nThe GUI starts anyway and explains how to get a model.", file=sys.stderr)
    for flag, value in (("--data", args.data), ("--runs-dir", args.runs_dir)):
        if value and not Path(value).expanduser().exists():
            print(f"error: {flag} {value}: no such file or folder", file=sys.stderr)
            return 2
    os.environ["FACEVAE_GUI_MODEL"] = model
    os.environ["FACEVAE_GUI_DATA"] = str(Path(args.data).expanduser().resolve()) if args.data else ""
    os.environ["FACEVAE_GUI_RUNS_DIR"] = str(Path(args.runs_dir).expanduser().resolve()) if args.runs_dir else ""

    from streamlit.web import bootstrap

    script = Path(__file__).resolve().parents[1] / "app" / "gui" / "script.py"
    flags = streamlit_flags(args.host, args.port)
    print(f"facevae GUI: http://{args.host}:{args.port}  (Ctrl-C to stop)", file=sys.stderr)
    bootstrap.load_config_options(flag_options=flags)
    bootstrap.run(str(script), False, [], flags)
    return 0
