"""The REST API: FastAPI over facevae.inference.pipeline.FacePipeline, with micro-batched decoding.

    app = create_app("celeba64-original")          # or a bundle path, or a FacePipeline
    uvicorn.run(app, host="127.0.0.1", port=8000)   # `facevae serve` does this

Endpoints (OpenAPI at /docs): GET /v1/model, POST /v1/generate, /v1/decode, /v1/morph,
/v1/edit, /v1/reconstruct; GET /healthz (alive) and /readyz (model loaded). The model is
loaded once, at start-up (lifespan). Generate and decode requests are batched together by
facevae.app.server.batching; the other endpoints run as single jobs on the same inference threads.
Every error is JSON: {"error": short_code, "detail": what to fix}.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import secrets
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Annotated, Any, AsyncIterator, Literal

import numpy as np
import torch
from fastapi import FastAPI, File, Form, Request, UploadFile
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from PIL import Image
from pydantic import TypeAdapter, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from ... import __version__, imaging
from ...config import to_dict
from ...errors import UserError
from ...hub.registry import DEFAULT_MODEL
from ...inference.pipeline import GRID_COLUMNS, FacePipeline, SynthesisResult, UnknownAttributeError
from . import schemas
from .backends import Backend, make_decoder
from .batching import BatcherClosedError, DeadlineExceededError, Decoded, MicroBatcher, QueueFullError
from .limits import BodyLimitMiddleware

log = logging.getLogger("facevae.server")

IMAGE_TYPES = {"image/png", "image/jpeg", "image/webp", "image/bmp", "image/gif"}
PNG = {200: {"content": {"image/png": {}}, "description": "A face (n = 1) or a grid of faces"}}
ENV_SETTINGS = "FACEVAE_SERVE_SETTINGS"  # JSON: {"model": ..., **ServerSettings}, for --workers > 1


@dataclass(frozen=True)
class ServerSettings:
    """How the server batches, queues and limits work (the `facevae serve` options)."""

    backend: Backend = "torch"
    device: str = "cpu"
    precision: str = "auto"  # the pipeline's: auto (bf16 on CPUs that have it), fp32, bf16; onnx: fp32
    max_batch: int = 16  # codes decoded together at most
    chunk: int = 1  # rows per decoder call (same bytes at any batching); CPU: 1, GPU: max_batch
    batch_wait_ms: float = 3.0  # how long a lone request waits for company
    batching: bool = True  # False: every request decoded on its own (the benchmark's baseline)
    queue_size: int = 64  # waiting requests before 503
    timeout_s: float = 30.0  # per request, queueing included, before 504
    inference_threads: int = 1  # decoder calls running at once
    compute_threads: int | None = None  # threads inside each call (torch, ONNX Runtime); None: library default
    max_upload_bytes: int = 10 * 1024 * 1024  # per photo
    max_upload_pixels: int = 25_000_000  # per photo, read from the header before decoding
    max_request_bytes: int = 32 * 1024 * 1024  # a whole multipart request
    max_json_bytes: int = 2 * 1024 * 1024  # a JSON request (64 latents of 4096 numbers fit)


class NotReadyError(Exception):
    """The model is still loading."""


class UploadTypeError(UserError):
    """An upload whose declared content type is not an image type."""


# --- the app ---------------------------------------------------------------------------

def create_app(model: str | Path | FacePipeline = DEFAULT_MODEL, settings: ServerSettings | None = None,
               **overrides: Any) -> FastAPI:
    """The FastAPI app for a registry name, a bundle or run folder, or a ready FacePipeline.

    A name or path is loaded at start-up (lifespan), so /readyz says 503 until it is in memory.
    Keyword overrides replace fields of `settings`, e.g. create_app(path, queue_size=8).
    """
    settings = replace(settings or ServerSettings(), **overrides)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
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
                               batching=settings.batching).start()
        app.state.pipeline, app.state.batcher = pipeline, batcher
        log.info("facevae ready: model %s, backend %s, %s", pipeline.model.path or "in memory", settings.backend,
                 {k: v for k, v in asdict(settings).items() if k not in ("backend",)})
        try:
            yield
        finally:  # uvicorn has let in-flight requests finish; queued work is finished too
            app.state.pipeline = None
            await asyncio.to_thread(batcher.close)

    app = FastAPI(title="facevae", version=__version__, lifespan=lifespan,
                  description="Face generation and editing with a variational autoencoder. "
                              "Errors are JSON: {\"error\": code, \"detail\": message}.")
    app.state.settings, app.state.pipeline, app.state.batcher = settings, None, None
    app.add_middleware(BodyLimitMiddleware, limits={"/v1/edit": settings.max_upload_bytes + 64 * 1024,
                                                    "/v1/reconstruct": settings.max_request_bytes},
                       default=settings.max_json_bytes)
    _add_error_handlers(app)
    _add_routes(app, settings)
    return app


def app_from_environment() -> FastAPI:
    """The app factory uvicorn's worker processes call (`facevae serve --workers N`)."""
    values = json.loads(os.environ[ENV_SETTINGS])
    model = values.pop("model")
    return create_app(model, ServerSettings(**values))


