"""facevae.app.server.app through FastAPI's TestClient: every endpoint and every error path."""

from __future__ import annotations

import asyncio
import base64
import json
from pathlib import Path

import numpy as np
import pytest
from fastapi.testclient import TestClient

from facevae.app.server.app import create_app
from facevae.imaging import make_grid
from facevae.inference.encoded import EncodedPhoto
from facevae.inference.pipeline import FacePipeline
from facevae.model.bundle import load_bundle
from support.http import assert_error, running, until
from support.images import open_png, png_bytes
from support.server import GatedPipeline


@pytest.fixture
def pipe(tiny_bundle: Path) -> FacePipeline:
    return FacePipeline(load_bundle(tiny_bundle))


@pytest.fixture
def client(pipe: FacePipeline):
    with TestClient(create_app(pipe, max_upload_bytes=64 * 1024, max_upload_pixels=200_000)) as test_client:
        yield test_client


# --- model, health, docs ----------------------------------------------------------------

def test_model_info_lists_config_attributes_provenance(client: TestClient):
    info = client.get("/v1/model").json()
    assert info["attributes"] == ["Smiling", "Eyeglasses"]
    assert info["latent_dim"] == 16 and info["image_size"] == 32 and info["config"]["channels"] == [8, 16, 16]
    assert info["provenance"]["source"] == "tests: random initialisation"
    assert info["has_encoder"] is True and info["backend"] == "torch"
    assert info["limits"]["max_faces"] == 64 and info["limits"]["max_upload_bytes"] == 64 * 1024


def test_health_ready_and_openapi(client: TestClient):
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json()["status"] == "ready"
    paths = client.get("/openapi.json").json()["paths"]
    for path in ("/v1/model", "/v1/generate", "/v1/edit", "/v1/reconstruct", "/v1/morph", "/v1/decode",
                 "/healthz", "/readyz"):
        assert path in paths
    assert "swagger" in client.get("/docs").text.lower()


def test_not_ready_before_the_model_is_loaded(tiny_bundle: Path):
    app = create_app(tiny_bundle)  # no lifespan run: nothing loaded
    client = TestClient(app)
    assert client.get("/healthz").status_code == 200
    response = client.get("/readyz")
    assert_error(response, 503, "not_ready")
    assert assert_error(client.post("/v1/generate", json={}), 503, "not_ready")


def test_a_model_path_is_loaded_at_start_up_with_the_asked_precision(tiny_bundle: Path):
    with TestClient(create_app(tiny_bundle, precision="fp32")) as client:
        assert client.get("/readyz").status_code == 200
        info = client.get("/v1/model").json()
        assert info["attributes"] == ["Smiling", "Eyeglasses"] and info["precision"] == "fp32"
        face = open_png(client.post("/v1/generate", json={"seed": 3}).content)
    assert np.array_equal(face, FacePipeline(load_bundle(tiny_bundle), precision="fp32").generate(1, seed=3).images[0])


# --- generate ---------------------------------------------------------------------------

def test_generate_one_face_is_the_pipelines_face(client: TestClient, pipe: FacePipeline):
    response = client.post("/v1/generate", json={"seed": 7})
    assert response.status_code == 200 and response.headers["content-type"] == "image/png"
    assert response.headers["x-seed"] == "7"
    assert np.array_equal(open_png(response.content), pipe.generate(1, seed=7).images[0])


def test_same_seed_same_bytes_and_a_random_seed_is_reported(client: TestClient):
    first = client.post("/v1/generate", json={"seed": 3, "n": 4})
    assert first.content == client.post("/v1/generate", json={"seed": 3, "n": 4}).content
    assert first.content != client.post("/v1/generate", json={"seed": 4, "n": 4}).content
    random = client.post("/v1/generate", json={})
    seed = int(random.headers["x-seed"])
    assert client.post("/v1/generate", json={"seed": seed}).content == random.content


