"""Request and response models of the REST API, with their bounds.

Every request model refuses unknown fields (a typo such as `temprature` is a 422, not a
silently ignored value) and is strict about types (`"n": true` or `"n": "2"` is a 422, not 1
or 2). Attribute names are checked against the loaded model by the server, since only it
knows them; latent sizes likewise.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ...edit_choices import DEFAULT_KEEP_MODE, SERVER_KEEP_MODES, keep_mode_help

# The bounds, shared with the command line (facevae.limits: one definition).
from ...limits import (  # noqa: F401 - re-exported: the server and its tests read them from here
    MAX_ATTRIBUTES,
    MAX_FACES,
    MAX_LATENT_DIM,
    MAX_LATENT_VALUE,
    MAX_NAME_LENGTH,
    MAX_REFINE_STEPS,
    MAX_SCALE,
    MAX_SEED,
    MAX_STRENGTH,
    MAX_TEMPERATURE,
    MAX_UPLOAD_FILES,
)

Strength = Annotated[float, Field(ge=-MAX_STRENGTH, le=MAX_STRENGTH, allow_inf_nan=False)]
Attributes = Annotated[
    dict[Annotated[str, Field(max_length=MAX_NAME_LENGTH)], Strength],
    Field(max_length=MAX_ATTRIBUTES, description="Attribute name -> strength (see GET /v1/model for the names)",
          examples=[{"Smiling": 1.5, "Eyeglasses": -1.0}]),
]
Keep = Annotated[
    list[Annotated[str, Field(min_length=1, max_length=MAX_NAME_LENGTH)]],
    Field(max_length=MAX_ATTRIBUTES, description="Attributes to keep unchanged while editing (names as in "
          "GET /v1/model); an attribute cannot be both edited and kept", examples=[["Male", "Young"]]),
]
# edit_choices.SERVER_KEEP_MODES: all but "decoded", which decodes ~200 faces per request.
KeepModeName = Literal[SERVER_KEEP_MODES]  # type: ignore[valid-type]  # Literal of a tuple: its members
KEEP_MODE_HELP = keep_mode_help(SERVER_KEEP_MODES)
KeepMode = Annotated[KeepModeName, Field(description=KEEP_MODE_HELP)]
Latent = Annotated[list[Annotated[float, Field(ge=-MAX_LATENT_VALUE, le=MAX_LATENT_VALUE, allow_inf_nan=False)]],
                   Field(min_length=1, max_length=MAX_LATENT_DIM)]
OutputFormat = Literal["png", "json"]


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True)


class OutputOptions(StrictModel):
    """How the faces come back: one PNG (a face, or a grid for several), or JSON."""

    format: OutputFormat = Field("png", description="png: image/png; json: latents (+ base64 PNGs on request)")
    columns: int | None = Field(None, ge=1, le=MAX_FACES, description="Faces per grid row (default: up to 10)")
    scale: int = Field(1, ge=1, le=MAX_SCALE, description="Integer enlargement of PNG output (nearest neighbour)")
    include_images: bool = Field(False, description="json only: add each face as a base64 PNG")


class GenerateRequest(OutputOptions):
    """Faces drawn from the prior; the same seed always gives the same bytes."""

    n: int = Field(1, ge=1, le=MAX_FACES, description="Number of faces")
    seed: int | None = Field(None, ge=0, le=MAX_SEED, description="Random seed; omitted: a random one, "
                             "returned in the X-Seed header and the JSON body")
    temperature: float = Field(1.0, ge=0.0, le=MAX_TEMPERATURE, allow_inf_nan=False,
                               description="Standard deviation of the sampled codes (1 = the prior)")
    attributes: Attributes = Field(default_factory=dict)
    keep: Keep = Field(default_factory=list)
    keep_mode: KeepMode = DEFAULT_KEEP_MODE

    model_config = ConfigDict(extra="forbid", strict=True, json_schema_extra={
        "examples": [{"n": 1, "seed": 42}, {"n": 16, "seed": 7, "attributes": {"Smiling": 2.0}, "columns": 4}]})


class DecodeRequest(OutputOptions):
    """Faces for given latent codes (e.g. from a JSON /v1/generate answer)."""

    latents: list[Latent] = Field(min_length=1, max_length=MAX_FACES, description="N x latent_dim codes")
    attributes: Attributes = Field(default_factory=dict)
    keep: Keep = Field(default_factory=list)
    keep_mode: KeepMode = DEFAULT_KEEP_MODE

    @model_validator(mode="after")
    def _rectangular(self) -> "DecodeRequest":
        lengths = sorted({len(row) for row in self.latents})
        if len(lengths) > 1:
            raise ValueError(f"every latent code must have the same length; got lengths {lengths[:5]}")
        return self


class MorphEndpoint(StrictModel):
    """One end of a morph: a seed (a face from the prior) or a latent code."""

    seed: int | None = Field(None, ge=0, le=MAX_SEED)
    latent: Latent | None = None

    @model_validator(mode="after")
    def _exactly_one(self) -> "MorphEndpoint":
        if (self.seed is None) == (self.latent is None):
            raise ValueError("give exactly one of 'seed' or 'latent'")
        return self


class MorphRequest(OutputOptions):
    """A row of faces from `start` to `end`, both included."""

    start: MorphEndpoint = Field(examples=[{"seed": 1}])
    end: MorphEndpoint = Field(examples=[{"seed": 2}])
    steps: int = Field(8, ge=2, le=MAX_FACES, description="Faces in the row, the two ends included")
    method: Literal["linear", "slerp"] = Field("slerp", description="slerp keeps codes at the prior's typical norm")
    temperature: float = Field(1.0, ge=0.0, le=MAX_TEMPERATURE, allow_inf_nan=False,
                               description="Scales codes drawn from seeds")


class FacesResponse(BaseModel):
    """The JSON form of a synthesis answer."""

    latents: list[list[float]] = Field(description="N x latent_dim codes; POST them to /v1/decode to redraw")
    image_size: int
    seed: int | None = None
    images: list[str] | None = Field(None, description="Each face as a base64 PNG (include_images=true)")
    notes: list[str] = Field(default_factory=list)


class ModelInfo(BaseModel):
    """What GET /v1/model answers."""

    config: dict[str, Any]
    latent_dim: int
    image_size: int
    has_encoder: bool
    attributes: list[str]
    attribute_counts: dict[str, list[int]]
    preprocessing: dict[str, Any]
    provenance: dict[str, Any]
    licence: str | None
    backend: str
    precision: str = Field(description="Of the generate/decode decoder: fp32 or bf16")
    limits: dict[str, Any]
    notes: list[str] = Field(default_factory=list, description="Parts of the bundle left out, and why")


class ErrorResponse(BaseModel):
    """Every error: a short stable code and a sentence that says what to fix."""

    error: str = Field(examples=["unknown_attribute"])
    detail: Any = Field(examples=["Unknown attribute 'Smilling'. Did you mean 'Smiling'? Valid names: ..."])
