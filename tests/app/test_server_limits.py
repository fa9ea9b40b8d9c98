"""The second hardening probe against the app in this process (issue 19 items 1-6 and 14's 413):
concurrent photo requests of one photo answer the same bytes, decoded uploads share one pixel
budget, /readyz counts the expected wait, a client that leaves abandons its work, a body that
trickles is a 408, latent values are bounded, malformed bundle counts do not break /v1/model,
and accept errors are logged once per interval."""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import threading
import time
from pathlib import Path

import httpx
import pytest
import torch
from fastapi.testclient import TestClient

from facevae import imaging
from facevae.app.server import connections
from facevae.app.server.app import create_app
from facevae.app.server.uploads import decoded_pixels
from facevae.inference.pipeline import FacePipeline
from facevae.model.bundle import load_bundle
from facevae.testing.uploads import blank_png
from support.http import assert_error, running, until
from support.images import png_bytes
from support.server import SlowModule, SlowPipeline

PHOTOS = Path(__file__).resolve().parents[2].parent / "shared" / "photos"


@pytest.fixture
def pipe(tiny_bundle: Path) -> FacePipeline:
    return FacePipeline(load_bundle(tiny_bundle))


# --- 1. the same photo, the same bytes, however many arrive at once -------------------------

@pytest.mark.parametrize("name", ["obama.jpg", "biden.jpg"])
def test_sixteen_concurrent_edits_of_one_photo_answer_the_same_bytes(pipe: FacePipeline, face_detector: str,
                                                                      name: str):
    if face_detector == "haar" or not (PHOTOS / name).is_file():
        pytest.skip(f"needs {PHOTOS / name} and the YuNet file in ../shared (development machines only)")
    photo = (PHOTOS / name).read_bytes()
    app = create_app(pipe, inference_threads=4, timeout_s=120)

    async def scenario():
        async with running(app) as client:
            alone = await client.post("/v1/edit", files={"image": (name, photo, "image/jpeg")})
            together = await asyncio.gather(*[client.post("/v1/edit", files={"image": (name, photo, "image/jpeg")})
                                              for _ in range(16)])
            return alone, together

    alone, together = asyncio.run(scenario())
    assert alone.status_code == 200, alone.text
    assert [a.status_code for a in together] == [200] * 16, [a.text[:100] for a in together]
    assert {a.content for a in together} == {alone.content}


# --- 3. one budget of decoded pixels for every request ----------------------------------------

def test_decoded_pixels_are_read_from_the_header_as_read_image_will_decode_them():
    for width, height, side in [(3000, 2000, 1024), (1500, 900, 1024), (4990, 4990, 1024), (640, 480, None)]:
        data = blank_png(width, height)
        decoded = imaging.read_image(data, max_side=side)
        assert decoded_pixels(data, 25_000_000, side) == decoded.width * decoded.height
    assert decoded_pixels(b"not an image", 25_000_000, 1024) == 0
    assert decoded_pixels(blank_png(6000, 6000), 25_000_000, 1024) == 0  # over the limit: read_image refuses it


def test_requests_together_hold_at_most_the_pixel_budget(pipe: FacePipeline, monkeypatch: pytest.MonkeyPatch):
    """Four requests of two 100 x 100 photos on four threads, with room for two requests' photos:
    the photos decoded and not yet done with never exceed the budget."""
    held, most, lock = [0], [0], threading.Lock()
    real_read, real_reconstruct = imaging.read_image, FacePipeline.reconstruct

    def counted_read(*args, **kwargs):
        image = real_read(*args, **kwargs)
        with lock:
            held[0] += image.width * image.height
            most[0] = max(most[0], held[0])
        return image

    def slow_reconstruct(self, images, *args, **kwargs):
        time.sleep(0.3)  # the photos are held meanwhile
        try:
            return real_reconstruct(self, images, *args, **kwargs)
        finally:
            with lock:
                held[0] -= sum(image.width * image.height for image in images)

    monkeypatch.setattr(imaging, "read_image", counted_read)
    monkeypatch.setattr(FacePipeline, "reconstruct", slow_reconstruct)
    app = create_app(pipe, inference_threads=4, max_decoded_pixels=40_000, timeout_s=30)
    photos = [("images", (f"{i}.png", png_bytes(size=(100, 100), seed=i), "image/png")) for i in range(2)]

    async def scenario():
        async with running(app) as client:
            return await asyncio.gather(*[client.post("/v1/reconstruct", data={"whole_image": "true"}, files=photos)
                                          for _ in range(4)])

    answers = asyncio.run(scenario())
    assert [a.status_code for a in answers] == [200] * 4
    assert 20_000 <= most[0] <= 40_000  # at most two requests' photos at a time, not four
    assert held[0] == 0