def test_generate_grid_layout_and_scale(client: TestClient, pipe: FacePipeline):
    response = client.post("/v1/generate", json={"seed": 1, "n": 6, "columns": 3, "scale": 2})
    grid = open_png(response.content)
    expected = np.asarray(make_grid(pipe.generate(6, seed=1).images, 3, scale=2))
    assert grid.shape == expected.shape == (2 + 2 * 66, 2 + 3 * 66, 3)
    assert np.abs(grid.astype(int) - expected).max() <= 1  # equal up to float32 rounding


def test_generate_json_gives_latents_and_base64_faces(client: TestClient, pipe: FacePipeline):
    body = client.post("/v1/generate", json={"seed": 2, "n": 3, "format": "json", "include_images": True,
                                             "attributes": {"Smiling": 1.5}}).json()
    expected = pipe.sample_latents(3, 2) + pipe.resolve_attributes({"Smiling": 1.5})
    assert np.array_equal(np.array(body["latents"], dtype=np.float32), expected.numpy())
    assert body["seed"] == 2 and body["image_size"] == 32 and len(body["images"]) == 3
    assert open_png(base64.b64decode(body["images"][0])).shape == (32, 32, 3)
    assert "images" not in client.post("/v1/generate", json={"seed": 2, "format": "json"}).json()


def test_attributes_change_the_face(client: TestClient):
    plain = client.post("/v1/generate", json={"seed": 5}).content
    assert client.post("/v1/generate", json={"seed": 5, "attributes": {"Eyeglasses": 3}}).content != plain
    assert client.post("/v1/generate", json={"seed": 5, "attributes": {"Eyeglasses": 0}}).content == plain


def test_unknown_attribute_lists_the_valid_names(client: TestClient):
    body = assert_error(client.post("/v1/generate", json={"attributes": {"Smilling": 1}}), 422, "unknown_attribute")
    assert body["valid_attributes"] == ["Smiling", "Eyeglasses"] and "Did you mean 'Smiling'" in body["detail"]


@pytest.mark.parametrize("payload, field", [
    ({"n": 65}, "n"), ({"n": 0}, "n"), ({"seed": -1}, "seed"), ({"temperature": -0.5}, "temperature"),
    ({"attributes": {"Smiling": 10.5}}, "attributes.Smiling"), ({"sed": 3}, "sed"), ({"format": "gif"}, "format"),
    ({"scale": 9}, "scale"), ({"n": "many"}, "n"),
])
def test_generate_bounds_and_unknown_fields(client: TestClient, payload: dict, field: str):
    body = assert_error(client.post("/v1/generate", json=payload), 422, "invalid_request")
    assert field in [f["field"] for f in body["fields"]]


def test_malformed_json_is_a_422(client: TestClient):
    response = client.post("/v1/generate", content=b"{not json", headers={"content-type": "application/json"})
    assert_error(response, 422, "invalid_request")


# --- decode and morph -------------------------------------------------------------------

def test_decode_redraws_generated_latents_byte_for_byte(client: TestClient):
    generated = client.post("/v1/generate", json={"seed": 9, "n": 2, "format": "json"}).json()
    png = client.post("/v1/generate", json={"seed": 9, "n": 2}).content
    assert client.post("/v1/decode", json={"latents": generated["latents"]}).content == png


def test_decode_checks_the_latent_size(client: TestClient):
    body = assert_error(client.post("/v1/decode", json={"latents": [[0.0] * 15]}), 422, "invalid_input")
    assert "N x 16" in body["detail"]
    assert_error(client.post("/v1/decode", json={"latents": []}), 422, "invalid_request")


def test_morph_runs_from_start_to_end(client: TestClient, pipe: FacePipeline):
    body = client.post("/v1/morph", json={"start": {"seed": 1}, "end": {"seed": 2}, "steps": 5,
                                          "format": "json"}).json()
    latents = np.array(body["latents"], dtype=np.float32)
    assert latents.shape == (5, 16)
    assert np.array_equal(latents[0], pipe.sample_latents(1, 1)[0].numpy())
    assert np.array_equal(latents[-1], pipe.sample_latents(1, 2)[0].numpy())
    row = open_png(client.post("/v1/morph", json={"start": {"seed": 1}, "end": {"latent": latents[-1].tolist()},
                                                  "steps": 5, "method": "linear"}).content)
    assert row.shape == (36, 2 + 5 * 34, 3)


