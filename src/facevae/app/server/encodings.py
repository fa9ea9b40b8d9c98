"""The server's cache of encoded photos (FacePipeline.encode's EncodedPhoto).

A client that edits one photo again and again (a slider in a web page) pays for finding,
framing and encoding the face (with refinement, seconds) once; every later /v1/edit of the
same picture with the same framing and refinement only decodes. Entries are keyed by the
SHA-256 of the decoded pixels, so the same picture re-encoded as another file still hits.
An EncodedPhoto is small (a 1 x 3 x S x S image and a code), and at most MAX_ENTRIES are
kept, least recently used first out.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict

from PIL import Image

from ...inference.encoded import EncodedPhoto
from ...inference.pipeline import FacePipeline

MAX_ENTRIES = 64


class EncodingCache:
    """Thread-safe: encodings run in the batcher's worker threads."""

    def __init__(self, max_entries: int = MAX_ENTRIES) -> None:
        self.max_entries = max_entries
        self._entries: OrderedDict[tuple, EncodedPhoto] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0

    @staticmethod
    def key(picture: Image.Image, refine_steps: int, whole_image: bool) -> tuple:
        digest = hashlib.sha256(picture.tobytes()).hexdigest()
        return digest, picture.size, picture.mode, refine_steps, whole_image

    def encode(self, pipeline: FacePipeline, picture: Image.Image, refine_steps: int,
               whole_image: bool) -> EncodedPhoto:
        """The cached EncodedPhoto of the picture, else pipeline.encode's, remembered."""
        key = self.key(picture, refine_steps, whole_image)
        with self._lock:
            if key in self._entries:
                self._entries.move_to_end(key)
                self.hits += 1
                return self._entries[key]
        encoded = pipeline.encode(picture, refine_steps, whole_image)  # outside the lock: may take seconds
        with self._lock:
            self._entries[key] = encoded
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
        return encoded

    def __len__(self) -> int:
        return len(self._entries)