def _ready(request: Request) -> tuple[FacePipeline, MicroBatcher]:
    state = request.app.state
    if state.pipeline is None or state.batcher is None:
        raise NotReadyError()
    return state.pipeline, state.batcher


def _add_routes(app: FastAPI, settings: ServerSettings) -> None:
    upload_limit = settings.max_upload_bytes

    @app.get("/healthz", tags=["health"], summary="The process is alive")
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"], summary="The model is loaded and requests are served",
             responses={503: {"model": schemas.ErrorResponse}})
    async def readyz(request: Request) -> dict[str, Any]:
        pipeline, batcher = _ready(request)
        return {"status": "ready", "queued": batcher.pending}

    @app.get("/v1/model", tags=["model"], summary="Model config, attribute names, provenance and licence")
    async def model_info(request: Request) -> schemas.ModelInfo:
        pipeline, _ = _ready(request)
        face_model = pipeline.model
        provenance = dict(face_model.provenance)
        return schemas.ModelInfo(
            config=to_dict(face_model.config), latent_dim=face_model.latent_dim,
            image_size=face_model.config.image_size, has_encoder=face_model.has_encoder,
            attributes=pipeline.attribute_names, attribute_counts=face_model.attribute_counts,
            preprocessing=to_dict(face_model.preprocessing), provenance=provenance,
            licence=provenance.get("licence") or provenance.get("license"), backend=settings.backend,
            precision="fp32" if settings.backend == "onnx" else pipeline.precision,
            limits={"max_faces": schemas.MAX_FACES, "max_strength": schemas.MAX_STRENGTH,
                    "max_temperature": schemas.MAX_TEMPERATURE, "max_upload_bytes": upload_limit,
                    "max_upload_pixels": settings.max_upload_pixels, "max_upload_files": schemas.MAX_UPLOAD_FILES,
                    "max_refine_steps": schemas.MAX_REFINE_STEPS, "timeout_s": settings.timeout_s})

    @app.post("/v1/generate", tags=["synthesis"], summary="Faces from the prior, with attribute strengths",
              responses={**PNG, 200: {**PNG[200], "model": schemas.FacesResponse}})
    async def generate(body: schemas.GenerateRequest, request: Request) -> Response:
        pipeline, batcher = _ready(request)
        seed = body.seed if body.seed is not None else secrets.randbelow(2**31)
        # Each request draws from its own seeded generator, so batching cannot change its codes.
        latents = pipeline.sample_latents(body.n, seed, body.temperature) + pipeline.resolve_attributes(body.attributes)
        decoded = await batcher.decode(latents)
        return await _faces(decoded, latents, body, seed)

    @app.post("/v1/decode", tags=["synthesis"], summary="Faces for given latent codes",
              responses={**PNG, 200: {**PNG[200], "model": schemas.FacesResponse}})
    async def decode(body: schemas.DecodeRequest, request: Request) -> Response:
        pipeline, batcher = _ready(request)
        latents = pipeline.as_latents(body.latents) + pipeline.resolve_attributes(body.attributes)
        decoded = await batcher.decode(latents)
        return await _faces(decoded, latents, body)

    @app.post("/v1/morph", tags=["synthesis"], summary="A row of faces morphing from one face to another",
              responses={**PNG, 200: {**PNG[200], "model": schemas.FacesResponse}})
    async def morph(body: schemas.MorphRequest, request: Request) -> Response:
        pipeline, batcher = _ready(request)

        def endpoint(end: schemas.MorphEndpoint) -> torch.Tensor:
            if end.latent is not None:
                return pipeline.as_latents(end.latent)
            return pipeline.sample_latents(1, end.seed or 0, body.temperature)

        start, end = endpoint(body.start), endpoint(body.end)
        result = await batcher.run(lambda: pipeline.morph(
            n_pairs=1, steps=body.steps, method=body.method, start=start.cpu().numpy(), end=end.cpu().numpy()))
        return await _result(result, body)

    @app.post("/v1/edit", tags=["editing"], summary="Your photo with attribute edits",
              responses={200: {"content": {"image/png": {}}, "description": "The edited face, or "
                               "[aligned photo, reconstruction, edited] with view=grid"}})
    async def edit(
        request: Request,
        image: Annotated[UploadFile, File(description="A face photo: PNG, JPEG, WebP, BMP or GIF")],
        attributes: Annotated[str, Form(description='JSON object, e.g. {"Smiling": 1.5}')] = "{}",
        refine_steps: Annotated[int, Form(ge=0, le=schemas.MAX_REFINE_STEPS,
                                          description="Optimisation steps after encoding (slower, closer)")] = 0,
        whole_image: Annotated[bool, Form(description="Skip face detection; use the whole picture")] = False,
        view: Annotated[Literal["edited", "grid"], Form()] = "edited",
        format: Annotated[schemas.OutputFormat, Form()] = "png",
        include_images: Annotated[bool, Form()] = False,
        scale: Annotated[int, Form(ge=1, le=schemas.MAX_SCALE)] = 1,
    ) -> Response:
        pipeline, batcher = _ready(request)
        strengths = _parse_attributes(attributes)
        pipeline.resolve_attributes(strengths)  # unknown names: 422 before any image work
        picture = await _read_upload(image, settings)
        result = await batcher.run(lambda: pipeline.edit(picture, strengths, refine_steps=refine_steps,
                                                         whole_image=whole_image))
        options = schemas.OutputOptions(format=format, scale=scale, include_images=include_images)
        if view == "edited":
            result = SynthesisResult(result.images[2:], result.latents[1:], 1, notes=result.notes)
        return await _result(result, options)

    @app.post("/v1/reconstruct", tags=["editing"], summary="Photos next to their reconstructions",
              responses={**PNG, 200: {**PNG[200], "model": schemas.FacesResponse}})
    async def reconstruct(
        request: Request,
        images: Annotated[list[UploadFile], File(description=f"1 to {schemas.MAX_UPLOAD_FILES} photos, "
                                                             f"each face found and framed like /v1/edit's")],
        refine_steps: Annotated[int, Form(ge=0, le=schemas.MAX_REFINE_STEPS)] = 0,
        whole_image: Annotated[bool, Form(description="Skip face detection; use the whole pictures")] = False,
        format: Annotated[schemas.OutputFormat, Form()] = "png",
        include_images: Annotated[bool, Form()] = False,
        scale: Annotated[int, Form(ge=1, le=schemas.MAX_SCALE)] = 1,
    ) -> Response:
        pipeline, batcher = _ready(request)
        if not 1 <= len(images) <= schemas.MAX_UPLOAD_FILES:
            raise UserError(f"send 1 to {schemas.MAX_UPLOAD_FILES} images, got {len(images)}")
        pictures = [await _read_upload(upload, settings) for upload in images]
        result = await batcher.run(lambda: pipeline.reconstruct(pictures, refine_steps=refine_steps,
                                                                whole_image=whole_image))
        return await _result(result, schemas.OutputOptions(format=format, scale=scale, include_images=include_images))