def test_morph_endpoints_need_exactly_one_of_seed_or_latent(client: TestClient):
    response = client.post("/v1/morph", json={"start": {"seed": 1, "latent": [0.0] * 16}, "end": {"seed": 2}})
    body = assert_error(response, 422, "invalid_request")
    assert "exactly one" in body["detail"]
    assert_error(client.post("/v1/morph", json={"start": {}, "end": {"seed": 2}}), 422, "invalid_request")


# --- uploads: edit and reconstruct -------------------------------------------------------

def upload(data: bytes, content_type: str = "image/png", name: str = "face.png") -> dict:
    return {"image": (name, data, content_type)}


def test_edit_returns_the_edited_face(client: TestClient, pipe: FacePipeline):
    photo = png_bytes(size=(40, 48))
    data = {"attributes": json.dumps({"Smiling": 2.0}), "whole_image": "true"}
    response = client.post("/v1/edit", files=upload(photo), data=data)
    assert response.status_code == 200, response.text
    edited = open_png(response.content)
    expected = pipe.edit(photo, {"Smiling": 2.0}, whole_image=True).images[2]
    assert edited.shape == (32, 32, 3) and np.array_equal(edited, expected)
    assert "whole image" in response.headers["x-facevae-notes"]
    grid = open_png(client.post("/v1/edit", files=upload(photo), data={**data, "view": "grid"}).content)
    assert grid.shape[1] == 2 + 3 * 34  # photo, reconstruction, edited


def test_edit_tunes_the_photo_unless_told_not_to(client: TestClient, pipe: FacePipeline):
    photo = png_bytes(size=(40, 48))
    data = {"attributes": json.dumps({"Smiling": 2.0}), "whole_image": "true"}
    untuned = open_png(client.post("/v1/edit", files=upload(photo), data={**data, "tune_steps": "0"}).content)
    assert np.array_equal(untuned, pipe.edit(photo, {"Smiling": 2.0}, whole_image=True, tune_steps=0).images[2])
    assert not np.array_equal(untuned, open_png(client.post("/v1/edit", files=upload(photo), data=data).content))
    assert client.post("/v1/edit", files=upload(photo), data={**data, "tune_steps": "100000"}).status_code == 422


def test_edit_json_gives_the_codes_of_the_faces_it_drew(client: TestClient):
    data = {"whole_image": "true", "format": "json", "include_images": "true", "attributes": '{"Smiling": 1}'}
    edited = client.post("/v1/edit", files=upload(png_bytes()), data=data).json()
    assert np.array(edited["latents"]).shape == (1, 16) and len(edited["images"]) == 1  # the edited face
    both = client.post("/v1/edit", files=upload(png_bytes()), data={**data, "view": "grid"}).json()
    assert np.array(both["latents"]).shape == (2, 16) and len(both["images"]) == 2  # reconstruction, edited
    assert both["latents"][1] == edited["latents"][0] and both["images"][1] == edited["images"][0]


