"""`prepare`: decode a data folder once into a uint8 cache; `ensure_cache` for `train --data`.

    prepare(data_dir) -> cache folder     (DATA_DIR/.facevae-cache/64-squash by default)

Steps: detect the layout (layouts.py); list the images; read the labels and match them to
the files (labels.py), dropping images without a label row; assign splits (splits.py);
reuse the target cache if it is complete and was made from the same files with the same
parameters; else decode in bounded chunks on all cores (decode.py) and write through
CacheWriter, which publishes the folder atomically. Problems are listed one per line in the
cache's report.txt and counted in meta.json's "problems".

Memory stays bounded: worker processes decode chunks of about 2 MB of output pixels, at most
two chunks per worker are in flight, and the parent appends each finished chunk to the
image file with os.pwrite (no memory map is touched), so memory does not grow with the
number of images beyond the file-name list and the label arrays (a few tens of MB for CelebA).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import sys
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from .. import __version__
from ..config import Preprocessing, to_dict
from ..errors import UserError
from ..files import format_bytes, parse_json
from .cache import CacheError, CacheWriter, ImageCache, is_cache
from .decode import decode_chunk
from .labels import CELEBA_ATTRIBUTES, read_attributes, read_partition
from .layouts import Layout, detect_layout
from .pool import available_cores, decoding_pool
from .splits import CELEBA_IMAGE_COUNT, OFFICIAL_COUNTS, seeded_split, split_counts

CACHE_SIZES = (32, 64, 128, 256)
CACHE_FOLDER = ".facevae-cache"  # default caches live in DATA_DIR/.facevae-cache/<size>-<crop>
DECODER = "simplejpeg-dct-scaled+pillow-bilinear/1"  # bump when decode.py's output changes
CHUNK_BYTES = 2 << 20  # output pixels per pool task
REPORT_FILE = "report.txt"

# Problem kinds, as counted in meta.json and listed in report.txt, and how to say them.
PROBLEMS = {
    "unreadable": "unreadable or truncated images skipped",
    "no-attribute-row": "images without an attribute row skipped",
    "no-partition-row": "images without a partition row skipped",
    "attribute-row-without-image": "attribute rows for images that are not there",
    "partition-row-without-image": "partition rows for images that are not there",
    "duplicate-row": "duplicate label rows (the first one is used)",
    "count-line": "attribute file whose first line disagrees with its number of rows",
    "partition-counts": "partition that differs from the official CelebA split",
}


@dataclass
class Problems:
    rows: list[tuple[str, str, str]] = field(default_factory=list)  # (kind, file, detail)

    def add(self, kind: str, name: str, detail: str = "") -> None:
        self.rows.append((kind, name, detail))

    def counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for kind, _, _ in self.rows:
            counts[kind] = counts.get(kind, 0) + 1
        return counts

    def write(self, path: Path) -> None:
        lines = ["# facevae prepare report: one problem per line: KIND<TAB>FILE<TAB>DETAIL\n"]
        lines += [f"{kind}\t{name}\t{detail}\n" for kind, name, detail in self.rows]
        path.write_text("".join(lines), encoding="utf-8")


@dataclass
class Labels:
    """Per listed image: whether it has its label rows, its attributes and its split."""

    usable: np.ndarray  # N bool
    attributes: np.ndarray  # N x A int8
    attribute_names: list[str]
    split: np.ndarray  # N uint8
    split_params: dict[str, Any]


def cache_name(spec: Preprocessing) -> str:
    return f"{spec.image_size}-squash" if spec.crop == "squash" else f"{spec.image_size}-center{spec.crop_size}"


def default_cache_dir(data_dir: str | Path, spec: Preprocessing) -> Path:
    return Path(data_dir).expanduser().absolute() / CACHE_FOLDER / cache_name(spec)


def _check_options(spec: Preprocessing, workers: int, val_fraction: float, test_fraction: float,
                   split_seed: int) -> None:
    try:
        if spec.image_size not in CACHE_SIZES:
            raise ValueError(f"a cache's image size must be one of {', '.join(map(str, CACHE_SIZES))}, "
                             f"not {spec.image_size}")
        seeded_split(0, val_fraction, test_fraction, split_seed)  # validates the fractions
        if workers < 0:
            raise ValueError(f"workers must be 0 (all cores) or more, not {workers}")
    except ValueError as error:
        raise UserError(str(error)) from None


def prepare(data_dir: str | Path, out: str | Path | None = None, preprocessing: Preprocessing = Preprocessing(),
            workers: int = 0, val_fraction: float = 0.1, test_fraction: float = 0.1,
            split_seed: int = 0, progress: bool = True, force: bool = False) -> Path:
    """Make (or reuse) the cache of data_dir and return its folder. See the module docstring."""
    spec = preprocessing
    _check_options(spec, workers, val_fraction, test_fraction, split_seed)
    say = (lambda message: print(message, file=sys.stderr, flush=True)) if progress else (lambda message: None)
    layout = detect_layout(data_dir)
    target = Path(out).expanduser().absolute() if out else default_cache_dir(layout.data_dir, spec)
    images, sizes = layout.list_images()
    problems = Problems()
    labels = _read_labels(layout, images, val_fraction, test_fraction, split_seed, problems)
    key = {"image_size": spec.image_size, "crop": spec.crop,
           "crop_size": spec.crop_size if spec.crop == "center" else None,
           "decoder": DECODER, "layout": layout.kind, "split": labels.split_params, "image_count": len(images),
           "fingerprint": _fingerprint(layout, images, sizes)}
    if not force and _reusable(target, key):
        say(f"Reusing the prepared cache {target} (same {len(images):,} files, same parameters)")
        return target
    if target.exists() and not is_cache(target) and any(target.iterdir()):
        raise UserError(f"{target} exists and is not a facevae cache; choose a new or empty folder with --out")
    chosen = np.flatnonzero(labels.usable)
    if len(chosen) == 0:
        unlabelled = [row for row in problems.rows if row[0] in ("no-attribute-row", "no-partition-row")]
        examples = "; ".join(f"{name} {detail}" for _, name, detail in unlabelled[:2])
        raise UserError(f"none of the {len(images):,} images in {layout.data_dir} has its label rows "
                        f"(e.g. {examples}): check that the label files belong to these images")
    for note in layout.notes:
        say(f"note: {note}")
    workers = workers or available_cores()
    say(f"Preparing {target}: {len(chosen):,} images from {layout.describe()} {layout.data_dir}, "
        f"{spec.image_size}x{spec.image_size} ({cache_name(spec)}), "
        f"{workers} worker process{'es' if workers > 1 else ''}")
    started = time.perf_counter()
    paths = [str(layout.data_dir / images[i]) for i in chosen]
    writer = _open_writer(target, len(chosen), spec)
    with writer:
        kept = _decode_into(writer, paths, spec, workers, progress, problems, [images[i] for i in chosen])
        seconds = time.perf_counter() - started
        if not kept.any():
            first = next(row for row in problems.rows if row[0] == "unreadable")
            raise UserError(f"none of the {len(chosen):,} images in {layout.data_dir} could be decoded "
                            f"(e.g. {first[1]}: {first[2]})")
        problems.write(writer.tmp / REPORT_FILE)
        rows = chosen[kept]
        meta = {"preprocessing": to_dict(spec),
                "reuse_key": key, "source": {"data_dir": str(layout.data_dir), "layout": layout.kind,
                                             "image_dir": str(layout.image_dir), "notes": layout.notes},
                "problems": problems.counts(), "report": REPORT_FILE,
                "prepared": {"seconds": round(seconds, 2), "images_per_second": round(len(chosen) / max(seconds, 1e-9)),
                             "workers": workers, "facevae_version": __version__,
                             "time": time.strftime("%Y-%m-%dT%H:%M:%S%z")}}
        writer.finish([images[i] for i in rows], labels.attributes[rows], labels.attribute_names,
                      labels.split[rows], meta)
    return target


def _read_labels(layout: Layout, images: list[str], val_fraction: float, test_fraction: float,
                 seed: int, problems: Problems) -> Labels:
    """Match label rows to the listed images; images without their rows become unusable."""
    count = len(images)
    # CelebA label files name bare files; a folder's CSV names paths relative to the folder.
    keys = [name.rsplit("/", 1)[-1] for name in images] if layout.is_celeba else images
    usable = np.ones(count, bool)
    attributes, attribute_names = np.zeros((count, 0), np.int8), []
    if layout.attributes_file is not None:
        table = read_attributes(layout.attributes_file)
        attribute_names = table.attribute_names
        if layout.is_celeba and tuple(attribute_names) != CELEBA_ATTRIBUTES:
            layout.notes.append(f"{layout.attributes_file.name} names other attributes than CelebA's 40; using its own")
        if table.declared_count is not None and table.declared_count != len(table.names):
            problems.add("count-line", layout.attributes_file.name,
                         f"line 1 says {table.declared_count} images, the file has {len(table.names)} rows")
        rows = _match(keys, images, table.names, layout.attributes_file.name, "attribute", problems)
        usable &= rows >= 0
        attributes = np.where(usable[:, None], table.values[np.maximum(rows, 0)], 0).astype(np.int8)
        for index in np.flatnonzero(rows < 0):
            problems.add("no-attribute-row", images[index], f"not in {layout.attributes_file.name}")
    if layout.partition_file is not None:
        names, codes = read_partition(layout.partition_file)
        rows = _match(keys, images, names, layout.partition_file.name, "partition", problems)
        for index in np.flatnonzero((rows < 0) & usable):
            problems.add("no-partition-row", images[index], f"not in {layout.partition_file.name}")
        usable &= rows >= 0
        split = np.where(rows >= 0, codes[np.maximum(rows, 0)], 0).astype(np.uint8)
        if len(names) == CELEBA_IMAGE_COUNT and split_counts(codes) != OFFICIAL_COUNTS:
            problems.add("partition-counts", layout.partition_file.name,
                         f"{split_counts(codes)} instead of the official {OFFICIAL_COUNTS}")
        params: dict[str, Any] = {"mode": "partition-file", "file": layout.partition_file.name}
    else:
        split = seeded_split(count, val_fraction, test_fraction, seed)
        params = {"mode": "seeded", "val_fraction": val_fraction, "test_fraction": test_fraction, "seed": seed}
    return Labels(usable, attributes, list(attribute_names), split, params)


def _match(keys: list[str], images: list[str], names: list[str], file_name: str, what: str,
           problems: Problems) -> np.ndarray:
    """Row of `names` for each image key (-1: none). Rows naming no image and duplicate
    rows are reported. A bare file name also matches an image in a sub-folder when only one
    image has that name (attribute CSVs of image folders often list bare names)."""
    row_of: dict[str, int] = {}
    for row, name in enumerate(names):
        if name in row_of:
            problems.add("duplicate-row", name, f"{file_name} has more than one row for it")
        else:
            row_of[name] = row
    rows = np.array([row_of.get(key, -1) for key in keys], np.int64)
    if (rows < 0).any():
        by_base: dict[str, int] = {}
        for index, key in enumerate(keys):
            base = key.rsplit("/", 1)[-1]
            by_base[base] = -2 if base in by_base else index  # -2: ambiguous
        for base, index in by_base.items():
            if index >= 0 and rows[index] < 0 and base in row_of:
                rows[index] = row_of[base]
    used = np.zeros(len(names), bool)
    used[rows[rows >= 0]] = True
    for row in np.flatnonzero(~used):
        if row_of.get(names[row]) == row:  # duplicates were reported already
            problems.add(f"{what}-row-without-image", names[row], f"{file_name} row {row + 1}: no such image")
    return rows


def _fingerprint(layout: Layout, images: list[str], sizes: list[int]) -> str:
    """Cheap identity of the source: every image's name and size, the label files' name, size
    and modification time. A changed, added or removed file changes it."""
    digest = hashlib.sha256("".join(f"{name}\0{size}\n" for name, size in zip(images, sizes)).encode())
    for label_file in (layout.attributes_file, layout.partition_file):
        if label_file is not None:
            stat = label_file.stat()
            digest.update(f"{label_file.name}\0{stat.st_size}\0{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


def _reusable(target: Path, key: dict[str, Any]) -> bool:
    """A complete cache made with the same key (its image file has the size meta.json says)."""
    if not is_cache(target):
        return False
    try:
        meta = parse_json((target / "meta.json").read_text())
        size = int(meta["count"]) * int(meta["image_size"]) ** 2 * 3
        return meta.get("reuse_key") == key and (target / "images.u8").stat().st_size == size
    except (OSError, ValueError, KeyError, TypeError):
        return False  # damaged: rebuild


def _open_writer(target: Path, count: int, spec: Preprocessing) -> CacheWriter:
    """A CacheWriter, or a message that says why the folder cannot hold the cache."""
    fix = "Pass --out CACHE_DIR with a writable folder (data.cache_dir in a run config)"
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        needed, free = count * spec.image_size * spec.image_size * 3, shutil.disk_usage(target.parent).free
        if needed > free:
            raise UserError(f"the cache needs {format_bytes(needed)} but {target.parent} has "
                            f"{format_bytes(free)} free. {fix}")
        return CacheWriter(target, count, spec.image_size)  # published with normal permissions by replace_dir
    except OSError as error:
        raise UserError(f"cannot write the cache in {target.parent} ({error.strerror or error}). {fix}") from None


def _decode_into(writer: CacheWriter, paths: list[str], spec: Preprocessing, workers: int, progress: bool,
                 problems: Problems, names: list[str]) -> np.ndarray:
    """Decode every path and append the readable ones, in order, to the writer's image file.

    Returns the mask of paths that were readable."""
    kept = np.ones(len(paths), bool)
    row_bytes = spec.image_size * spec.image_size * 3
    written = 0
    handle = os.open(writer.tmp / "images.u8", os.O_WRONLY)
    try:
        with tqdm(total=len(paths), unit="img", desc="prepare", disable=not progress, smoothing=0.1) as bar:
            for start, pixels, failures in _decode_chunks(paths, spec, workers):
                for position, reason in failures:
                    kept[start + position] = False
                    problems.add("unreadable", names[start + position], reason)
                if failures:
                    pixels = pixels[kept[start:start + len(pixels)]]
                _write_all(handle, memoryview(np.ascontiguousarray(pixels).reshape(-1)), written * row_bytes)
                written += len(pixels)
                bar.update(len(failures) + len(pixels))
    finally:
        os.close(handle)
    return kept


def _write_all(handle: int, data: memoryview, offset: int) -> None:
    while len(data):
        done = os.pwrite(handle, data, offset)
        data, offset = data[done:], offset + done


def _chunk_rows(spec: Preprocessing, count: int, workers: int) -> int:
    """Images per pool task: about CHUNK_BYTES of output, and at least 4 tasks per worker."""
    by_memory = max(8, min(512, CHUNK_BYTES // (spec.image_size * spec.image_size * 3)))
    return max(1, min(by_memory, -(-count // (4 * workers))))


def _decode_chunks(paths: list[str], spec: Preprocessing, workers: int) -> Iterator[tuple[int, np.ndarray, list]]:
    """(start, pixels, failures) per chunk, in order. At most 2 chunks per worker are in
    flight, so memory stays bounded however many images there are."""
    rows = _chunk_rows(spec, len(paths), workers)
    starts = iter(range(0, len(paths), rows))
    if workers <= 1 or len(paths) <= rows:
        for start in starts:
            yield (start, *decode_chunk(paths[start:start + rows], spec))
        return
    pool = decoding_pool(workers)  # its workers end with this process, even after kill -9
    try:
        pending = deque()
        for start in starts:
            pending.append((start, pool.submit(decode_chunk, paths[start:start + rows], spec)))
            if len(pending) >= 2 * workers:
                break
        while pending:
            start, future = pending.popleft()
            pixels, failures = future.result()
            following = next(starts, None)
            if following is not None:
                pending.append((following, pool.submit(decode_chunk, paths[following:following + rows], spec)))
            yield start, pixels, failures
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def describe_cache(path: str | Path) -> str:
    """A few lines for people: what the cache holds and what went wrong on the way."""
    cache = ImageCache.open(path)
    meta, counts = cache.meta, cache.meta.get("split_counts", {})
    size = cache.image_size
    split = meta.get("reuse_key", {}).get("split", {})
    how = "partition file" if split.get("mode") == "partition-file" else \
        f"seeded split, seed {split.get('seed')}" if split else "unknown split"
    lines = [f"{cache.path}: {len(cache):,} images, {size}x{size} ({meta['preprocessing']['crop']}"
             + (f" {meta['preprocessing']['crop_size']}" if meta["preprocessing"]["crop"] == "center" else "") + "), "
             f"{len(cache.attribute_names)} attributes",
             f"  split: {' / '.join(f'{name} {counts.get(name, 0):,}' for name in ('train', 'valid', 'test'))} ({how})"]
    prepared = meta.get("prepared", {})
    if prepared:
        lines.append(f"  decoded in {prepared['seconds']:.1f} s when first prepared "
                     f"({prepared['images_per_second']:,} images/s, {prepared['workers']} workers)")
    for kind, count in meta.get("problems", {}).items():
        lines.append(f"  {PROBLEMS.get(kind, kind)}: {count:,}")
    if meta.get("problems"):
        lines.append(f"  the list: {cache.path / meta.get('report', REPORT_FILE)}")
    return "\n".join(lines)


def ensure_cache(path: str | Path, data_config: Any, image_size: int, progress: bool = True) -> ImageCache:
    """The cache for `train --data PATH`: a prepared cache is opened (its image size and crop
    must match), a raw data folder is prepared first, or reused if prepared before (and we say so).

    data_config: a facevae.config.DataConfig (cache_dir, crop, crop_size, workers, splits)."""
    path = Path(path).expanduser()
    if is_cache(path):
        cache = ImageCache.open(path)
        made = cache.meta.get("preprocessing", {})
        wanted = to_dict(data_config.preprocessing(image_size))
        differing = [key for key in wanted if made.get(key) != wanted[key] and
                     not (key == "crop_size" and wanted["crop"] == made.get("crop") == "squash")]
        if differing:
            raise CacheError(f"{path} was prepared with " + ", ".join(f"{k}={made.get(k)}" for k in differing)
                             + " but the run asks for " + ", ".join(f"{k}={wanted[k]}" for k in differing)
                             + ": change the run's settings or prepare a matching cache from the raw data")
        return cache
    if not path.exists():
        raise UserError(f"--data {path} does not exist")
    print(f"{path} is a raw data folder, not a prepared cache: using its cache (prepared once, reused by "
          f"later runs)", file=sys.stderr, flush=True)
    target = prepare(path, out=data_config.cache_dir or None, preprocessing=data_config.preprocessing(image_size),
                     workers=data_config.workers,
                     val_fraction=data_config.val_fraction, test_fraction=data_config.test_fraction,
                     split_seed=data_config.split_seed, progress=progress)
    print(describe_cache(target), file=sys.stderr, flush=True)
    return ImageCache.open(target)