# --- helpers ---------------------------------------------------------------------------

def _parse_attributes(text: str) -> dict[str, float]:
    try:
        return TypeAdapter(schemas.Attributes).validate_json(text or "{}")
    except ValidationError as error:
        problems = "; ".join(f"{'.'.join(map(str, e['loc'])) or 'value'}: {e['msg']}" for e in error.errors())
        raise UserError(f"'attributes' must be a JSON object of attribute name -> strength in "
                        f"[-{schemas.MAX_STRENGTH:g}, {schemas.MAX_STRENGTH:g}] ({problems})") from None


async def _read_upload(upload: UploadFile, settings: ServerSettings) -> Image.Image:
    """The declared type, then the byte count, then (off the event loop) imaging.read_image's
    format sniffing and header pixel count, all before any pixel is decoded."""
    label = f"'{upload.filename or 'upload'}'"
    if (upload.content_type or "").split(";")[0].strip().lower() not in IMAGE_TYPES:
        raise UploadTypeError(f"{label} was sent as '{upload.content_type}'; send a PNG, JPEG, WebP, BMP or GIF "
                              f"image with its image/* content type")
    data = await upload.read(settings.max_upload_bytes + 1)
    if len(data) > settings.max_upload_bytes:
        raise imaging.ImageTooLargeError(f"{label} is larger than the limit of "
                                         f"{settings.max_upload_bytes / 1e6:.1f} MB; resize or recompress it")
    return await run_in_threadpool(imaging.read_image, data, settings.max_upload_bytes, settings.max_upload_pixels)


