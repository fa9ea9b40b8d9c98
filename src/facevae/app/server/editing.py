"""Endpoints that take photos: POST /v1/edit and /v1/reconstruct.

Each request's deadline starts when its body has arrived: decoding the uploads and waiting in
the queue count against it, and refinement and decoder tuning stop between steps once it has
passed. Photos are tuned by default (facevae.inference.tuning): each tuned decoder lives only
while its job runs, so at most `workers` jobs' decoders exist at once (and the cost budget bounds
the tuning work queued behind them); they are freed when the job ends.
"""

from __future__ import annotations

import time
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.responses import Response
from pydantic import TypeAdapter, ValidationError

from ...edit_choices import DEFAULT_KEEP_MODE
from ...errors import UserError
from ...inference.guided import prepare_edits
from ...inference.pipeline import SynthesisResult
from ...inference.tuning import tuning_steps
from . import schemas
from .dependencies import Batcher, Pipeline, Settings, Uploads
from .encodings import EncodingCache
from .errors import clipped
from .responses import result_response
from .routes import PNG, guided_cost

editing = APIRouter(prefix="/v1", tags=["editing"])


def _parse_attributes(text: str) -> dict[str, float]:
    try:
        return TypeAdapter(schemas.Attributes).validate_json(text or "{}")
    except ValidationError as error:
        problems = "; ".join(f"{clipped('.'.join(map(str, e['loc'])) or 'value')}: {e['msg']}"
                             for e in error.errors()[:10])
        raise UserError(f"'attributes' must be a JSON object of attribute name -> strength in "
                        f"[-{schemas.MAX_STRENGTH:g}, {schemas.MAX_STRENGTH:g}] ({problems})") from None


def _parse_keep(text: str) -> list[str]:
    """The comma-separated `keep` field, within schemas.Keep's bounds (as /v1/generate's JSON list)."""
    names = [name.strip() for name in text.split(",") if name.strip()]
    try:
        return TypeAdapter(schemas.Keep).validate_python(names)
    except ValidationError as error:
        problems = "; ".join(clipped(e["msg"]) for e in error.errors()[:10])
        raise UserError(f"'keep' must list at most {schemas.MAX_ATTRIBUTES} attribute names of at most "
                        f"{schemas.MAX_NAME_LENGTH} characters, separated by commas ({problems})") from None


def get_encodings(request: Request) -> EncodingCache:
    """The app's cache of encoded photos, made on first use."""
    state = request.app.state
    if getattr(state, "encodings", None) is None:
        state.encodings = EncodingCache()
    return state.encodings


Encodings = Annotated[EncodingCache, Depends(get_encodings)]


# A tuning step draws the pivot and its regulariser codes and differentiates every decoder weight:
# counted as 5 refinement steps, on the safe side (docs/benchmarks.md times both).
TUNE_STEP_COST = 5
TUNE_STEPS_FIELD = Form(ge=0, le=schemas.MAX_TUNE_STEPS,
                        description="Steps of the per-photo decoder tuning (closer likeness); 0 = none; "
                                    "default: the library's")


def refine_cost(photos: int, refine_steps: int, tune_steps: int | None = 0) -> int:
    """What a photo job weighs against the batcher's refinement budget: decoder passes."""
    return photos * (refine_steps + 1 + TUNE_STEP_COST * tuning_steps(tune_steps))


@editing.post("/edit", summary="Your photo with attribute edits",
              responses={200: {"content": {"image/png": {}}, "description": "The edited face, or "
                               "[aligned photo, reconstruction, edited] with view=grid"}})
