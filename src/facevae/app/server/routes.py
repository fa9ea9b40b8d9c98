"""Health, model information and synthesis from codes: GET /healthz, /readyz, /v1/model;
POST /v1/generate, /v1/decode, /v1/morph. Photo endpoints are in editing.py."""

from __future__ import annotations

import secrets
from typing import Any

import torch
from fastapi import APIRouter
from fastapi.responses import Response

from ...config import to_dict
from ...inference.edit_quality import weak_attributes
from ...inference.guided import GuidedSettings, expand_keep, prepare_edits
from ...model.shipped import shipped_config
from . import schemas
from .dependencies import Batcher, Pipeline, Settings
from .errors import error_response
from .responses import faces_response, result_response

PNG = {200: {"content": {"image/png": {}}, "description": "A face (n = 1) or a grid of faces"}}
FACES = {**PNG, 200: {**PNG[200], "model": schemas.FacesResponse}}

health = APIRouter(tags=["health"])
synthesis = APIRouter(prefix="/v1")


@health.get("/healthz", summary="The process is alive")
async def healthz() -> dict[str, str]:
    return {"status": "ok"}


@health.get("/readyz", summary="The model is loaded and new requests would be served in time",
            responses={503: {"model": schemas.ErrorResponse}})
async def readyz(pipeline: Pipeline, batcher: Batcher) -> Any:
    if (reason := batcher.saturated()) is not None:
        return error_response(503, "busy", f"The server is saturated: {reason}", headers={"Retry-After": "1"})
    return {"status": "ready", "queued": batcher.pending}


@synthesis.get("/model", tags=["model"], summary="Model config, attribute names, provenance and licence")
async def model_info(pipeline: Pipeline, settings: Settings) -> schemas.ModelInfo:
    face_model = pipeline.model
    provenance = dict(face_model.provenance)
    counts, notes = _well_formed_counts(face_model.attribute_counts)
    licence = provenance.get("licence") or provenance.get("license")
    return schemas.ModelInfo(
        config=to_dict(face_model.config), latent_dim=face_model.latent_dim,
        image_size=face_model.config.image_size, has_encoder=face_model.has_encoder,
        attributes=pipeline.attribute_names, attribute_counts=counts,
        preprocessing=to_dict(face_model.preprocessing), provenance=provenance,
        licence=None if licence is None else str(licence), notes=notes, backend=settings.backend,
        precision="fp32" if settings.backend == "onnx" else pipeline.precision,
        limits={"max_faces": schemas.MAX_FACES, "max_strength": schemas.MAX_STRENGTH,
                "max_temperature": schemas.MAX_TEMPERATURE, "max_latent_value": schemas.MAX_LATENT_VALUE,
                "max_upload_bytes": settings.max_upload_bytes,
                "max_upload_pixels": settings.max_upload_pixels, "max_upload_files": schemas.MAX_UPLOAD_FILES,
                "max_refine_steps": schemas.MAX_REFINE_STEPS, "timeout_s": settings.timeout_s},
        weak_attributes=weak_attributes(face_model))


def _well_formed_counts(counts: Any) -> tuple[dict[str, list[int]], list[str]]:
    """A bundle's attribute counts (name -> [with, without]) that are whole numbers, and a note
    naming those that are not (a hand-edited bundle): they are left out rather than failing."""
    if not isinstance(counts, dict):
        return {}, [f"the bundle's attribute counts are a {type(counts).__name__}, not a mapping; left out"]
    good = {str(name): value for name, value in counts.items()
            if isinstance(value, list) and all(type(number) is int for number in value)}
    bad = [str(name)[:80] for name in counts if str(name) not in good]
    if not bad:
        return good, []
    return good, [f"the bundle's attribute counts for {', '.join(bad[:5])} are not lists of whole numbers; left out"]


@synthesis.post("/generate", tags=["synthesis"], summary="Faces from the prior, with attribute strengths",
                responses=FACES)
async def generate(body: schemas.GenerateRequest, pipeline: Pipeline, batcher: Batcher) -> Response:
    seed = body.seed if body.seed is not None else secrets.randbelow(2**31)
    # Each request draws from its own seeded generator, so batching cannot change its codes.
    latents = await edited_latents(pipeline, batcher, pipeline.sample_latents(body.n, seed, body.temperature), body)
    decoded = await batcher.decode(latents)
    return await faces_response(decoded, latents, body, seed)


@synthesis.post("/decode", tags=["synthesis"], summary="Faces for given latent codes", responses=FACES)
async def decode(body: schemas.DecodeRequest, pipeline: Pipeline, batcher: Batcher) -> Response:
    latents = await edited_latents(pipeline, batcher, pipeline.as_latents(body.latents), body)
    decoded = await batcher.decode(latents)
    return await faces_response(decoded, latents, body)


def guided_cost(strengths: dict[str, float], kept: list[str], method: str) -> int:
    """What a guided walk of one face weighs against the batcher's budget: decoder passes
    (a forward pass and one backward pass per edited attribute and per kept attribute and
    member of the shipped ensemble, each step)."""
    if method != "guided":
        return 0
    config = shipped_config()
    held = len(expand_keep(config.attribute_names, strengths, kept)) * config.members
    return (GuidedSettings().steps + 1) * (1 + len(strengths) + held)


async def edited_latents(pipeline: Pipeline, batcher: Batcher, codes: torch.Tensor,
                         body: schemas.GenerateRequest | schemas.DecodeRequest) -> torch.Tensor:
    """N x D codes with the request's edits: a linear offset at once; a guided walk on an inference
    thread, weighed as decoder passes and stopped at the request's deadline."""
    edit = prepare_edits(pipeline, body.attributes, body.keep, body.keep_mode, body.method)  # 422 before any work
    if body.method == "linear":
        return edit(codes)
    cost = len(codes) * guided_cost(body.attributes, body.keep, body.method)
    return await batcher.run(lambda: edit(codes), cost=cost)


@synthesis.post("/morph", tags=["synthesis"], summary="A row of faces morphing from one face to another",
                responses=FACES)
async def morph(body: schemas.MorphRequest, pipeline: Pipeline, batcher: Batcher) -> Response:
    def endpoint(end: schemas.MorphEndpoint) -> torch.Tensor:
        if end.latent is not None:
            return pipeline.as_latents(end.latent)
        return pipeline.sample_latents(1, end.seed or 0, body.temperature)

    start, end = endpoint(body.start), endpoint(body.end)
    result = await batcher.run(lambda: pipeline.morph(
        n_pairs=1, steps=body.steps, method=body.method, start=start.cpu().numpy(), end=end.cpu().numpy()))
    return await result_response(result, body)
