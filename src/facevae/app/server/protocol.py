"""uvicorn's h11 protocol with a deadline on reading each request as a whole.

uvicorn times out idle keep-alive connections but not a client that sends its headers or
body a few bytes at a time: every byte restarts nothing, so a client trickling 100 B/s holds
a connection (and a request slot) for as long as it likes. Here the first byte of a request
starts a clock; if the headers and the body have not all arrived `read_timeout_s` later, the
server answers 408 (when no response has started) and closes the connection.
`facevae serve` runs uvicorn with `http=ReadDeadlineH11Protocol`.
"""

from __future__ import annotations

import asyncio
import os

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

ENV_READ_TIMEOUT = "FACEVAE_SERVE_READ_TIMEOUT_S"  # set by `facevae serve`; worker processes inherit it
DEFAULT_READ_TIMEOUT_S = 30.0
_TIMEOUT_BODY = b'{"error": "request_timeout", "detail": "The request was not sent completely in time"}'
TIMEOUT_RESPONSE = (b"HTTP/1.1 408 Request Timeout\r\ncontent-type: application/json\r\nconnection: close\r\n"
                    b"content-length: %d\r\n\r\n%s" % (len(_TIMEOUT_BODY), _TIMEOUT_BODY))


class ReadDeadlineH11Protocol(H11Protocol):
    """H11Protocol whose requests must arrive completely within read_timeout_s of their first byte."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.read_timeout_s = float(os.environ.get(ENV_READ_TIMEOUT) or DEFAULT_READ_TIMEOUT_S)
        self.read_deadline: asyncio.TimerHandle | None = None

    def data_received(self, data: bytes) -> None:
        if self.read_deadline is None and self.conn.their_state in (h11.IDLE, h11.SEND_BODY):
            self.read_deadline = self.loop.call_later(self.read_timeout_s, self._read_timed_out)
        super().data_received(data)
        if self.conn.their_state is not h11.SEND_BODY and self.conn.their_state is not h11.IDLE:
            self._disarm()  # the request is in (DONE) or the connection is over (ERROR, CLOSED, ...)

    def on_response_complete(self) -> None:
        self._disarm()
        super().on_response_complete()

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _disarm(self) -> None:
        if self.read_deadline is not None:
            self.read_deadline.cancel()
            self.read_deadline = None

    def _read_timed_out(self) -> None:
        self.read_deadline = None
        if self.transport.is_closing():
            return
        if self.cycle is None or not self.cycle.response_started:
            self.transport.write(TIMEOUT_RESPONSE)
        if self.cycle is not None:
            self.cycle.disconnected = True  # the app's next receive() sees http.disconnect
            self.cycle.message_event.set()
        self.transport.close()