# --- 4. /readyz: the expected wait must fit the time limit ------------------------------------

def test_readyz_is_busy_once_the_queued_work_would_outlast_the_time_limit(tiny_bundle: Path):
    pipe = SlowPipeline(load_bundle(tiny_bundle))
    app = create_app(pipe, timeout_s=1.0, inference_threads=1, batching=False, queue_size=64)

    async def scenario():
        async with running(app) as client:
            pipe.delay_s = 0.1  # a face now takes 0.1 s: 15 of them take 1.5 s
            await client.post("/v1/generate", json={"seed": 0})  # measures the service time
            idle = await client.get("/readyz")
            burst = [asyncio.create_task(client.post("/v1/generate", json={"seed": i})) for i in range(15)]
            await until(lambda: app.state.batcher.pending >= 10)
            loaded = await client.get("/readyz")
            await asyncio.gather(*burst)
            return idle, loaded

    idle, loaded = asyncio.run(scenario())
    assert idle.status_code == 200
    body = assert_error(loaded, 503, "busy")  # 10 queued of 64 allowed, none yet past its deadline
    assert "would take about" in body["detail"]


# --- 5. a client that leaves abandons its work ----------------------------------------------

def multipart_request(path: str, files: list, data: dict) -> tuple[dict, bytes]:
    request = httpx.Request("POST", f"http://test{path}", files=files, data=data)
    headers = [(k.lower().encode(), v.encode()) for k, v in request.headers.items()]
    return {"type": "http", "method": "POST", "path": path, "raw_path": path.encode(), "query_string": b"",
            "headers": headers, "http_version": "1.1", "scheme": "http", "root_path": "",
            "client": ("127.0.0.1", 5000), "server": ("test", 80)}, request.read()


def test_a_client_that_disconnects_abandons_its_refinement_at_the_next_step(tiny_bundle: Path):
    pipe = FacePipeline(load_bundle(tiny_bundle))
    pipe.encode(torch.zeros(1, 3, pipe.image_size, pipe.image_size), refine_steps=1)  # torch's first Adam: imports
    steps = []
    pipe.decoder = SlowModule(pipe.decoder, 0.02)  # 500 steps: 10 s, were it not stopped
    real_forward = pipe.decoder.forward
    pipe.decoder.forward = lambda latents: steps.append(1) or real_forward(latents)
    app = create_app(pipe, timeout_s=30, inference_threads=1)
    scope, body = multipart_request("/v1/reconstruct", [("images", ("a.png", png_bytes(size=(32, 32)), "image/png"))],
                                    {"refine_steps": "500", "whole_image": "true"})
    sent = []

    async def scenario():
        async with app.router.lifespan_context(app):
            messages = [{"type": "http.request", "body": body, "more_body": False}]

            async def receive():
                if messages:
                    return messages.pop()
                await until(lambda: len(steps) >= 10, timeout=10)  # refinement is under way; then the client leaves
                return {"type": "http.disconnect"}

            async def send(message):
                sent.append(message)

            started = time.monotonic()
            await asyncio.wait_for(app(scope, receive, send), 10)
            await until(lambda: not app.state.batcher._running, timeout=2)
            return time.monotonic() - started, len(steps)

    seconds, steps_at_end = asyncio.run(scenario())
    time.sleep(0.2)
    assert len(steps) == steps_at_end < 100  # stopped within a step of the disconnect, not 500 steps later
    assert seconds < 5 and not sent  # nobody to answer


