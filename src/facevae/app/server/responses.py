"""Faces as HTTP answers: one face as a bare PNG, several as the pipeline's grid, or JSON."""

from __future__ import annotations

import base64

import numpy as np
import torch
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from ... import imaging
from ...inference.pipeline import GRID_COLUMNS, SynthesisResult
from . import schemas
from .batching import Decoded


def _scaled(images: np.ndarray, scale: int) -> np.ndarray:
    return images if scale == 1 else images.repeat(scale, axis=1).repeat(scale, axis=2)


def _notes_header(notes: list[str]) -> dict[str, str]:
    return {"X-Facevae-Notes": "; ".join(notes).encode("ascii", "replace").decode()} if notes else {}


async def faces_response(decoded: Decoded, latents: torch.Tensor, options: schemas.OutputOptions,
                         seed: int | None = None) -> Response:
    """The answer to a generate or decode request, with how it was batched."""
    result = SynthesisResult(decoded.images, latents.detach().cpu().numpy().astype(np.float32),
                             options.columns or min(len(decoded.images), GRID_COLUMNS))
    headers = {"X-Batch-Rows": str(decoded.batch_rows), "X-Batch-Requests": str(decoded.batch_requests)}
    if seed is not None:
        headers["X-Seed"] = str(seed)
    return await result_response(result, options, seed, headers)


async def result_response(result: SynthesisResult, options: schemas.OutputOptions, seed: int | None = None,
                          headers: dict[str, str] | None = None) -> Response:
    """PNG: the grid of result.images (a bare face when there is one); JSON: result.latents and,
    on request, the faces they decode to (result.faces), without the inputs shown beside them."""
    headers = {**(headers or {}), **_notes_header(result.notes)}

    def render() -> Response:
        if options.format == "json":
            images = None
            if options.include_images:
                images = [base64.b64encode(imaging.encode_png(face)).decode()
                          for face in _scaled(result.faces, options.scale)]
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