def _scaled(images: np.ndarray, scale: int) -> np.ndarray:
    return images if scale == 1 else images.repeat(scale, axis=1).repeat(scale, axis=2)


def _latent_faces(result: SynthesisResult) -> np.ndarray:
    """The faces that result.latents decode to, without the inputs shown beside them."""
    count = len(result.latents)
    if len(result.images) == count:
        return result.images
    if result.row_labels and "reconstruction" in result.row_labels:  # reconstruct: every other row
        rows = [result.images[i * result.columns:(i + 1) * result.columns]
                for i, label in enumerate(result.row_labels) if label == "reconstruction"]
        return np.concatenate(rows)[:count]
    return result.images[-count:]  # edit: [photo, reconstruction, edited]


def _notes_header(notes: list[str]) -> dict[str, str]:
    return {"X-Facevae-Notes": "; ".join(notes).encode("ascii", "replace").decode()} if notes else {}


async def _faces(decoded: Decoded, latents: torch.Tensor, options: schemas.OutputOptions,
                 seed: int | None = None) -> Response:
    result = SynthesisResult(decoded.images, latents.detach().cpu().numpy().astype(np.float32),
                             options.columns or min(len(decoded.images), GRID_COLUMNS))
    headers = {"X-Batch-Rows": str(decoded.batch_rows), "X-Batch-Requests": str(decoded.batch_requests)}
    if seed is not None:
        headers["X-Seed"] = str(seed)
    return await _result(result, options, seed, headers)


