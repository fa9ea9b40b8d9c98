"""Uploaded photos: checked, then decoded off the event loop with bounded memory.

A 25-megapixel upload is about 100 MB of RGBA pixels while it decodes, from a PNG of a few
kilobytes. So every picture is shrunk to a longer side under 2 x `settings.upload_max_side` as it
is decoded (the face aligner searches at most 800 pixels and the model sees 64), at most
`settings.decoding_uploads` pictures are decoded at once, waiting for a turn counts against the
request's deadline, and the freed pixel buffers are handed back to the operating system.
"""

from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import time

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


class UploadDecoder:
    """Decodes uploads, at most `slots` at once; one per app."""

    def __init__(self, settings: ServerSettings) -> None:
        self.settings = settings
        self.slots = asyncio.Semaphore(settings.decoding_uploads)

    async def read(self, upload: UploadFile, deadline: float) -> Image.Image:
        """The declared type, then the byte count, then (in a thread, once a slot is free before the
        deadline) imaging.read_image's format sniffing and header pixel count, then the pixels."""
        settings = self.settings
        label = f"'{(upload.filename or 'upload')[:80]}'"
        if (upload.content_type or "").split(";")[0].strip().lower() not in IMAGE_TYPES:
            raise UploadTypeError(f"{label} was sent as '{(upload.content_type or '')[:80]}'; send a PNG, JPEG, "
                                  f"WebP, BMP or GIF image with its image/* content type")
        data = await upload.read(settings.max_upload_bytes + 1)
        if len(data) > settings.max_upload_bytes:
            raise imaging.ImageTooLargeError(f"{label} is larger than the limit of "
                                             f"{settings.max_upload_bytes / 1e6:.1f} MB; resize or recompress it")
        try:
            await asyncio.wait_for(self.slots.acquire(), max(deadline - time.monotonic(), 0))
        except TimeoutError:
            raise DeadlineExceededError(f"the request took longer than the server's limit of "
                                        f"{settings.timeout_s:g} s") from None
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
