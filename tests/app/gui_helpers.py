"""Small helpers shared by the GUI tests (imported by name: tests/app is on sys.path)."""

from __future__ import annotations

import io

from PIL import Image


def png_bytes(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()
