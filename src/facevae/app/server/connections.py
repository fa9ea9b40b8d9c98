"""Connections: a deadline from the accept, a limit below the file limit, accept errors logged once per interval.

uvicorn closes idle keep-alive connections (`timeout_keep_alive`) but not one that never sends
a byte, nor one that trickles its headers; 20,000 such sockets used up the file limit, after
which every accept failed and asyncio logged each failure. Here each connection has
`read_timeout_s` from its accept (and again from the end of each answer) for its next request
to arrive: one that sent nothing is closed, one that sent part of its headers is answered 408
and closed. Once the headers are in, facevae.app.server.requests.RequestGuard takes over the
same clock for the body. At most `max_connections` are open at once (by default: what the file
limit leaves free, less a reserve for uploads and the process's own files); one more is
answered 503 and closed at once, so the listening socket never runs out of descriptors.

GuardedConnection wraps uvicorn's h11 protocol as any asyncio protocol is wrapped: it forwards
the transport's calls and reads none of uvicorn's state. `facevae serve` runs uvicorn with
`http=GuardedConnection`; the settings come from the environment (ENV_CONNECTIONS), which
uvicorn's worker processes inherit.
"""

from __future__ import annotations

import asyncio
import errno
import json
import logging
import os
import time
from contextvars import ContextVar
from dataclasses import asdict, dataclass
from typing import Any

log = logging.getLogger("facevae.server")

ENV_CONNECTIONS = "FACEVAE_SERVE_CONNECTIONS"  # JSON of ConnectionLimits, set by `facevae serve`
LOG_INTERVAL_S = 10.0  # at most one message per interval about refused or failed accepts
ACCEPT_ERRNOS = (errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM)
# The connection a request arrived on, for RequestGuard: set around uvicorn's data_received,
# so the request's task (created there, or by the previous request's task) inherits it.
CONNECTION: ContextVar["GuardedConnection | None"] = ContextVar("facevae_connection", default=None)


def _json_response(status: str, body: dict[str, str], extra: str = "") -> bytes:
    data = json.dumps(body).encode()
    return (f"HTTP/1.1 {status}\r\ncontent-type: application/json\r\nconnection: close\r\n{extra}"
            f"content-length: {len(data)}\r\n\r\n").encode() + data


TIMEOUT_RESPONSE = _json_response("408 Request Timeout", {
    "error": "request_timeout", "detail": "The request was not sent completely in time"})
BUSY_RESPONSE = _json_response("503 Service Unavailable", {
    "error": "busy", "detail": "The server has as many open connections as it allows; retry shortly"},
    "retry-after: 1\r\n")


@dataclass(frozen=True)
class ConnectionLimits:
    read_timeout_s: float = 30.0  # from the accept (or the previous answer) to the whole request
    max_connections: int | None = None  # None: below the file limit (default_max_connections)

    def to_environment(self) -> None:
        os.environ[ENV_CONNECTIONS] = json.dumps(asdict(self))

    @classmethod
    def from_environment(cls) -> "ConnectionLimits":
        return cls(**json.loads(os.environ.get(ENV_CONNECTIONS) or "{}"))


