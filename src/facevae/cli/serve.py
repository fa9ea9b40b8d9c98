"""`facevae serve`: the REST API (facevae.app.server.app) on uvicorn.

The model is resolved here first (a registry name is downloaded once, with a progress bar),
then every worker process loads it at start-up. On SIGTERM or Ctrl-C uvicorn stops taking
connections, lets requests in flight finish (up to --timeout-s), then exits.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from ..app.server.app import ServerSettings

WORKER_HEALTHCHECK_S = 60


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="serve generation and editing over HTTP (FastAPI on uvicorn)",
        description="Start the facevae REST API. Endpoints and their schemas: http://HOST:PORT/docs. "
                    "Concurrent generate/decode requests are decoded together (dynamic micro-batching); "
                    "a full queue answers 503 with Retry-After. See docs/serving.md.",
    )
    parser.add_argument("--model", default=None,
                        help="registry name, bundle folder or training run (default: celeba64-original)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (default: 127.0.0.1; 0.0.0.0 only behind a reverse proxy)")
    parser.add_argument("--port", type=int, default=8000, help="port (default: 8000)")
    parser.add_argument("--workers", type=int, default=1,
                        help="server processes, each with its own copy of the model (default: 1)")
    parser.add_argument("--backend", choices=("torch", "onnx"), default="torch",
                        help="decoder runtime for generate/decode: torch (the pipeline), or onnx (ONNX "
                             "Runtime on the CPU: the fastest float32 decoder; needs the export extra)")
    parser.add_argument("--device", default="auto",
                        help="auto (default: a GPU if there is one, else the CPU), cpu, cuda, cuda:N or mps")
    parser.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="auto",
                        help="torch decoder arithmetic: auto = bfloat16 on CPUs with native support (about "
                             "faster, pixels within a few levels of float32), else float32 (default: auto; "
                             "--backend onnx is float32)")
    parser.add_argument("--threads", type=int, default=None,
                        help="decoder calls running at once per worker (default: CPU cores / workers "
                             "on a CPU, 1 on a GPU)")
    parser.add_argument("--max-batch", type=int, default=16, help="faces decoded together at most (default: 16)")
    parser.add_argument("--chunk", type=int, default=None,
                        help="rows per decoder call (the last one padded): outputs are identical for any "
                             "batching at a fixed chunk (default: 1 on a CPU, where a face costs the same at "
                             "any batch size; --max-batch on a GPU)")
    parser.add_argument("--batch-wait-ms", type=float, default=3.0,
                        help="how long a request waits for others to batch with (default: 3)")
    parser.add_argument("--no-batching", action="store_true", help="decode every request on its own")
    parser.add_argument("--queue-size", type=int, default=64,
                        help="requests waiting per worker before 503 Service Unavailable (default: 64)")
    parser.add_argument("--timeout-s", type=float, default=30.0,
                        help="time limit per request, upload decoding and queueing included, before 504; "
                             "a connection must also send each whole request within it of its accept (or of the "
                             "previous answer), or get 408 and be closed (default: 30)")
    parser.add_argument("--max-connections", type=int, default=None,
                        help="open connections per worker; one more is answered 503 and closed (default: what the "
                             "file limit, ulimit -n, leaves free, less a tenth of it)")
    parser.add_argument("--access-log", action="store_true", help="log every request (costs throughput)")
    parser.add_argument("--log-level", default="info", choices=("critical", "error", "warning", "info", "debug"))
    parser.set_defaults(run=run)


def is_loopback(host: str) -> bool:
    """True for addresses only this machine can reach: localhost, 127.0.0.0/8, ::1."""
    if host.strip("[]").lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:  # a host name: it may resolve to anything
        return False


def settings_from_args(args: argparse.Namespace) -> ServerSettings:
    from ..app.server.app import ServerSettings
    from ..errors import UserError

    for name in ("workers", "max_batch", "queue_size", "port", "max_connections"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise UserError(f"--{name.replace('_', '-')} must be at least 1")
    if args.timeout_s <= 0 or args.batch_wait_ms < 0:
        raise UserError("--timeout-s must be positive and --batch-wait-ms at least 0")
    device = args.device
    if device == "auto":  # resolved once here, so every worker uses the same device
        from ..runtime import resolve_device

        device = "cpu" if args.backend == "onnx" else str(resolve_device("auto"))
    on_gpu = not device.startswith("cpu")
    if args.backend == "onnx" and on_gpu:
        raise UserError("--backend onnx runs on the CPU; leave out --device, or use --backend torch on a GPU")
    if args.backend == "onnx" and args.precision == "bf16":
        raise UserError("--backend onnx decodes in float32; use --backend torch for --precision bf16")
    cores = os.cpu_count() or 1
    threads = args.threads or (1 if on_gpu else max(1, cores // args.workers))
    chunk = args.chunk or (args.max_batch if on_gpu else 1)
    if threads < 1 or chunk < 1:
        raise UserError("--threads and --chunk must be at least 1")
    return ServerSettings(
        backend=args.backend, device=device, precision=args.precision, max_batch=args.max_batch, chunk=chunk,
        batch_wait_ms=args.batch_wait_ms, batching=not args.no_batching, queue_size=args.queue_size,
        timeout_s=args.timeout_s, inference_threads=threads,
        # each decoder call gets its share of the cores, so calls never fight over them
        compute_threads=None if on_gpu else max(1, cores // (args.workers * threads)),
    )


def run(args: argparse.Namespace) -> int:
    import copy
    import inspect
    import json
    from dataclasses import asdict

    import uvicorn

    from ..app.server.app import ENV_SETTINGS, create_app
    from ..app.server.connections import ConnectionLimits, GuardedConnection
    from ..interop.loading import DEFAULT_MODEL, resolve_model_path

    settings = settings_from_args(args)
    model_path = resolve_model_path(args.model or DEFAULT_MODEL)  # a bad name fails here, clearly
    if args.backend == "onnx":  # export once here, not in every worker
        from ..app.server.backends import ensure_onnx_export, fresh_onnx_decoder

        if fresh_onnx_decoder(model_path) is None:
            print("Exporting the decoder to ONNX (once) ...", file=sys.stderr)
        onnx_file = ensure_onnx_export(model_path)
        print(f"ONNX decoder: {onnx_file or 'exported by each worker (the bundle folder is read-only)'}",
              file=sys.stderr)
    if not is_loopback(args.host):
        print(f"note: listening on {args.host}, reachable from other machines; put a reverse proxy with TLS "
              f"and authentication in front (docs/serving.md)", file=sys.stderr)
    print(f"Serving {model_path} on http://{args.host}:{args.port} (API docs: /docs; Ctrl-C stops)",
          file=sys.stderr)
    log_config = copy.deepcopy(uvicorn.config.LOGGING_CONFIG)  # facevae's messages beside uvicorn's
    log_config["loggers"]["facevae"] = {"handlers": ["default"], "level": args.log_level.upper(), "propagate": False}
    ConnectionLimits(settings.timeout_s, args.max_connections).to_environment()  # read in every worker
    options = dict(host=args.host, port=args.port, log_level=args.log_level, access_log=args.access_log,
                   log_config=log_config, timeout_graceful_shutdown=int(settings.timeout_s) + 5,
                   http=GuardedConnection, ws="none")  # no WebSocket routes: an upgrade would leave the guard
    if args.workers == 1:
        uvicorn.run(create_app(model_path, settings), **options)
    else:  # worker processes import the app factory and read the settings from the environment
        os.environ[ENV_SETTINGS] = json.dumps({"model": str(model_path), **asdict(settings)})
        if "timeout_worker_healthcheck" in inspect.signature(uvicorn.Config).parameters:
            # uvicorn kills a worker that misses a 5 s health check; importing torch and loading
            # the model can take longer than that on a busy machine
            options["timeout_worker_healthcheck"] = WORKER_HEALTHCHECK_S
        uvicorn.run("facevae.app.server.app:app_from_environment", factory=True, workers=args.workers, **options)
    return 0