# --- 2 / 22.9: a body that trickles is a 408, in-process too -------------------------------------

def test_a_body_that_stops_arriving_is_a_408_that_closes_the_connection(pipe: FacePipeline):
    app = create_app(pipe, timeout_s=0.5)
    scope, body = multipart_request("/v1/edit", [("image", ("a.png", png_bytes(), "image/png"))], {})
    sent = []

    async def scenario():
        async with app.router.lifespan_context(app):
            parts = [{"type": "http.request", "body": body[:100], "more_body": True}]

            async def receive():
                if parts:
                    return parts.pop()
                await asyncio.sleep(60)  # the rest never comes

            async def send(message):
                sent.append(message)

            await asyncio.wait_for(app(scope, receive, send), 5)

    asyncio.run(scenario())
    start = sent[0]
    headers = {k.decode(): v.decode() for k, v in start["headers"]}
    assert start["status"] == 408 and headers["connection"] == "close"
    assert json.loads(sent[1]["body"])["error"] == "request_timeout"


# --- 6. latent values bounded; malformed bundle counts -----------------------------------------

def test_huge_latent_values_are_a_422_naming_the_bound(pipe: FacePipeline):
    with TestClient(create_app(pipe)) as client:
        huge = assert_error(client.post("/v1/decode", json={"latents": [[3.4e38] * 16]}), 422, "invalid_request")
        morph = client.post("/v1/morph", json={"start": {"latent": [0.0] * 15 + [-1e6]}, "end": {"seed": 1}})
        fine = client.post("/v1/decode", json={"latents": [[99.0] * 16]})
    assert "less than or equal to 100" in huge["detail"]
    assert_error(morph, 422, "invalid_request")
    assert fine.status_code == 200


def test_model_info_leaves_out_attribute_counts_that_are_not_numbers(tiny_bundle: Path):
    config = json.loads((tiny_bundle / "config.json").read_text())
    config["attributes"]["counts"] = {"Smiling": "many", "Eyeglasses": [3, 5]}
    (tiny_bundle / "config.json").write_text(json.dumps(config))
    with TestClient(create_app(FacePipeline(load_bundle(tiny_bundle)))) as client:
        answer = client.get("/v1/model")
    assert answer.status_code == 200, answer.text
    assert answer.json()["attribute_counts"] == {"Eyeglasses": [3, 5]}
    assert "Smiling" in answer.json()["notes"][0]


# --- 14. the 413 of a JSON body does not ask for a smaller image ---------------------------------

def test_an_oversized_json_body_is_told_to_send_fewer_codes(pipe: FacePipeline):
    with TestClient(create_app(pipe, max_json_bytes=1000)) as client:
        body = assert_error(client.post("/v1/decode", json={"latents": [[0.5] * 16] * 64}), 413, "too_large")
    assert "image" not in body["detail"] and "latent codes" in body["detail"]


# --- 2. accept errors: one message per interval ------------------------------------------------

def test_accept_errors_are_logged_once_per_interval(caplog: pytest.LogCaptureFixture):
    loop = asyncio.new_event_loop()
    try:
        connections.limit_accept_error_logs(loop)
        with caplog.at_level(logging.ERROR, logger="facevae.server"):
            for _ in range(1000):
                loop.call_exception_handler({"message": "socket.accept() out of system resource",
                                             "exception": OSError(errno.EMFILE, "Too many open files")})
            loop.call_exception_handler({"message": "something else", "exception": ValueError("other")})
    finally:
        loop.close()
    accept_lines = [r for r in caplog.records if "cannot accept connections" in r.getMessage()]
    assert len(accept_lines) == 1 and "Too many open files" in accept_lines[0].getMessage()
    assert any("something else" in r.getMessage() for r in caplog.records)  # other errors as before
