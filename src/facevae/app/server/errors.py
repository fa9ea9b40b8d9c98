"""Every error the REST API answers, as JSON: {"error": short_code, "detail": what to fix}.

Exceptions raised anywhere in a request are mapped here to a status and a stable code. An
unexpected one is logged with its traceback and answered 500 with `Connection: close`, so a
client never reuses a connection whose state the failure may have left unknown.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from ... import imaging
from ...errors import UserError
from ...inference.pipeline import UnknownAttributeError
from .batching import BatcherClosedError, DeadlineExceededError, QueueFullError

log = logging.getLogger("facevae.server")

MAX_ECHO = 80  # characters of a client's value quoted back in an error message
_HTTP_CODES = {400: "bad_request", 404: "not_found", 405: "method_not_allowed", 408: "request_timeout",
               413: "too_large", 415: "unsupported_media_type", 503: "unavailable"}


class NotReadyError(Exception):
    """The model is still loading."""


class UploadTypeError(UserError):
    """An upload whose declared content type is not an image type."""


def clipped(text: str, limit: int = MAX_ECHO) -> str:
    """A client's value as quoted in an error: at most `limit` characters."""
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text)} characters)"


def error_response(status: int, code: str, detail: Any, headers: dict[str, str] | None = None,
                   **extra: Any) -> JSONResponse:
    return JSONResponse({"error": code, "detail": detail, **extra}, status_code=status, headers=headers)


def _user_error_status(error: UserError) -> tuple[int, str]:
    if isinstance(error, (UploadTypeError, imaging.UnsupportedImageError)):
        return 415, "unsupported_image"
    if isinstance(error, imaging.ImageTooLargeError):
        return 413, "image_too_large"
    if isinstance(error, imaging.UnreadableImageError):
        return 400, "unreadable_image"
    return 422, "invalid_input"


async def invalid_request(request: Request, error: RequestValidationError) -> JSONResponse:
    fields = [{"field": clipped(".".join(str(part) for part in e["loc"] if part != "body") or "body"),
               "problem": e["msg"]} for e in error.errors()[:20]]
    summary = "; ".join(f"{f['field']}: {f['problem']}" for f in fields)
    return error_response(422, "invalid_request", f"The request does not match the API ({summary}). See /docs",
                          fields=fields)


async def unknown_attribute(request: Request, error: UnknownAttributeError) -> JSONResponse:
    pipeline = request.app.state.pipeline
    return error_response(422, "unknown_attribute", str(error),
                          valid_attributes=pipeline.attribute_names if pipeline else [])


def api_name(option: str, value: object) -> str:
    """How the API names a setting in messages: its request field, with the value that fixes it."""
    return f"the `{option}` field" + (f" set to {json.dumps(value)}" if value is not None else "")


async def user_error(request: Request, error: UserError) -> JSONResponse:
    status, code = _user_error_status(error)
    return error_response(status, code, error.render(api_name))


async def queue_full(request: Request, error: QueueFullError) -> JSONResponse:
    return error_response(503, "busy", str(error), headers={"Retry-After": str(error.retry_after)})


async def closing(request: Request, error: BatcherClosedError) -> JSONResponse:
    return error_response(503, "shutting_down", "The server is shutting down; retry on another replica",
                          headers={"Retry-After": "1"})


async def not_ready(request: Request, error: NotReadyError) -> JSONResponse:
    return error_response(503, "not_ready", "The model is still loading; retry in a few seconds",
                          headers={"Retry-After": "2"})


async def deadline(request: Request, error: DeadlineExceededError) -> JSONResponse:
    return error_response(504, "timeout", f"{error}. Ask for fewer faces or fewer refine steps, or retry later")


async def http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
    return error_response(error.status_code, _HTTP_CODES.get(error.status_code, "http_error"), error.detail,
                          headers=getattr(error, "headers", None))


async def internal(request: Request, error: Exception) -> JSONResponse:
    log.exception("unexpected error in %s %s", request.method, request.url.path)
    return error_response(500, "internal_error", f"{type(error).__name__}: the server failed; its log has the details",
                          headers={"Connection": "close"})


HANDLERS = {RequestValidationError: invalid_request, UnknownAttributeError: unknown_attribute, UserError: user_error,
            QueueFullError: queue_full, BatcherClosedError: closing, NotReadyError: not_ready,
            DeadlineExceededError: deadline, StarletteHTTPException: http_error, Exception: internal}


def add_error_handlers(app: FastAPI) -> None:
    for exception, handler in HANDLERS.items():
        app.add_exception_handler(exception, handler)  # type: ignore[arg-type]
