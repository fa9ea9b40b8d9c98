"""method "guided" on POST /v1/generate, /v1/decode and /v1/edit: the same codes as the
pipeline's guided walk, run on the batcher's inference thread; bad methods are 422."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient
from support.http import assert_error
from support.images import png_bytes

from facevae.app.server.app import create_app
from facevae.inference.pipeline import FacePipeline
from facevae.model.bundle import load_bundle


@pytest.fixture
def pipe(tiny_bundle: Path) -> FacePipeline:
    return FacePipeline(load_bundle(tiny_bundle))


@pytest.fixture
def client(pipe: FacePipeline):
    with TestClient(create_app(pipe)) as test_client:
        yield test_client


def test_guided_generate_and_decode_match_the_pipeline(client: TestClient, pipe: FacePipeline) -> None:
    body = {"n": 2, "seed": 3, "attributes": {"Smiling": 2.0}, "keep": ["*"], "method": "guided", "format": "json"}
    response = client.post("/v1/generate", json=body)
    assert response.status_code == 200, response.text
    expected = pipe.generate(2, seed=3, attributes={"Smiling": 2.0}, keep=["*"], method="guided").latents
    np.testing.assert_allclose(np.array(response.json()["latents"]), expected, atol=1e-5)
    start = pipe.sample_latents(2, 3).tolist()
    decoded = client.post("/v1/decode", json={"latents": start, "attributes": {"Smiling": 2.0}, "keep": ["*"],
                                              "method": "guided", "format": "json"})
    np.testing.assert_allclose(np.array(decoded.json()["latents"]), expected, atol=1e-5)


def test_guided_edit_and_bad_methods(client: TestClient) -> None:
    data = {"attributes": json.dumps({"Smiling": 1.0}), "whole_image": "true", "format": "json", "method": "guided"}
    upload = {"image": ("face.png", png_bytes(), "image/png")}
    edited = client.post("/v1/edit", files=upload, data=data)
    assert edited.status_code == 200, edited.text
    assert client.post("/v1/edit", files=upload, data={**data, "method": "bent"}).status_code == 422
    assert client.post("/v1/generate", json={"n": 1, "method": "bent"}).status_code == 422
    error = assert_error(client.post("/v1/generate", json={"n": 1, "attributes": {"Smiling": 1}, "keep": ["*"]}),
                         422, "invalid_input")
    assert "needs method='guided'" in error["detail"]
