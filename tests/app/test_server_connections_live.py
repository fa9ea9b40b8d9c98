"""Connections against a real `facevae serve` process (issue 19 item 2, issue 22 item 9): sockets
that never send a byte are closed within the deadline, connections beyond the limit are refused
at once, and a server whose file limit would be used up keeps answering and logs little."""

from __future__ import annotations

import select
import socket
import sys
import time
from pathlib import Path

import httpx
import pytest

from support.network import free_port
from support.server import start_server, stop_server

pytestmark = [pytest.mark.slow,  # each test starts a server process (a few seconds)
              pytest.mark.skipif(sys.platform == "win32", reason="file limits are POSIX")]

TIMEOUT_S = 2
# `python -c LIMITED N serve ...`: facevae's CLI with its file limit (soft and hard) set to N
LIMITED = ("import resource, runpy, sys; n = int(sys.argv[1]); resource.setrlimit(resource.RLIMIT_NOFILE, (n, n)); "
           "sys.argv = ['facevae'] + sys.argv[2:]; runpy.run_module('facevae', run_name='__main__')")


def serve(bundle: Path, *options: str, file_limit: int | None = None):
    port = free_port()
    command = ["serve", "--model", str(bundle), "--port", str(port), "--log-level", "warning",
               "--timeout-s", str(TIMEOUT_S), *options]
    prefix = ["-m", "facevae"] if file_limit is None else ["-c", LIMITED, str(file_limit)]
    return start_server([*prefix, *command], port)


def idle_sockets(port: int, count: int) -> list[socket.socket]:
    """`count` connections to the server that never send a byte."""
    sockets = []
    for _ in range(count):
        sock = socket.create_connection(("127.0.0.1", port), timeout=10)
        sock.setblocking(False)
        sockets.append(sock)
    return sockets


def closed_by_server(sockets: list[socket.socket], within_s: float) -> tuple[list[bytes], float]:
    """Wait until the server has closed every socket (or within_s passes); what each received
    before its end, and when the last one ended (seconds from now)."""
    started, answers, open_ = time.monotonic(), {id(s): b"" for s in sockets}, list(sockets)
    while open_ and time.monotonic() - started < within_s:
        readable, _, _ = select.select(open_, [], [], 0.2)
        for sock in readable:
            try:
                chunk = sock.recv(65536)
            except ConnectionError:
                chunk = b""
            answers[id(sock)] += chunk
            if not chunk:
                open_.remove(sock)
    for sock in sockets:
        sock.close()
    assert not open_, f"{len(open_)} of {len(sockets)} idle connections were still open after {within_s} s"
    return [answers[id(s)] for s in sockets], time.monotonic() - started


def test_idle_connections_are_closed_within_the_deadline_and_the_limit_refuses_more(tiny_bundle: Path):
    process, url = serve(tiny_bundle, "--max-connections", "40")
    try:
        sockets = idle_sockets(int(url.rsplit(":", 1)[1]), 100)
        time.sleep(0.5)
        refused_early = httpx.get(f"{url}/healthz", timeout=10)  # the 40 idle ones hold every slot
        answers, seconds = closed_by_server(sockets, within_s=TIMEOUT_S + 5)
        after = httpx.post(f"{url}/v1/generate", json={"seed": 1}, timeout=30)
    finally:
        stop_server(process)
    refused = [a for a in answers if a.startswith(b"HTTP/1.1 503")]
    assert len(refused) == 60, [a[:40] for a in answers]  # beyond the 40 admitted: 503 at once
    assert all(a == b"" for a in answers if not a.startswith(b"HTTP/1.1 503"))  # idle: closed without a word
    assert seconds < TIMEOUT_S + 3
    assert refused_early.status_code == 503 and refused_early.json()["error"] == "busy"
    assert after.status_code == 200


def test_a_file_limit_that_idle_sockets_would_use_up_leaves_the_server_answering(tiny_bundle: Path):
    """1,000 idle sockets against a file limit of 400: without a connection limit below it every
    accept failed (and was logged) until the sockets went away, which they never did."""
    process, url = serve(tiny_bundle, file_limit=400)
    try:
        sockets = idle_sockets(int(url.rsplit(":", 1)[1]), 1000)
        time.sleep(1.0)
        closed_by_server(sockets, within_s=TIMEOUT_S + 10)
        answer = httpx.post(f"{url}/v1/generate", json={"seed": 1}, timeout=30)
    finally:
        stop_server(process)
    log = process.stdout.read() if process.stdout else ""
    assert answer.status_code == 200
    assert log.count("Too many open files") <= 2, log[-2000:]
    assert log.count("refused connections") <= 2, log[-2000:]  # once per 10 s interval


def test_each_answer_restarts_a_keep_alive_connections_clock(tiny_bundle: Path):
    """Requests 0, 1.2 and 2.4 s after the accept on one connection, with a 2 s deadline: the clock
    restarts with each answer, so none is cut off; then the connection, idle, is closed."""
    process, url = serve(tiny_bundle)
    request = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
    answers = []
    try:
        with socket.create_connection(("127.0.0.1", int(url.rsplit(":", 1)[1])), timeout=10) as sock:
            for _ in range(3):
                sock.sendall(request)
                answer = b""
                while not answer.endswith(b'{"status":"ok"}') and (chunk := sock.recv(65536)):
                    answer += chunk
                answers.append(answer)
                time.sleep(1.2)
            sock.setblocking(False)
            answers_after, seconds = closed_by_server([sock], within_s=TIMEOUT_S + 3)
    finally:
        stop_server(process)
    assert all(answer.startswith(b"HTTP/1.1 200") for answer in answers), answers
    assert answers_after == [b""] and seconds < TIMEOUT_S