def test_edit_keeps_the_kept_attributes_in_each_mode(client: TestClient, pipe: FacePipeline):
    data = {"whole_image": "true", "format": "json", "view": "grid", "attributes": '{"Smiling": 2}',
            "keep": "Eyeglasses"}
    for mode in ("auto", "orthogonal", "group"):
        codes = np.array(client.post("/v1/edit", files=upload(png_bytes()), data={**data, "keep_mode": mode}
                                     ).json()["latents"])
        offset = pipe.resolve_attributes({"Smiling": 2.0}, keep=["Eyeglasses"], keep_mode=mode).numpy()
        assert np.allclose(codes[1] - codes[0], offset, atol=1e-5)
        assert abs(np.dot(codes[1] - codes[0], pipe.model.attributes["Eyeglasses"].numpy())) < 1e-3
    plain = np.array(client.post("/v1/edit", files=upload(png_bytes()), data={**data, "keep": ""}).json()["latents"])
    assert not np.allclose(plain[1] - plain[0], codes[1] - codes[0], atol=1e-3)  # keep made a difference
    assert_error(client.post("/v1/edit", files=upload(png_bytes()), data={**data, "keep_mode": "decoded"}),
                 422, "invalid_request")
    too_many = ",".join(f"Name{i}" for i in range(70))  # schemas.Keep's bounds hold for the form field too
    assert "at most 64" in assert_error(client.post("/v1/edit", files=upload(png_bytes()),
                                                    data={**data, "keep": too_many}), 422, "invalid_input")["detail"]


@pytest.mark.parametrize("attributes, code", [
    ('{"Smilling": 1}', "unknown_attribute"), ('{"Smiling": 11}', "invalid_input"),
    ("[1, 2]", "invalid_input"), ("{bad json", "invalid_input"),
])
def test_edit_rejects_bad_attribute_json(client: TestClient, attributes: str, code: str):
    response = client.post("/v1/edit", files=upload(png_bytes()), data={"attributes": attributes})
    body = assert_error(response, 422, code)
    if code == "invalid_input":
        assert "'attributes' must be a JSON object" in body["detail"]


def test_edits_of_one_photo_encode_it_once(client: TestClient, pipe: FacePipeline, monkeypatch: pytest.MonkeyPatch):
    encoded = []  # (refine_steps, whole_image) of every photo encoded (not an EncodedPhoto passed on)
    encode = pipe.encode

    def counted(photo, *args, **kwargs):
        if not isinstance(photo, EncodedPhoto):
            encoded.append(args)
        return encode(photo, *args, **kwargs)

    monkeypatch.setattr(pipe, "encode", counted)
    data = {"whole_image": "true", "format": "json", "view": "grid", "refine_steps": "2"}
    codes = [client.post("/v1/edit", files=upload(png_bytes()), data={**data, "attributes": json.dumps({"Smiling": s})}
                         ).json()["latents"] for s in (1.0, 2.0)]
    assert encoded == [(2, True)] and codes[0][0] == codes[1][0]  # one encoding, the same reconstruction
    assert not np.allclose(codes[0][1], codes[1][1])  # each edit its own
    client.post("/v1/edit", files=upload(png_bytes(seed=1)), data=data)  # another picture: encoded anew
    client.post("/v1/edit", files=upload(png_bytes()), data={**data, "refine_steps": "3"})  # other refinement
    assert encoded == [(2, True), (2, True), (3, True)]


def test_a_tuned_decoder_serves_one_request_only(client: TestClient, pipe: FacePipeline,
                                                 monkeypatch: pytest.MonkeyPatch):
    calls = []  # (what was encoded, tune_steps) of every encode call that works (not an EncodedPhoto passed on)
    encode = pipe.encode

    def counted(photo, *args, **kwargs):
        if not isinstance(photo, EncodedPhoto) or kwargs.get("tune_steps"):
            calls.append(("encoded photo" if isinstance(photo, EncodedPhoto) else "picture", kwargs.get("tune_steps")))
        return encode(photo, *args, **kwargs)

    monkeypatch.setattr(pipe, "encode", counted)
    data = {"whole_image": "true", "format": "json", "tune_steps": "1", "attributes": json.dumps({"Smiling": 1})}
    answers = [client.post("/v1/edit", files=upload(png_bytes()), data=data) for _ in range(2)]
    assert [answer.status_code for answer in answers] == [200, 200]
    # The picture is encoded once (untuned, cached); each request tunes its own decoder copy.
    assert calls == [("picture", 0), ("encoded photo", 1), ("encoded photo", 1)]


