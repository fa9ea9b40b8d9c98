"""method "guided" on POST /v1/generate, /v1/decode and /v1/edit: the same codes as the
pipeline's guided walk, run on the batcher's inference thread; bad methods are 422."""

from __future__ import annotations

import json

import numpy as np
from fastapi.testclient import TestClient

from facevae.inference.pipeline import FacePipeline
from support.http import assert_error
from support.images import png_bytes


def test_guided_generate_and_decode_match_the_pipeline(tiny_api: TestClient, tiny_pipeline: FacePipeline) -> None:
    # keep one attribute, not "*": 40 gradients a step could pass the server's deadline on a busy test machine
    body = {"n": 2, "seed": 3, "attributes": {"Smiling": 2.0}, "keep": ["Eyeglasses"], "method": "guided",
            "format": "json"}
    response = tiny_api.post("/v1/generate", json=body)
    assert response.status_code == 200, response.text
    expected = tiny_pipeline.generate(2, seed=3, attributes={"Smiling": 2.0}, keep=["Eyeglasses"],
                                      method="guided").latents
    np.testing.assert_allclose(np.array(response.json()["latents"]), expected, atol=1e-5)
    start = tiny_pipeline.sample_latents(2, 3).tolist()
    decoded = tiny_api.post("/v1/decode", json={"latents": start, "attributes": {"Smiling": 2.0},
                                                "keep": ["Eyeglasses"], "method": "guided", "format": "json"})
    np.testing.assert_allclose(np.array(decoded.json()["latents"]), expected, atol=1e-5)


def test_guided_edit_and_bad_methods(tiny_api: TestClient) -> None:
    data = {"attributes": json.dumps({"Smiling": 1.0}), "whole_image": "true", "format": "json", "method": "guided"}
    upload = {"image": ("face.png", png_bytes(), "image/png")}
    edited = tiny_api.post("/v1/edit", files=upload, data=data)
    assert edited.status_code == 200, edited.text
    assert tiny_api.post("/v1/edit", files=upload, data={**data, "method": "bent"}).status_code == 422
    assert tiny_api.post("/v1/generate", json={"n": 1, "method": "bent"}).status_code == 422
    error = assert_error(tiny_api.post("/v1/generate", json={"n": 1, "attributes": {"Smiling": 1}, "keep": ["*"]}),
                         422, "invalid_input")
    assert "needs method='guided'" in error["detail"]


def test_guided_cost_counts_every_held_reading() -> None:
    """A guided request weighs one decoder pass per step for the forward pass, each edited
    attribute and each kept attribute of each member of the shipped ensemble; linear weighs 0."""
    from facevae.app.server.routes import guided_cost
    from facevae.inference.guided import GuidedSettings
    from facevae.model.shipped import load_shipped, shipped_config

    members = shipped_config().members
    assert members == len(load_shipped().members) and len(shipped_config().attribute_names) == 40
    passes = GuidedSettings().steps + 1  # the steps and the last pull-back
    assert guided_cost({"Smiling": 2.0}, ["Male"], "linear") == 0
    assert guided_cost({"Smiling": 2.0}, [], "guided") == passes * 2
    assert guided_cost({"Smiling": 2.0}, ["Male", "Young"], "guided") == passes * (2 + 2 * members)
    assert guided_cost({"Smiling": 2.0}, ["*"], "guided") == passes * (2 + 39 * members)  # all but the edited one
    assert guided_cost({"Smiling": 2.0, "Male": 1.0}, ["*"], "guided") == passes * (3 + 38 * members)
