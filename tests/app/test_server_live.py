"""The API in a real uvicorn process on 127.0.0.1 with concurrent clients: batching, bad
uploads beside good requests, a full queue, SIGTERM with a request in flight, workers."""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path

import httpx
import pytest

from support.http import concurrently
from support.images import png_bytes
from support.network import free_port
from support.server import SLOW_SERVER, start_server, stop_server

pytestmark = pytest.mark.slow  # each test starts a server process (a few seconds)


def serve(bundle: Path, *options: str):
    port = free_port()
    return start_server(["-m", "facevae", "serve", "--model", str(bundle), "--port", str(port),
                         "--log-level", "warning", *options], port)


def slow_server(bundle: Path, delay_s: float, queue_size: int):
    port = free_port()
    return start_server([*SLOW_SERVER, str(bundle), str(port), str(delay_s), str(queue_size)],
                        port)


def test_concurrent_clients_batched_bytes_equal_unbatched_and_bad_uploads_do_no_harm(tiny_bundle: Path):
    process, url = serve(tiny_bundle, "--batch-wait-ms", "30", "--chunk", "4", "--threads", "1")
    requests = [{"seed": seed, "n": 1 + seed % 3} for seed in range(24)]
    truncated = png_bytes(size=(40, 48))[:150]
    oversized = b"\0" * (11 * 1024 * 1024)  # over the default 10 MB per photo

    def generate(payload: dict):
        return lambda: httpx.post(f"{url}/v1/generate", json=payload, timeout=60)

    def edit(data: bytes):
        return lambda: httpx.post(f"{url}/v1/edit", files={"image": ("face.png", data, "image/png")}, timeout=60)

    try:
        answers = concurrently([generate(r) for r in requests] + [edit(truncated), edit(oversized)])
        alone = [httpx.post(f"{url}/v1/generate", json=r, timeout=60) for r in requests]  # one at a time
    finally:
        stop_server(process)
    batched, (malformed, too_big) = answers[:24], answers[24:]
    assert [a.status_code for a in batched] == [200] * 24
    assert max(int(a.headers["x-batch-requests"]) for a in batched) > 1  # requests really shared batches
    assert all(a.headers["x-batch-requests"] == "1" for a in alone)
    assert [a.content for a in batched] == [a.content for a in alone]  # byte for byte
    assert malformed.status_code == 400 and malformed.json()["error"] == "unreadable_image"
    assert too_big.status_code == 413 and too_big.json()["error"] == "too_large"


def test_a_full_queue_answers_503_while_admitted_requests_finish(tiny_bundle: Path):
    process, url = slow_server(tiny_bundle, delay_s=0.6, queue_size=1)
    try:
        answers = concurrently([lambda s=s: httpx.post(f"{url}/v1/generate", json={"seed": s}, timeout=60)
                                for s in range(6)])
    finally:
        stop_server(process)
    codes = sorted(a.status_code for a in answers)
    assert set(codes) == {200, 503} and codes.count(200) >= 2, codes
    busy = next(a for a in answers if a.status_code == 503)
    assert busy.json()["error"] == "busy" and int(busy.headers["retry-after"]) >= 1


@pytest.mark.skipif(sys.platform == "win32", reason="SIGTERM is a POSIX signal")
def test_sigterm_lets_the_request_in_flight_finish(tiny_bundle: Path):
    process, url = slow_server(tiny_bundle, delay_s=2.0, queue_size=4)
    result: dict = {}
    client = threading.Thread(target=lambda: result.update(
        answer=httpx.post(f"{url}/v1/generate", json={"seed": 1}, timeout=60)))
    try:
        client.start()
        threading.Event().wait(0.7)  # the request is now being decoded (2 s)
        process.send_signal(signal.SIGTERM)
        client.join(30)
        exit_code = process.wait(30)
    finally:
        stop_server(process)
    answer = result["answer"]
    assert answer.status_code == 200 and answer.headers["content-type"] == "image/png"
    assert exit_code in (0, -signal.SIGTERM)  # uvicorn re-raises the signal once it has shut down cleanly
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{url}/healthz", timeout=2)


def test_several_worker_processes_serve_the_same_faces(tiny_bundle: Path):
    process, url = serve(tiny_bundle, "--workers", "2", "--log-level", "info")
    try:
        answers = concurrently([lambda: httpx.post(f"{url}/v1/generate", json={"seed": 5}, timeout=60)] * 8)
        model = httpx.get(f"{url}/v1/model", timeout=10).json()
    finally:
        stop_server(process)
    log = process.stdout.read()
    assert "died" not in log and "not ready in time" not in log, log  # no worker killed by the health check
    assert {a.status_code for a in answers} == {200} and len({a.content for a in answers}) == 1
    assert model["attributes"] == ["Smiling", "Eyeglasses"]
