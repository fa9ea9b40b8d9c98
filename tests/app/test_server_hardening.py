"""The hardening probe's inputs against the app in this process (issue 14, server items 1-6):
upload decoding bounded in memory and time, abandoned work stopped, /readyz honest, strict
schemas, clipped echoes, a 500 that closes its connection, /docs without the internet."""

from __future__ import annotations

import asyncio
import re
import struct
import threading
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
import torch
from fastapi.testclient import TestClient

from facevae import imaging
from facevae.app.server.app import create_app
from facevae.app.server.batching import DeadlineExceededError, MicroBatcher
from facevae.app.server.settings import ServerSettings
from facevae.cli.serve import is_loopback
from facevae.inference.pipeline import FacePipeline
from facevae.model.bundle import load_bundle
from facevae.testing.uploads import blank_png
from support.http import assert_error, running, until
from support.images import png_bytes
from support.server import GatedPipeline, SlowModule


class RecordingPipeline(FacePipeline):
    """Remembers the size of every picture handed to reconstruct."""

    sizes: list[tuple[int, int]]

    def reconstruct(self, images, *args, **kwargs):
        self.sizes = [image.size for image in images]
        return super().reconstruct(images, *args, **kwargs)


@pytest.fixture
def pipe(tiny_bundle: Path) -> FacePipeline:
    return FacePipeline(load_bundle(tiny_bundle))


@pytest.fixture
def client(pipe: FacePipeline):
    with TestClient(create_app(pipe)) as test_client:
        yield test_client


# --- 1. uploads: shrunk on decoding, a bounded number at once, inside the deadline ---------

def test_a_25_megapixel_upload_reaches_the_model_shrunk(tiny_bundle: Path):
    pipe = RecordingPipeline(load_bundle(tiny_bundle))
    bomb = blank_png(4990, 4990)  # ~97 KB on the wire, ~100 MB of RGBA pixels
    with TestClient(create_app(pipe)) as client:
        response = client.post("/v1/reconstruct", data={"whole_image": "true"},
                               files=[("images", ("big.png", bomb, "image/png"))])
    assert response.status_code == 200, response.text
    (size,) = pipe.sizes
    side = ServerSettings().upload_max_side
    assert side is not None and side <= max(size) < 2 * side


def test_shrinking_on_decoding_keeps_small_pictures_exact_and_big_ones_close():
    small = np.random.default_rng(0).integers(0, 256, (300, 200, 3), dtype=np.uint8)
    assert np.array_equal(np.asarray(imaging.read_image(png_bytes(small), max_side=160)), small)  # 300 < 2 x 160
    stripes = np.zeros((1024, 1024, 3), np.uint8)
    stripes[:, ::2] = 200  # 2-pixel stripes average to 100 when halved
    shrunk = np.asarray(imaging.read_image(png_bytes(stripes), max_side=500))
    assert shrunk.shape == (512, 512, 3) and np.all(shrunk == 100)


def test_at_most_the_configured_number_of_uploads_decode_at_once(pipe: FacePipeline,
                                                                 monkeypatch: pytest.MonkeyPatch):
    running_now, most = [0], [0]
    lock = threading.Lock()
    real_read = imaging.read_image

    def counted_read(*args, **kwargs):
        with lock:
            running_now[0] += 1
            most[0] = max(most[0], running_now[0])
        try:
            time.sleep(0.2)  # long enough for the other requests' decodes to overlap, were they allowed
            return real_read(*args, **kwargs)
        finally:
            with lock:
                running_now[0] -= 1

    monkeypatch.setattr(imaging, "read_image", counted_read)
    app = create_app(pipe, decoding_uploads=1)

    async def scenario():
        async with running(app) as client:
            return await asyncio.gather(*[
                client.post("/v1/edit", data={"whole_image": "true"},
                            files={"image": ("face.png", png_bytes(seed=i), "image/png")}) for i in range(4)])

    answers = asyncio.run(scenario())
    assert [a.status_code for a in answers] == [200] * 4
    assert most[0] == 1


