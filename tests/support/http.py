"""Clients and checks shared by the REST API tests: error answers, an in-process client with the
app's lifespan running, waiting for a condition, and firing calls at the same moment."""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager

import httpx


def assert_error(response: httpx.Response, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    body = response.json()
    assert body["error"] == code and body["detail"], body
    return body


@asynccontextmanager
async def running(app):
    """An httpx client on the app with its lifespan running: concurrent requests in one loop."""
    async with app.router.lifespan_context(app):
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
            yield client


async def until(condition, timeout: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():
        assert loop.time() < deadline, "condition not reached"
        await asyncio.sleep(0.01)


def concurrently(calls: list, workers: int | None = None) -> list:
    """Run the calls at the same moment from separate threads; their results in order."""
    barrier = threading.Barrier(len(calls))

    def run(call):
        barrier.wait(10)
        return call()

    with ThreadPoolExecutor(workers or len(calls)) as pool:
        return list(pool.map(run, calls))
