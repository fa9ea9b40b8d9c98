"""Uploaded photos: checked, then decoded off the event loop with bounded memory.

A 25-megapixel upload is about 100 MB of RGBA pixels while it decodes, from a PNG of a few
kilobytes. So every picture is shrunk to a longer side under 2 x `settings.upload_max_side` as it
is decoded (the face aligner searches at most 800 pixels and the model sees 64), at most
`settings.decoding_uploads` pictures are decoded at once, and the freed pixel buffers are handed
back to the operating system. The decoded pictures then wait for their job; all requests
together may hold at most `settings.max_decoded_pixels` of them (read from each header before
decoding), so 16 requests of 16 photos do not hold 256 pictures at once. Waiting for a decoding
turn or for room in that budget counts against the request's deadline.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import io
import time
import warnings
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import UploadFile
from PIL import Image
from starlette.concurrency import run_in_threadpool

from ... import imaging
from .batching import DeadlineExceededError
from .errors import UploadTypeError
from .settings import ServerSettings

IMAGE_TYPES = {"image/png", "image/jpeg", "image/webp", "image/bmp", "image/gif"}


def _libc_trim() -> "ctypes._CFuncPtr | None":
    """glibc's malloc_trim, which returns freed heap memory to the system (None elsewhere)."""
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name).malloc_trim if name else None
    except (OSError, AttributeError):
        return None


_MALLOC_TRIM = _libc_trim()


def decoded_pixels(data: bytes, max_pixels: int, max_side: int | None) -> int:
    """The pixels imaging.read_image will decode `data` to, from its header (0 if it has none
    that Pillow reads or declares more than max_pixels: read_image then refuses it)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            width, height = Image.open(io.BytesIO(data)).size
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError):
        return 0
    if width * height > max_pixels:
        return 0
    factor = max(width, height) // max_side if max_side else 1
    return width * height if factor < 2 else -(-width // factor) * -(-height // factor)


class PixelBudget:
    """Decoded pixels held by all requests at once; one request always fits when none holds any."""

    def __init__(self, limit: int) -> None:
        self.limit, self.held = limit, 0
        self.changed = asyncio.Condition()

    async def acquire(self, pixels: int, deadline: float, timeout_s: float) -> None:
        async with self.changed:
            try:
                await asyncio.wait_for(self.changed.wait_for(lambda: not self.held or self.held + pixels <= self.limit),
                                       max(deadline - time.monotonic(), 0))
            except TimeoutError:
                raise DeadlineExceededError(_late(timeout_s)) from None
            self.held += pixels

    async def release(self, pixels: int) -> None:
        async with self.changed:
            self.held -= pixels
            self.changed.notify_all()


def _late(timeout_s: float) -> str:
    return f"the request took longer than the server's limit of {timeout_s:g} s"


class UploadDecoder:
    """Decodes uploads, at most `slots` at once, within one budget of decoded pixels; one per app."""

    def __init__(self, settings: ServerSettings) -> None:
        self.settings = settings
        self.slots = asyncio.Semaphore(settings.decoding_uploads)
        self.budget = PixelBudget(settings.max_decoded_pixels)

    @asynccontextmanager
    async def decoded(self, uploads: list[UploadFile], deadline: float) -> AsyncIterator[list[Image.Image]]:
        """The pictures of `uploads`, counted against the pixel budget until the block ends
        (then the list is emptied, so a job still holding it lets the pictures go too)."""
        settings = self.settings
        data = [await self.read_bytes(upload) for upload in uploads]
        pixels = sum(decoded_pixels(item, settings.max_upload_pixels, settings.upload_max_side) for item in data)
        await self.budget.acquire(pixels, deadline, settings.timeout_s)
        pictures: list[Image.Image] = []
        try:
            for item in data:
                pictures.append(await self.decode(item, deadline))
            yield pictures
        finally:
            pictures.clear()
            await self.budget.release(pixels)
            if not self.budget.held and _MALLOC_TRIM is not None:  # nothing decoded is held now: give it back
                await asyncio.to_thread(_MALLOC_TRIM, 0)

    async def read_bytes(self, upload: UploadFile) -> bytes:
        """An upload's bytes after its declared type, at most max_upload_bytes."""
        settings = self.settings
        label = f"'{(upload.filename or 'upload')[:80]}'"
        if (upload.content_type or "").split(";")[0].strip().lower() not in IMAGE_TYPES:
            raise UploadTypeError(f"{label} was sent as '{(upload.content_type or '')[:80]}'; send a PNG, JPEG, "
                                  f"WebP, BMP or GIF image with its image/* content type")
        data = await upload.read(settings.max_upload_bytes + 1)
        if len(data) > settings.max_upload_bytes:
            raise imaging.ImageTooLargeError(f"{label} is larger than the limit of "
                                             f"{settings.max_upload_bytes / 1e6:.1f} MB; resize or recompress it")
        return data

    async def decode(self, data: bytes, deadline: float) -> Image.Image:
        """In a thread, once a slot is free before the deadline: imaging.read_image's format
        sniffing and header pixel count, then the pixels."""
        try:
            await asyncio.wait_for(self.slots.acquire(), max(deadline - time.monotonic(), 0))
        except TimeoutError:
            raise DeadlineExceededError(_late(self.settings.timeout_s)) from None
        try:
            return await run_in_threadpool(self._decode, data)
        finally:
            self.slots.release()

    def _decode(self, data: bytes) -> Image.Image:
        try:
            return imaging.read_image(data, self.settings.max_upload_bytes, self.settings.max_upload_pixels,
                                      max_side=self.settings.upload_max_side)
        finally:
            if _MALLOC_TRIM is not None:  # the full-size buffers are free now: give them back
                _MALLOC_TRIM(0)
