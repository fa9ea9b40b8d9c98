"""The REST API: FastAPI over facevae.inference.pipeline.FacePipeline, with micro-batched decoding.

    app = create_app("celeba64-original")          # or a bundle path, or a FacePipeline
    uvicorn.run(app, host="127.0.0.1", port=8000)   # `facevae serve` does this

Endpoints (OpenAPI at /docs): GET /v1/model, POST /v1/generate, /v1/decode, /v1/morph
(routes.py), /v1/edit, /v1/reconstruct (editing.py); GET /healthz (alive) and /readyz (model
loaded, not saturated). The model is loaded once, at start-up (lifespan). Generate and decode
requests are batched together by facevae.app.server.batching; the other endpoints run as
single jobs on the same inference threads. Every error is JSON (errors.py).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import torch
from fastapi import FastAPI

from ... import __version__
from ...hub.registry import DEFAULT_MODEL
from ...inference.pipeline import FacePipeline
from .backends import make_decoder
from .batching import MicroBatcher
from .connections import limit_accept_error_logs
from .docs import add_offline_docs
from .editing import editing
from .errors import add_error_handlers
from .limits import BodyLimitMiddleware
from .requests import RequestGuard
from .routes import health, synthesis
from .settings import ENV_SETTINGS, ServerSettings
from .uploads import UploadDecoder

__all__ = ["ENV_SETTINGS", "ServerSettings", "app_from_environment", "create_app"]

log = logging.getLogger("facevae.server")


async def _start(app: FastAPI, model: str | Path | FacePipeline, settings: ServerSettings) -> MicroBatcher:
    """Load the model, build the decoder, warm it up and start the inference threads."""
    limit_accept_error_logs(asyncio.get_running_loop())
    if settings.compute_threads:  # process-wide: a server process serves one model
        torch.set_num_threads(settings.compute_threads)
    # The ONNX decoder is float32, so the other endpoints use float32 too: one model, one set of pixels.
    precision = "fp32" if settings.backend == "onnx" and settings.precision == "auto" else settings.precision
    pipeline = model if isinstance(model, FacePipeline) else await asyncio.to_thread(
        FacePipeline.load, str(model), settings.device, True, precision)
    decode = await asyncio.to_thread(make_decoder, pipeline, settings.backend, settings.compute_threads)
    # one call at the serving shape first: kernel selection happens now, not in a user's request
    await asyncio.to_thread(decode, torch.zeros(settings.chunk, pipeline.latent_dim))
    batcher = MicroBatcher(decode, max_batch=settings.max_batch, chunk=settings.chunk,
                           wait_ms=settings.batch_wait_ms, queue_size=settings.queue_size,
                           timeout_s=settings.timeout_s, workers=settings.inference_threads,
                           batching=settings.batching, cost_budget=settings.refine_budget).start()
    app.state.pipeline, app.state.batcher = pipeline, batcher
    log.info("facevae ready: model %s, backend %s, on %s, %s", pipeline.model.path or "in memory", settings.backend,
             pipeline.runtime.describe(), {k: v for k, v in asdict(settings).items() if k not in ("backend",)})
    return batcher


def create_app(model: str | Path | FacePipeline = DEFAULT_MODEL, settings: ServerSettings | None = None,
               **overrides: Any) -> FastAPI:
    """The FastAPI app for a registry name, a bundle or run folder, or a ready FacePipeline.

    A name or path is loaded at start-up (lifespan), so /readyz says 503 until it is in memory.
    Keyword overrides replace fields of `settings`, e.g. create_app(path, queue_size=8).
    """
    settings = replace(settings or ServerSettings(), **overrides)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        batcher = await _start(app, model, settings)
        try:
            yield
        finally:  # uvicorn has let in-flight requests finish; queued work is finished too
            app.state.pipeline = None
            await asyncio.to_thread(batcher.close)

    app = FastAPI(title="facevae", version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None,
                  description="Face generation and editing with a variational autoencoder. "
                              "Errors are JSON: {\"error\": code, \"detail\": message}.")
    app.state.settings, app.state.pipeline, app.state.batcher = settings, None, None
    app.state.uploads = UploadDecoder(settings)
    app.add_middleware(BodyLimitMiddleware, limits={"/v1/edit": settings.max_upload_bytes + 64 * 1024,
                                                    "/v1/reconstruct": settings.max_request_bytes},
                       default=settings.max_json_bytes)
    app.add_middleware(RequestGuard, read_timeout_s=settings.timeout_s)  # outermost: sees the body arrive
    add_error_handlers(app)
    for router in (health, synthesis, editing):
        app.include_router(router)
    add_offline_docs(app)
    return app


def app_from_environment() -> FastAPI:
    """The app factory uvicorn's worker processes call (`facevae serve --workers N`)."""
    values = json.loads(os.environ[ENV_SETTINGS])
    model = values.pop("model")
    return create_app(model, ServerSettings(**values))
