"""Request body limits, enforced before the body is parsed.

A declared Content-Length over the path's limit is answered 413 at once, without reading
the body; a body sent without a length (chunked) is counted as it streams in and refused
as soon as it passes the limit. Either way no oversized upload reaches the multipart
parser or the image decoder.
"""

from __future__ import annotations

import json

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send


def _too_large(limit: int, uploads: bool) -> str:
    fix = "send smaller images (resize or recompress them)" if uploads else "send fewer or shorter latent codes"
    return f"The request body is larger than this endpoint's limit of {limit / 1e6:.1f} MB; {fix}"


class BodyLimitMiddleware:
    """limits: path -> bytes, for the paths that take uploads; default: every other path (JSON)."""

    def __init__(self, app: ASGIApp, limits: dict[str, int], default: int) -> None:
        self.app, self.limits, self.default = app, limits, default

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in ("POST", "PUT", "PATCH"):
            await self.app(scope, receive, send)
            return
        limit, uploads = self.limits.get(scope["path"], self.default), scope["path"] in self.limits
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            status, code = (413, "too_large") if declared.isdigit() else (400, "bad_request")
            detail = _too_large(limit, uploads) if status == 413 else "Content-Length is not a number"
            body = json.dumps({"error": code, "detail": detail}).encode()
            await send({"type": "http.response.start", "status": status,
                        "headers": [(b"content-type", b"application/json"), (b"connection", b"close"),
                                    (b"content-length", str(len(body)).encode())]})
            await send({"type": "http.response.body", "body": body})
            return
        received = 0

        async def counted() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:  # FastAPI passes an HTTPException from the body through as is
                    raise HTTPException(413, _too_large(limit, uploads))
            return message

        await self.app(scope, counted, send)