def test_decoding_counts_against_the_request_deadline(pipe: FacePipeline, monkeypatch: pytest.MonkeyPatch):
    real_read = imaging.read_image

    def slow_read(*args, **kwargs):
        time.sleep(0.5)
        return real_read(*args, **kwargs)

    monkeypatch.setattr(imaging, "read_image", slow_read)
    app = create_app(pipe, timeout_s=0.6, decoding_uploads=1)
    files = [("images", (f"{i}.png", png_bytes(seed=i), "image/png")) for i in range(3)]
    with TestClient(app) as client:  # three decodes of 0.5 s one after another: past 0.6 s
        assert_error(client.post("/v1/reconstruct", data={"whole_image": "true"}, files=files), 504, "timeout")


# --- 2. abandoned work stops; budgets; /readyz under saturation -------------------------

def test_refinement_of_an_abandoned_request_stops_and_frees_the_thread(tiny_bundle: Path):
    pipe = FacePipeline(load_bundle(tiny_bundle))
    pipe.encode(torch.zeros(1, 3, pipe.image_size, pipe.image_size), refine_steps=1)  # torch's first Adam: imports
    pipe.decoder = SlowModule(pipe.decoder, 0.02)  # 500 steps: 10 s, were it not stopped
    app = create_app(pipe, timeout_s=0.5, inference_threads=1, batch_wait_ms=0)
    photo = png_bytes(size=(32, 32))

    async def scenario():
        async with running(app) as client:
            refine = await client.post("/v1/reconstruct", data={"refine_steps": "500", "whole_image": "true"},
                                       files=[("images", ("a.png", photo, "image/png"))])
            await until(lambda: not app.state.batcher._running, timeout=3)  # the thread let go
            return refine, await client.post("/v1/generate", json={"seed": 1})

    refine, generate = asyncio.run(scenario())
    assert_error(refine, 504, "timeout")
    assert generate.status_code == 200


def test_costly_jobs_beyond_the_budget_are_refused_while_one_runs():
    batcher = MicroBatcher(lambda latents: np.zeros((len(latents), 1, 1, 3), np.uint8), cost_budget=100,
                           timeout_s=10).start()
    release = threading.Event()
    try:
        first = batcher.submit(job=lambda: release.wait(10), cost=80)
        from facevae.app.server.batching import QueueFullError

        with pytest.raises(QueueFullError):
            batcher.submit(job=lambda: None, cost=80)
        cheap = batcher.submit(job=lambda: "ok", cost=20)  # fits beside the first
        release.set()
        assert first.future.result(10) is True and cheap.future.result(10) == "ok"
        alone = batcher.submit(job=lambda: "big", cost=1000)  # nothing else in flight: always admitted
        assert alone.future.result(10) == "big"
    finally:
        release.set()
        batcher.close(10)


def test_a_decode_batch_stops_between_chunks_once_every_request_gave_up():
    calls = []
    batcher = MicroBatcher(lambda latents: calls.append(1) or np.zeros((len(latents), 1, 1, 3), np.uint8), chunk=1)
    with pytest.raises(DeadlineExceededError):
        batcher.decode_chunked(torch.zeros(10, 4), stop=lambda: len(calls) >= 3)
    assert len(calls) == 3


def test_readyz_says_busy_while_every_thread_holds_work_past_its_deadline(tiny_bundle: Path):
    pipe = GatedPipeline(load_bundle(tiny_bundle))
    app = create_app(pipe, timeout_s=0.3, inference_threads=1)

    async def scenario():
        async with running(app) as client:
            before = await client.get("/readyz")
            pipe.close()  # the decoder now blocks (a call that cannot be interrupted)
            timed_out = await client.post("/v1/generate", json={"seed": 1})
            during = await client.get("/readyz")
            pipe.gate.set()
            await until(lambda: not app.state.batcher._running)
            return before, timed_out, during, await client.get("/readyz")

    try:
        before, timed_out, during, after = asyncio.run(scenario())
    finally:
        pipe.gate.set()
    assert before.status_code == 200 and after.status_code == 200
    assert_error(timed_out, 504, "timeout")
    assert_error(during, 503, "busy")


