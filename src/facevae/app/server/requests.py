"""Each request's body within its deadline, and its work abandoned when its client goes away.

RequestGuard is ASGI middleware around the whole app:
- The body must have arrived `read_timeout_s` after the request's clock started (the accept or
  the previous answer on its connection, from facevae.app.server.connections; without that,
  when the request reached the app). A client that trickles its body is answered 408 with
  `Connection: close` when that passes.
- Once the body is in, the client's disconnect is watched: when it goes away before its answer,
  the request's handler is cancelled, which abandons its queued or running work
  (facevae.app.server.batching: skipped before it starts, stopped at the next refinement step).
"""

from __future__ import annotations

import asyncio
from typing import Any

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .connections import CONNECTION, GuardedConnection

DISCONNECT: Message = {"type": "http.disconnect"}


class RequestGuard:
    def __init__(self, app: ASGIApp, read_timeout_s: float) -> None:
        self.app, self.read_timeout_s = app, read_timeout_s

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        await _GuardedRequest(receive, send, CONNECTION.get(), self.read_timeout_s).run(self.app, scope)


class _GuardedRequest:
    """One request's receive and send, wrapped."""

    def __init__(self, receive: Receive, send: Send, connection: GuardedConnection | None,
                 read_timeout_s: float) -> None:
        self.loop = asyncio.get_running_loop()
        self.inner_receive, self.inner_send, self.connection = receive, send, connection
        started = connection.request_started() if connection is not None else self.loop.time()
        self.deadline, self.read_timeout_s = started + read_timeout_s, read_timeout_s
        self.body_done = self.answered = self.client_gone = False
        self.gone = asyncio.Event()
        self.handler: asyncio.Task[Any] | None = None
        self.watcher: asyncio.Task[None] | None = None

    async def run(self, app: ASGIApp, scope: Scope) -> None:
        self.handler = asyncio.ensure_future(app(scope, self.receive, self.send))
        try:
            await self.handler
        except asyncio.CancelledError:
            if not self.client_gone:  # the server itself is stopping us
                raise
        finally:
            if self.watcher is not None:
                self.watcher.cancel()

    async def receive(self) -> Message:
        if self.body_done:  # the watcher reads from now on; the app learns of a disconnect from it
            await self.gone.wait()
            return DISCONNECT
        try:
            async with asyncio.timeout(max(self.deadline - self.loop.time(), 0)):
                message = await self.inner_receive()
        except TimeoutError:
            raise HTTPException(408, f"The request body did not arrive within the server's limit of "
                                     f"{self.read_timeout_s:g} s; send it faster, or a smaller one",
                                headers={"Connection": "close"}) from None
        if message["type"] == "http.request" and not message.get("more_body", False):
            self.body_done = True
            self.watcher = asyncio.ensure_future(self._watch())
        elif message["type"] == "http.disconnect":
            self.gone.set()
        return message

    async def send(self, message: Message) -> None:
        last = message["type"] == "http.response.body" and not message.get("more_body", False)
        self.answered = self.answered or last
        await self.inner_send(message)
        if last and self.connection is not None:
            self.connection.request_finished()

    async def _watch(self) -> None:
        message = await self.inner_receive()
        if message["type"] == "http.disconnect" and not self.answered:
            self.client_gone = True
            self.gone.set()
            if self.handler is not None:
                self.handler.cancel()
