"""The hardening probe against a real uvicorn process (issue 14, server items 2-4): timed-out
refinement gives its threads back and SIGTERM ends in time, an error answer leaves the
keep-alive connection usable, and a client that trickles its request is cut off as a whole."""

from __future__ import annotations

import json
import select
import signal
import socket
import sys
from pathlib import Path

import httpx
import pytest

from support.http import concurrently
from support.images import png_bytes
from support.network import free_port
from support.server import SLOW_SERVER, start_server, stop_server

pytestmark = pytest.mark.slow  # each test starts a server process (a few seconds)

TIMEOUT_S = 2


def slow_refine_server(bundle: Path, threads: int = 2):
    """Every refinement step takes 0.08 s (500 steps: 40 s), requests time out after TIMEOUT_S."""
    port = free_port()
    return start_server([*SLOW_SERVER, str(bundle), str(port), "0", "8", "0.08",
                         str(TIMEOUT_S), str(threads)], port)


def reconstruct(url: str, steps: int = 500):
    photos = [("images", (f"{i}.png", png_bytes(size=(32, 32), seed=i), "image/png")) for i in range(4)]
    return lambda: httpx.post(f"{url}/v1/reconstruct", data={"refine_steps": str(steps), "whole_image": "true"},
                              files=photos, timeout=60)


def http_request(path: str, body: dict) -> bytes:
    data = json.dumps(body).encode()
    return (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(data)}\r\n\r\n").encode() + data


def read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 response with a Content-Length body from a blocking socket."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"the server closed the connection; got {data!r}"
        data += chunk
    head, body = data.split(b"\r\n\r\n", 1)
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:])}
    while len(body) < int(headers["content-length"]):
        body += sock.recv(65536)
    return int(lines[0].split()[1]), headers, body


@pytest.mark.skipif(sys.platform == "win32", reason="SIGTERM is a POSIX signal")
def test_timed_out_refinement_is_abandoned_and_sigterm_ends_in_time(tiny_bundle: Path):
    process, url = slow_refine_server(tiny_bundle)
    try:
        timed_out = concurrently([reconstruct(url), reconstruct(url)])  # both inference threads, 40 s each
        generated = httpx.post(f"{url}/v1/generate", json={"seed": 1}, timeout=60)
        ready = httpx.get(f"{url}/readyz", timeout=10)
        in_flight = concurrently([reconstruct(url)], workers=1)  # another one times out...
        process.send_signal(signal.SIGTERM)  # ...and the server is told to stop right after
        exit_code = process.wait(TIMEOUT_S + 5 + 10)  # the promise is timeout + 5 s; 10 s for a busy CI machine
    finally:
        stop_server(process)
    assert [a.status_code for a in timed_out] == [504, 504]
    assert generated.status_code == 200, generated.text  # the threads were free again
    assert ready.status_code == 200
    assert in_flight[0].status_code == 504
    assert exit_code in (0, -signal.SIGTERM)


def test_ragged_latents_are_a_422_and_the_connection_keeps_working(tiny_bundle: Path):
    port = free_port()
    process, _ = start_server(["-m", "facevae", "serve", "--model", str(tiny_bundle), "--port", str(port),
                               "--log-level", "warning"], port)
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
            sock.sendall(http_request("/v1/decode", {"latents": [[0] * 200, [0] * 199]}))
            ragged = read_response(sock)
            sock.sendall(http_request("/v1/generate", {"seed": 3}))  # the same connection
            after = read_response(sock)
    finally:
        stop_server(process)
    status, headers, body = ragged
    assert status == 422 and json.loads(body)["error"] == "invalid_request"
    assert headers.get("connection", "keep-alive") != "close"
    assert after[0] == 200 and after[1]["content-type"] == "image/png"


def trickle(port: int, prefix: bytes, padding: int) -> bytes:
    """Send `prefix`, then `padding` more bytes at 100 bytes a second; what the server answered
    (b"" if it closed without answering) once it answers or closes. Fails if it never does."""
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(prefix)
        for _ in range(padding):
            readable, _, _ = select.select([sock], [], [], 0.01)
            if readable:
                answer = b""
                try:
                    while chunk := sock.recv(65536):
                        answer += chunk
                except OSError:  # reset: closing with our bytes unread, the server's kernel sends RST, not FIN
                    pass
                return answer
            try:
                sock.sendall(b"a")
            except OSError:  # reset: the server gave up on us
                return b""
        raise AssertionError(f"{padding} bytes at 100 B/s were all accepted without a time limit")


@pytest.mark.parametrize("part", ["headers", "body"])
def test_a_client_trickling_its_request_is_cut_off(tiny_bundle: Path, part: str):
    port = free_port()
    process, _ = start_server(["-m", "facevae", "serve", "--model", str(tiny_bundle), "--port", str(port),
                               "--log-level", "warning", "--timeout-s", str(TIMEOUT_S)], port)
    head = b"POST /v1/generate HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
    try:
        if part == "headers":  # 1500 bytes of one header line: 15 s at 100 B/s
            answer = trickle(port, head + b"X-Padding: ", 1500)
        else:  # a body that declares 1500 bytes and arrives at 100 B/s
            answer = trickle(port, head + b"Content-Length: 1500\r\n\r\n", 1500)
        works = httpx.post(f"http://127.0.0.1:{port}/v1/generate", json={"seed": 1}, timeout=30)
    finally:
        stop_server(process)
    assert answer == b"" or answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert works.status_code == 200