async def edit(
    pipeline: Pipeline, batcher: Batcher, settings: Settings, uploads: Uploads, encodings: Encodings,
    image: Annotated[UploadFile, File(description="A face photo: PNG, JPEG, WebP, BMP or GIF")],
    attributes: Annotated[str, Form(description='JSON object, e.g. {"Smiling": 1.5}')] = "{}",
    keep: Annotated[str, Form(description="Comma-separated attributes to keep unchanged, e.g. Male,Young")] = "",
    keep_mode: Annotated[schemas.KeepModeName, Form(description=schemas.KEEP_MODE_HELP)] = DEFAULT_KEEP_MODE,
    method: Annotated[Literal["linear", "guided"], Form(
        description="linear (default) or guided: walk the face along the shipped classifier's gradient")] = "linear",
    refine_steps: Annotated[int, Form(ge=0, le=schemas.MAX_REFINE_STEPS,
                                      description="Optimisation steps after encoding (slower, closer)")] = 0,
    whole_image: Annotated[bool, Form(description="Skip face detection; use the whole picture")] = False,
    tune_steps: Annotated[int | None, TUNE_STEPS_FIELD] = None,
    view: Annotated[Literal["edited", "grid"], Form()] = "edited",
    format: Annotated[schemas.OutputFormat, Form()] = "png",
    include_images: Annotated[bool, Form()] = False,
    scale: Annotated[int, Form(ge=1, le=schemas.MAX_SCALE)] = 1,
) -> Response:
    deadline = time.monotonic() + settings.timeout_s
    strengths = _parse_attributes(attributes)
    kept = _parse_keep(keep)
    prepare_edits(pipeline, strengths, kept, keep_mode, method)  # unknown names: 422 before any image work
    async with uploads.decoded([image], deadline) as pictures:
        def edit_photo() -> SynthesisResult:  # the photo encoded (and tuned) once per picture and settings
            photo = encodings.encode(pipeline, pictures[0], refine_steps, whole_image, tune_steps)
            return pipeline.edit(photo, strengths, keep=kept, keep_mode=keep_mode, method=method)

        result = await batcher.run(edit_photo, deadline=deadline,
                                   cost=refine_cost(1, refine_steps, tune_steps) + guided_cost(strengths, kept, method))
    options = schemas.OutputOptions(format=format, scale=scale, include_images=include_images)
    if view == "edited":  # the edited face alone: the last of the faces the codes draw
        result = SynthesisResult(result.faces[-1:], result.latents[-1:], 1, notes=result.notes)
    return await result_response(result, options)


@editing.post("/reconstruct", summary="Photos next to their reconstructions",
              responses={**PNG, 200: {**PNG[200], "model": schemas.FacesResponse}})
async def reconstruct(
    pipeline: Pipeline, batcher: Batcher, settings: Settings, uploads: Uploads,
    images: Annotated[list[UploadFile], File(description=f"1 to {schemas.MAX_UPLOAD_FILES} photos, "
                                                         f"each face found and framed like /v1/edit's")],
    refine_steps: Annotated[int, Form(ge=0, le=schemas.MAX_REFINE_STEPS)] = 0,
    whole_image: Annotated[bool, Form(description="Skip face detection; use the whole pictures")] = False,
    tune_steps: Annotated[int | None, TUNE_STEPS_FIELD] = None,
    format: Annotated[schemas.OutputFormat, Form()] = "png",
    include_images: Annotated[bool, Form()] = False,
    scale: Annotated[int, Form(ge=1, le=schemas.MAX_SCALE)] = 1,
) -> Response:
    deadline = time.monotonic() + settings.timeout_s
    if not 1 <= len(images) <= schemas.MAX_UPLOAD_FILES:
        raise UserError(f"send 1 to {schemas.MAX_UPLOAD_FILES} images, got {len(images)}")
    async with uploads.decoded(images, deadline) as pictures:
        result = await batcher.run(lambda: pipeline.reconstruct(list(pictures), refine_steps=refine_steps,
                                                                whole_image=whole_image, tune_steps=tune_steps),
                                   cost=refine_cost(len(images), refine_steps, tune_steps), deadline=deadline)
    return await result_response(result, schemas.OutputOptions(format=format, scale=scale,
                                                               include_images=include_images))