# --- 3, 6. schemas and messages -----------------------------------------------------------

def test_ragged_latents_are_a_422(client: TestClient):
    body = assert_error(client.post("/v1/decode", json={"latents": [[0] * 200, [0] * 199]}), 422, "invalid_request")
    assert "same length" in body["detail"]


@pytest.mark.parametrize("payload", [{"n": True}, {"n": "2"}, {"n": 2.0}, {"seed": False}, {"scale": True}])
def test_json_numbers_are_strict(client: TestClient, payload: dict):
    assert_error(client.post("/v1/generate", json=payload), 422, "invalid_request")


def test_a_huge_unknown_attribute_name_is_not_echoed_in_full(client: TestClient):
    name = "x" * 2_000_000
    json_answer = client.post("/v1/generate", json={"attributes": {name: 1.0}})
    form_answer = client.post("/v1/edit", data={"attributes": f'{{"{name[:60_000]}": 1}}'},
                              files={"image": ("face.png", png_bytes(), "image/png")})
    assert_error(json_answer, 422, "invalid_request")
    assert_error(form_answer, 422, "invalid_input")
    assert len(json_answer.content) < 5000 and len(form_answer.content) < 5000


def test_an_internal_error_closes_its_connection(tiny_bundle: Path):
    class BrokenPipeline(FacePipeline):
        def sample_latents(self, *args, **kwargs):
            raise RuntimeError("broken on purpose")

    with TestClient(create_app(BrokenPipeline(load_bundle(tiny_bundle))), raise_server_exceptions=False) as client:
        response = client.post("/v1/generate", json={"seed": 1})
    assert_error(response, 500, "internal_error")
    assert response.headers["connection"] == "close"
    assert "broken on purpose" not in response.text


def declaring_png(width: int, height: int) -> bytes:
    """A valid 8 x 8 grey PNG whose header claims width x height."""
    data = bytearray(blank_png(8, 8, color_type=0))
    struct.pack_into(">II", data, 16, width, height)
    struct.pack_into(">I", data, 29, zlib.crc32(bytes(data[12:29])))
    return bytes(data)


def test_a_50000_squared_picture_quotes_our_pixel_limit(client: TestClient):
    wall = declaring_png(50_000, 50_000)  # beyond Pillow's own bomb limit, which trips first
    body = assert_error(client.post("/v1/edit", files={"image": ("wall.png", wall, "image/png")}),
                        413, "image_too_large")
    assert "25 megapixels" in body["detail"] and "178956970" not in body["detail"]


@pytest.mark.parametrize("host, loopback", [("127.0.0.1", True), ("127.0.0.2", True), ("localhost", True),
                                            ("::1", True), ("[::1]", True), ("0.0.0.0", False),
                                            ("192.168.1.5", False), ("example.org", False)])
def test_loopback_addresses(host: str, loopback: bool):
    assert is_loopback(host) is loopback


# --- 5. /docs offline ------------------------------------------------------------------------

def test_docs_load_nothing_from_other_hosts(client: TestClient):
    page = client.get("/docs")
    assert page.status_code == 200 and "swagger" in page.text.lower()
    assert not re.findall(r"https?://", page.text), "the page must not load anything from another host"
    assets = re.findall(r"""(?:src|href)=["']([^"']+)["']""", page.text)
    assert any(a.endswith(".js") for a in assets)
    for asset in assets:
        loaded = client.get(asset)
        assert loaded.status_code == 200 and len(loaded.content) > 0, asset
