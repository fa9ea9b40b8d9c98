"""Throughput and memory of `facevae prepare` against the seed's way of loading CelebA.

Makes N CelebA-sized JPEGs (178 x 218, quality 90, face-like content, official layout with
label files), then in this one process runs
  baseline: Pillow full decode, then resize, one image at a time (what the seed's
            DataLoader did for every image of every epoch), and
  prepare:  facevae.data.prepare.prepare (all cores, DCT-scaled decoding, bounded chunks),
and prints images/s, the speed-up and peak memory (summed PSS of prepare's process tree,
sampled every 0.2 s, plus the largest RSS of any of its processes).

On a shared machine wall-clock rates depend on what else runs, so the table also gives CPU
seconds (user + system, this process and its reaped worker processes) and images per CPU
second: the rate one idle core would reach. "idle-core estimate" multiplies that by the cores
prepare used.

    python benchmarks/prepare_throughput.py --count 20000
    python benchmarks/prepare_throughput.py --count 200000 --unique 5000 --skip-baseline
    python benchmarks/prepare_throughput.py --quick

--unique K writes K distinct JPEGs and hard-links the rest to them (decoding work per image is
the same; generating 200,000 distinct pictures would take minutes), to show that memory does
not grow with the number of images.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import tempfile
import threading
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
from _machine import machine_line  # benchmarks/_machine.py (the script's folder is on sys.path)
from PIL import Image

from facevae.data.prepare import prepare
from facevae.testing.celeba import CELEBA_ATTRIBUTES, face_image, jpeg_bytes


def _write_images(root: str, start: int, stop: int) -> None:
    for index in range(start, stop):
        picture = face_image(np.random.default_rng(index))
        Path(root, f"{index + 1:06d}.jpg").write_bytes(jpeg_bytes(picture, quality=90))


def make_dataset(root: Path, count: int, unique: int, workers: int) -> None:
    """An official-layout CelebA folder with `count` images (`unique` distinct ones)."""
    images = root / "img_align_celeba"
    images.mkdir(parents=True)
    step = max(1, -(-unique // (workers * 8)))
    with ProcessPoolExecutor(workers) as pool:
        list(pool.map(_write_images, [str(images)] * len(range(0, unique, step)), range(0, unique, step),
                      [min(s + step, unique) for s in range(0, unique, step)]))
    for index in range(unique, count):
        os.link(images / f"{index % unique + 1:06d}.jpg", images / f"{index + 1:06d}.jpg")
    rng = np.random.default_rng(0)
    signs = np.where(rng.random((count, len(CELEBA_ATTRIBUTES))) < 0.3, " 1", "-1")
    rows = [f"{index + 1:06d}.jpg " + " ".join(signs[index]) for index in range(count)]
    (root / "list_attr_celeba.txt").write_text(f"{count}\n" + " ".join(CELEBA_ATTRIBUTES) + "\n" + "\n".join(rows) + "\n")
    codes = rng.choice([0, 1, 2], size=count, p=[0.8, 0.1, 0.1])
    (root / "list_eval_partition.txt").write_text("".join(f"{i + 1:06d}.jpg {c}\n" for i, c in enumerate(codes)))


def baseline(files: list[Path], size: int) -> None:
    for path in files:
        with Image.open(path) as image:
            np.asarray(image.convert("RGB").resize((size, size), Image.Resampling.BILINEAR))


class TreeMemory:
    """Peak summed PSS (and largest RSS) of this process and its children, sampled in a thread."""

    def __init__(self, interval: float = 0.2) -> None:
        self.interval, self.peak_pss, self.peak_rss, self.cpu_seconds = interval, 0, 0, 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> "TreeMemory":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        children: list[int] = []
        rounds = 0
        while not self._stop.is_set():
            if rounds % 5 == 0:  # scanning /proc for children costs more than reading memory
                children = _children(os.getpid())
            rounds += 1
            pss_total = 0
            for pid in [os.getpid(), *children]:
                pss, rss = _pss_rss(pid)
                pss_total += pss
                self.peak_rss = max(self.peak_rss, rss)
            self.peak_pss = max(self.peak_pss, pss_total)
            self.cpu_seconds = time.thread_time()  # the sampler's own CPU, subtracted from prepare's
            self._stop.wait(self.interval)


def _children(parent: int) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == parent:
                found.append(int(entry))
    return found


def _pss_rss(pid: int) -> tuple[int, int]:
    """(Pss, Rss) in bytes from /proc/PID/smaps_rollup; (0, 0) if the process is gone."""
    values = {}
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            parts = line.split()
            if parts[0] in ("Pss:", "Rss:"):
                values[parts[0]] = int(parts[1]) * 1024
    except OSError:
        return 0, 0
    return values.get("Pss:", 0), values.get("Rss:", 0)


def _cpu_seconds() -> float:
    """User + system CPU of this process and of its children that have been waited for."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=20_000, help="images (default 20,000)")
    parser.add_argument("--unique", type=int, default=0, help="distinct JPEGs; the rest are hard links (default: all distinct)")
    parser.add_argument("--size", type=int, default=64, choices=(32, 64, 128, 256))
    parser.add_argument("--crop", default="squash", choices=("squash", "center"))
    parser.add_argument("--workers", type=int, default=0, help="prepare's processes (default: all cores)")
    parser.add_argument("--skip-baseline", action="store_true")
    parser.add_argument("--quick", action="store_true", help="2,000 images: a check that runs in well under a minute")
    parser.add_argument("--dir", help="work folder (default: a temporary folder, deleted at the end)")
    args = parser.parse_args()
    count = 2_000 if args.quick else args.count
    unique = min(args.unique or count, count)
    cores = len(os.sched_getaffinity(0))
    work = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="facevae-prepare-bench-"))
    try:
        started = time.perf_counter()
        make_dataset(work / "celeba", count, unique, cores)
        print(f"made {count:,} JPEGs ({unique:,} distinct) in {time.perf_counter() - started:.1f} s; "
              f"{cores} cores, load average {os.getloadavg()[0]:.2f} before timing", flush=True)
        files = sorted((work / "celeba" / "img_align_celeba").iterdir())
        results = []
        if not args.skip_baseline:
            started, cpu = time.perf_counter(), _cpu_seconds()
            baseline(files, args.size)
            results.append(("baseline: Pillow full decode + resize, 1 process", time.perf_counter() - started,
                            _cpu_seconds() - cpu, 1, None, None))
        workers = args.workers or cores
        with TreeMemory() as memory:
            started, cpu = time.perf_counter(), _cpu_seconds()
            cache = prepare(work / "celeba", out=work / "cache", size=args.size, crop=args.crop,
                            workers=args.workers, progress=False)
            seconds = time.perf_counter() - started
        cpu = _cpu_seconds() - cpu - memory.cpu_seconds
        results.append((f"prepare: {workers} workers, DCT-scaled decode", seconds, cpu, min(workers, cores),
                        memory.peak_pss, memory.peak_rss))
        started = time.perf_counter()
        prepare(work / "celeba", out=cache, size=args.size, crop=args.crop, progress=False)
        reuse = time.perf_counter() - started

        print(f"\n{count:,} images of 178x218 -> {args.size}x{args.size} ({args.crop}), load average "
              f"{os.getloadavg()[0]:.2f} after\n")
        print(machine_line())
        print("| method | wall s | images/s | speed-up | CPU s | images per CPU s | idle-core estimate, images/s "
              "| speed-up (estimate) | peak memory (PSS sum / max RSS) |")
        print("|---|---|---|---|---|---|---|---|---|")
        base = results[0] if not args.skip_baseline else None
        for name, secs, cpu, used, pss, rss in results:
            rate, per_cpu = count / secs, count / cpu
            speedup = f"{rate / (count / base[1]):.2f}x" if base else "-"
            estimate_speedup = f"{per_cpu * used / (count / base[2]):.2f}x" if base else "-"
            mem = f"{pss / 2**20:,.0f} MiB / {rss / 2**20:,.0f} MiB" if pss else "-"
            print(f"| {name} | {secs:.2f} | {rate:,.0f} | {speedup} | {cpu:.2f} | {per_cpu:,.0f} | "
                  f"{per_cpu * used:,.0f} | {estimate_speedup} | {mem} |")
        print(f"\nsecond prepare (reuse check: list + fingerprint + label parse): {reuse:.2f} s")
        self_rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        child_rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
        print(f"ru_maxrss: this process {self_rss:,.0f} MiB (includes torch, imported by facevae), "
              f"largest child {child_rss:,.0f} MiB (includes the JPEG generators)")
    finally:
        if not args.dir:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
