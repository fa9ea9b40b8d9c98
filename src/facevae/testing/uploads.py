"""Hostile uploads for the server's tests and benchmarks.

blank_png(4990, 4990) is the hardening probe's memory bomb: a valid PNG of about 97 KB that
decodes to ~100 MB of RGBA pixels, written row by row so making it costs no memory either.
"""

from __future__ import annotations

import struct
import zlib


def blank_png(width: int, height: int, color_type: int = 6) -> bytes:
    """A PNG of width x height zero pixels: colour type 6 RGBA (default), 2 RGB or 0 grey."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    channels = {0: 1, 2: 3, 6: 4}[color_type]
    compressor, row, parts = zlib.compressobj(9), bytes(1 + width * channels), []  # filter byte + pixels
    for _ in range(height):
        parts.append(compressor.compress(row))
    parts.append(compressor.flush())
    header = struct.pack(">IIBBBBB", width, height, 8, color_type, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", b"".join(parts)) + chunk(b"IEND", b"")