def default_max_connections() -> int:
    """What the file limit (RLIMIT_NOFILE) leaves free now, less a tenth of it (at least 64)
    for uploads spooled to disk, model files and logs."""
    try:
        import resource

        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    except (ImportError, OSError, ValueError):  # no rlimits (Windows): select()'s usual limit
        return 1000
    try:
        open_now = len(os.listdir("/proc/self/fd"))
    except OSError:
        open_now = 64
    return max(1, soft - open_now - max(64, soft // 10))


class RateLimitedLog:
    """Counts events and logs them at most once per LOG_INTERVAL_S, with the count."""

    def __init__(self, message: str, level: int = logging.WARNING) -> None:
        self.message, self.level = message, level
        self.count, self.logged_at = 0, -float("inf")

    def event(self, *args: Any) -> None:
        self.count += 1
        now = time.monotonic()
        if now - self.logged_at >= LOG_INTERVAL_S:
            log.log(self.level, self.message + " (%d times in the last %.0f s)", *args, self.count, LOG_INTERVAL_S)
            self.count, self.logged_at = 0, now


def limit_accept_error_logs(loop: asyncio.AbstractEventLoop) -> None:
    """Route the loop's 'socket.accept() out of system resource' reports (one per failed
    attempt, retried every second per listening socket) through one rate-limited message."""
    previous = loop.get_exception_handler()
    accept_errors = RateLimitedLog("cannot accept connections: %s; the file limit (ulimit -n) is used up",
                                   logging.ERROR)

    def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        error = context.get("exception")
        if isinstance(error, OSError) and error.errno in ACCEPT_ERRNOS:
            accept_errors.event(error.strerror)
        elif previous is not None:
            previous(loop, context)
        else:
            loop.default_exception_handler(context)

    loop.set_exception_handler(handler)


class ConnectionCounter:
    """The open connections of this process, against the limit."""

    def __init__(self, limits: ConnectionLimits) -> None:
        self.limits = limits
        self.limit = limits.max_connections or default_max_connections()
        self.open = 0
        self.refusals = RateLimitedLog("refused connections: %d are open, the limit")

    def admit(self) -> bool:
        if self.open >= self.limit:
            self.refusals.event(self.open)
            return False
        self.open += 1
        return True

    def release(self) -> None:
        self.open -= 1


_COUNTER: ConnectionCounter | None = None


def process_counter() -> ConnectionCounter:
    """This process's counter, made on the first connection from ENV_CONNECTIONS."""
    global _COUNTER
    if _COUNTER is None:
        _COUNTER = ConnectionCounter(ConnectionLimits.from_environment())
    return _COUNTER


class GuardedConnection(asyncio.Protocol):
    """uvicorn's h11 protocol behind a connection limit and a deadline on each request's arrival."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        from uvicorn.protocols.http.h11_impl import H11Protocol

        self.inner = H11Protocol(*args, **kwargs)  # uvicorn's own arguments, passed through
        self.counter = process_counter()
        self.transport: asyncio.Transport | None = None
        self.admitted = False
        self.timer: asyncio.TimerHandle | None = None
        self.armed_at = 0.0  # loop time the current request's clock started
        self.bytes_since_armed = False

    # --- asyncio.Protocol, forwarded -------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        if not self.counter.admit():
            transport.write(BUSY_RESPONSE)  # type: ignore[attr-defined]
            transport.close()
            return
        self.admitted = True
        self.inner.connection_made(transport)  # type: ignore[arg-type]
        self._arm()

    def data_received(self, data: bytes) -> None:
        self.bytes_since_armed = True
        token = CONNECTION.set(self)
        try:
            self.inner.data_received(data)
        finally:
            CONNECTION.reset(token)

    def eof_received(self) -> bool | None:
        return self.inner.eof_received()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        if self.admitted:
            self.admitted = False
            self.counter.release()
            self.inner.connection_lost(exc)

    def pause_writing(self) -> None:
        self.inner.pause_writing()

    def resume_writing(self) -> None:
        self.inner.resume_writing()

    # --- the request clock (RequestGuard calls these) ----------------------------------------

    def request_started(self) -> float:
        """The headers are in: stop the clock here; returns when it started (loop time)."""
        self._disarm()
        return self.armed_at

    def request_finished(self) -> None:
        """The answer is sent: the next request's clock starts."""
        if self.admitted and self.transport is not None and not self.transport.is_closing():
            self._arm()

    def _arm(self) -> None:
        self._disarm()
        loop = asyncio.get_running_loop()
        self.armed_at, self.bytes_since_armed = loop.time(), False
        self.timer = loop.call_later(self.counter.limits.read_timeout_s, self._timed_out)

    def _disarm(self) -> None:
        if self.timer is not None:
            self.timer.cancel()
            self.timer = None

    def _timed_out(self) -> None:
        self.timer = None
        if self.transport is None or self.transport.is_closing():
            return
        if self.bytes_since_armed:  # part of a request came: say why it ends
            self.transport.write(TIMEOUT_RESPONSE)
        self.transport.close()
