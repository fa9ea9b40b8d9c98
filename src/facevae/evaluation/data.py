"""The cache behind `--data CELEBA_OR_CACHE` for the classifier and `evaluate`."""

from __future__ import annotations

from pathlib import Path

from ..config import DataConfig
from ..data.cache import ImageCache, is_cache
from ..data.prepare import ensure_cache


def open_cache(data: str | Path, image_size: int | None, crop: str = "squash", crop_size: int = 148) -> ImageCache:
    """image_size None: a prepared cache as it is, or a raw folder prepared at 64px. Otherwise a
    cache of that size and crop: a raw folder is prepared first (or its earlier cache reused);
    a cache made differently is an error that says so."""
    if image_size is None and is_cache(data):
        return ImageCache.open(data)
    return ensure_cache(data, DataConfig(crop=crop, crop_size=crop_size), image_size or 64)