async def _result(result: SynthesisResult, options: schemas.OutputOptions, seed: int | None = None,
                  headers: dict[str, str] | None = None) -> Response:
    """One face as a bare PNG, several as the pipeline's grid, or the JSON form."""
    headers = {**(headers or {}), **_notes_header(result.notes)}

    def render() -> Response:
        if options.format == "json":
            images = None
            if options.include_images:
                images = [base64.b64encode(imaging.encode_png(face)).decode()
                          for face in _scaled(_latent_faces(result), options.scale)]
            body = schemas.FacesResponse(latents=result.latents.tolist(), image_size=result.images.shape[1],
                                         seed=seed, images=images, notes=result.notes)
            return JSONResponse(body.model_dump(exclude_none=True), headers=headers)
        if len(result.images) == 1:
            png = imaging.encode_png(_scaled(result.images, options.scale)[0])
        else:
            png = result.png(options.scale)
        return Response(png, media_type="image/png", headers=headers)

    # a single small face encodes in well under a millisecond: not worth a thread hop
    return render() if len(result.images) == 1 and options.scale == 1 else await run_in_threadpool(render)


# --- errors ----------------------------------------------------------------------------

def _error(status: int, code: str, detail: Any, headers: dict[str, str] | None = None, **extra: Any) -> JSONResponse:
    return JSONResponse({"error": code, "detail": detail, **extra}, status_code=status, headers=headers)


_HTTP_CODES = {400: "bad_request", 404: "not_found", 405: "method_not_allowed", 413: "too_large",
               415: "unsupported_media_type", 503: "unavailable"}


def _add_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, error: RequestValidationError) -> JSONResponse:
        fields = [{"field": ".".join(str(part) for part in e["loc"] if part != "body") or "body", "problem": e["msg"]}
                  for e in error.errors()]
        summary = "; ".join(f"{f['field']}: {f['problem']}" for f in fields)
        return _error(422, "invalid_request", f"The request does not match the API ({summary}). See /docs",
                      fields=fields)

    @app.exception_handler(UnknownAttributeError)
    async def unknown_attribute(request: Request, error: UnknownAttributeError) -> JSONResponse:
        pipeline = request.app.state.pipeline
        return _error(422, "unknown_attribute", str(error),
                      valid_attributes=pipeline.attribute_names if pipeline else [])

    @app.exception_handler(UserError)
    async def user_error(request: Request, error: UserError) -> JSONResponse:
        status, code = 422, "invalid_input"
        if isinstance(error, UploadTypeError) or isinstance(error, imaging.UnsupportedImageError):
            status, code = 415, "unsupported_image"
        elif isinstance(error, imaging.ImageTooLargeError):
            status, code = 413, "image_too_large"
        elif isinstance(error, imaging.UnreadableImageError):
            status, code = 400, "unreadable_image"
        return _error(status, code, str(error))

    @app.exception_handler(QueueFullError)
    async def queue_full(request: Request, error: QueueFullError) -> JSONResponse:
        return _error(503, "busy", str(error), headers={"Retry-After": str(error.retry_after)})

    @app.exception_handler(BatcherClosedError)
    async def closing(request: Request, error: BatcherClosedError) -> JSONResponse:
        return _error(503, "shutting_down", "The server is shutting down; retry on another replica",
                      headers={"Retry-After": "1"})

    @app.exception_handler(NotReadyError)
    async def not_ready(request: Request, error: NotReadyError) -> JSONResponse:
        return _error(503, "not_ready", "The model is still loading; retry in a few seconds",
                      headers={"Retry-After": "2"})

    @app.exception_handler(DeadlineExceededError)
    async def deadline(request: Request, error: DeadlineExceededError) -> JSONResponse:
        return _error(504, "timeout", f"{error}. Ask for fewer faces or fewer refine steps, or retry later")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
        return _error(error.status_code, _HTTP_CODES.get(error.status_code, "http_error"), error.detail,
                      headers=getattr(error, "headers", None))

    @app.exception_handler(Exception)
    async def internal(request: Request, error: Exception) -> JSONResponse:
        log.exception("unexpected error in %s %s", request.method, request.url.path)
        return _error(500, "internal_error", f"{type(error).__name__}: the server failed; its log has the details")