def test_a_photo_without_a_face_names_the_api_field_not_the_cli_flag(client: TestClient):
    sky = png_bytes(np.full((120, 120, 3), 128, np.uint8))  # one flat colour: no face
    body = assert_error(client.post("/v1/edit", files=upload(sky), data={"attributes": "{}"}), 422, "invalid_input")
    assert "No face found" in body["detail"] and "the `whole_image` field set to true" in body["detail"]
    assert "--" not in body["detail"]


def test_edit_rejects_bad_uploads_before_decoding(client: TestClient):
    good = png_bytes()
    assert_error(client.post("/v1/edit", files=upload(good, "text/plain")), 415, "unsupported_image")
    assert_error(client.post("/v1/edit", files=upload(b"MZ\x90\x00 not an image")), 415, "unsupported_image")
    assert_error(client.post("/v1/edit", files=upload(good[: len(good) // 2])), 400, "unreadable_image")
    too_many_pixels = png_bytes(np.zeros((500, 500, 3), np.uint8))  # small file, 250 000 pixels
    body = assert_error(client.post("/v1/edit", files=upload(too_many_pixels)), 413, "image_too_large")
    assert "pixels" in body["detail"]
    huge = png_bytes(size=(200, 200)) + b"\0" * (64 * 1024)  # over the 64 KiB limit
    assert_error(client.post("/v1/edit", files=upload(huge)), 413, "too_large")
    assert_error(client.post("/v1/edit", data={"attributes": "{}"}), 422, "invalid_request")  # no file


def test_an_oversized_body_without_content_length_is_cut_off(client: TestClient):
    def chunks():
        for _ in range(40):
            yield b"\0" * 4096  # 160 KiB in all, streamed without a Content-Length

    response = client.post("/v1/edit", content=chunks(), headers={"content-type": "multipart/form-data; boundary=x"})
    assert_error(response, 413, "too_large")


def test_reconstruct_shows_originals_and_reconstructions(client: TestClient):
    files = [("images", (f"{i}.png", png_bytes(seed=i), "image/png")) for i in range(3)]
    assert_error(client.post("/v1/reconstruct", files=files), 422, "invalid_input")  # no face: framing is the default
    whole = {"whole_image": "true"}
    grid = open_png(client.post("/v1/reconstruct", files=files, data=whole).content)
    assert grid.shape[1] > 3 * 34  # row labels on the left, 3 columns
    untuned = {**whole, "tune_steps": "0"}  # a tuned photo's code redraws it only with its tuned decoder
    body = client.post("/v1/reconstruct", files=files,
                       data={**untuned, "format": "json", "include_images": "true"}).json()
    assert np.array(body["latents"]).shape == (3, 16) and len(body["images"]) == 3  # the reconstructions
    redrawn = client.post("/v1/decode", json={"latents": body["latents"], "format": "json", "include_images": True})
    for again, first in zip(redrawn.json()["images"], body["images"]):  # decoded in other batch shapes
        assert np.abs(open_png(base64.b64decode(again)).astype(int) - open_png(base64.b64decode(first))).max() <= 1


def test_reconstruct_limits_the_number_of_files(client: TestClient):
    files = [("images", (f"{i}.png", png_bytes(size=(8, 8), seed=i), "image/png")) for i in range(17)]
    body = assert_error(client.post("/v1/reconstruct", files=files), 422, "invalid_input")
    assert "1 to 16" in body["detail"]


# --- errors that are not about the request ----------------------------------------------

def test_unknown_paths_and_methods_are_json(client: TestClient):
    assert_error(client.get("/v2/generate"), 404, "not_found")
    assert_error(client.get("/v1/generate"), 405, "method_not_allowed")


def test_a_full_queue_answers_503_with_retry_after(tiny_bundle: Path):
    pipe = GatedPipeline(load_bundle(tiny_bundle))
    app = create_app(pipe, queue_size=1, inference_threads=1, batch_wait_ms=0)

    async def scenario():
        async with running(app) as client:
            batcher = app.state.batcher
            pipe.close()
            first = asyncio.create_task(client.post("/v1/generate", json={"seed": 1}))
            await until(pipe.entered.is_set)  # the only worker holds the first request
            second = asyncio.create_task(client.post("/v1/generate", json={"seed": 2}))
            await until(lambda: batcher.pending == 1)
            refused = await client.post("/v1/generate", json={"seed": 3})
            pipe.gate.set()
            return refused, await first, await second

    try:
        refused, first, second = asyncio.run(scenario())
    finally:
        pipe.gate.set()
    assert_error(refused, 503, "busy")
    assert int(refused.headers["retry-after"]) >= 1
    assert first.status_code == second.status_code == 200


def test_a_slow_request_times_out_with_504(tiny_bundle: Path):
    pipe = GatedPipeline(load_bundle(tiny_bundle))
    app = create_app(pipe, timeout_s=0.3, inference_threads=1)

    async def scenario():
        async with running(app) as client:
            pipe.close()
            response = await client.post("/v1/generate", json={"seed": 1})
            pipe.gate.set()
            return response

    try:
        response = asyncio.run(scenario())
    finally:
        pipe.gate.set()
    body = assert_error(response, 504, "timeout")
    assert "0.3 s" in body["detail"]


@pytest.mark.slow
def test_onnx_backend_matches_torch_up_to_rounding(tiny_bundle: Path):
    pytest.importorskip("onnxruntime")
    with TestClient(create_app(tiny_bundle, backend="onnx")) as client:
        info = client.get("/v1/model").json()
        assert info["backend"] == "onnx" and info["precision"] == "fp32"
        grid = open_png(client.post("/v1/generate", json={"seed": 4, "n": 8}).content)
    fp32 = FacePipeline(load_bundle(tiny_bundle), precision="fp32")
    expected = np.asarray(make_grid(fp32.generate(8, seed=4).images, 8))
    assert np.abs(grid.astype(int) - expected).max() <= 1


@pytest.mark.slow
def test_the_real_decoder_serves_attribute_edits(pretrained_bundle: Path):
    with TestClient(create_app(pretrained_bundle)) as client:
        info = client.get("/v1/model").json()
        assert info["licence"] == "MIT" and len(info["attributes"]) == 40 and info["has_encoder"] is False
        plain = open_png(client.post("/v1/generate", json={"seed": 11}).content)
        smiling = open_png(client.post("/v1/generate", json={"seed": 11, "attributes": {"Smiling": 3}}).content)
    assert plain.shape == (64, 64, 3)
    pipe = FacePipeline(load_bundle(pretrained_bundle))
    assert np.array_equal(plain, pipe.generate(1, seed=11).images[0])
    assert np.array_equal(smiling, pipe.generate(1, seed=11, attributes={"Smiling": 3}).images[0])


def test_keep_holds_the_kept_attributes_and_unknown_kept_names_are_422(client: TestClient, pipe: FacePipeline):
    body = {"n": 2, "seed": 3, "attributes": {"Smiling": 2.0}, "keep": ["Eyeglasses"], "format": "json"}
    response = client.post("/v1/generate", json=body)
    assert response.status_code == 200
    expected = pipe.sample_latents(2, 3) + pipe.resolve_attributes({"Smiling": 2.0}, keep=["Eyeglasses"])
    assert np.allclose(np.array(response.json()["latents"]), expected.numpy(), atol=1e-5)
    error = assert_error(client.post("/v1/generate", json={**body, "keep": ["Eyeglases"]}), 422, "unknown_attribute")
    assert "Eyeglases" in error["detail"]
    error = assert_error(client.post("/v1/decode", json={"latents": expected.tolist(), "attributes": {"Smiling": 1},
                                                          "keep": ["Smiling"]}), 422, "invalid_input")
    assert "both edited and kept" in error["detail"]
    assert client.post("/v1/generate", json={**body, "keep_mode": "decoded"}).status_code == 422
