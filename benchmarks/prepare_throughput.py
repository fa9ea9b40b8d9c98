"""Throughput and memory of `facevae prepare` against the seed's DataLoader decoding CelebA.

Makes N CelebA-sized JPEGs (178 x 218, quality 90, face-like content, official layout with
label files), then in this one process runs
  baseline: one epoch of the seed's DataLoader (benchmarks/seed_style.py: Pillow full decode,
            resize, float32 tensor, batch 256) with --seed-workers worker processes, which
            the seed pays every epoch, and
  prepare:  facevae.data.prepare.prepare with --workers processes (DCT-scaled decoding with
            simplejpeg, bounded chunks), paid once,
both with the same number of processes (default: every core, at most 8), and prints for each
the wall-clock rate and the rate per CPU second (user + system of this process and its
reaped worker processes), the speed-ups by both, and peak memory (summed PSS of the process
tree, sampled every 0.2 s, and the largest RSS of any of its processes).

Wall-clock rates depend on what else runs on the machine; images per CPU second do much
less, so on a shared machine compare those.

    python benchmarks/prepare_throughput.py --count 20000
    python benchmarks/prepare_throughput.py --count 200000 --unique 5000 --skip-baseline
    python benchmarks/prepare_throughput.py --quick

Torch's intra-op threads are set to 1 (OMP_NUM_THREADS=1, before torch is imported): both
sides parallelise with processes, and the DataLoader's workers use one thread each anyway.

--unique K writes K distinct JPEGs and hard-links the rest to them (decoding work per image is
the same; generating 200,000 distinct pictures would take minutes), to show that memory does
not grow with the number of images.
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # before torch is imported; see the docstring

import resource  # noqa: E402
import shutil  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from concurrent.futures import ProcessPoolExecutor  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from _machine import machine_line  # noqa: E402  benchmarks/_machine.py (the script's folder is on sys.path)
from facevae.config import Preprocessing  # noqa: E402
from facevae.data.prepare import prepare  # noqa: E402
from facevae.testing.celeba import CELEBA_ATTRIBUTES, face_image, jpeg_bytes  # noqa: E402
from seed_style import SEED_BATCH_SIZE, default_workers, seed_loader  # noqa: E402


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
    header = f"{count}\n" + " ".join(CELEBA_ATTRIBUTES) + "\n"
    (root / "list_attr_celeba.txt").write_text(header + "\n".join(rows) + "\n")
    codes = rng.choice([0, 1, 2], size=count, p=[0.8, 0.1, 0.1])
    (root / "list_eval_partition.txt").write_text("".join(f"{i + 1:06d}.jpg {c}\n" for i, c in enumerate(codes)))


def seed_epoch(files: list[Path], size: int, workers: int) -> None:
    """One epoch of the seed's DataLoader over `files` (its workers exit at the end)."""
    for _ in seed_loader(files, size, SEED_BATCH_SIZE, workers, pin_memory=False):
        pass


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


def cpu_summary() -> str:
    """The CPU's model name and the SIMD flags that decide decode and resize speed (Linux)."""
    try:
        info = Path("/proc/cpuinfo").read_text()
    except OSError:
        return "CPU: unknown"
    fields = dict(line.split(":", 1) for line in info.splitlines() if ":" in line)
    fields = {key.strip(): value.strip() for key, value in fields.items()}
    present = fields.get("flags", "").split()
    flags = [f for f in ("sse4_2", "avx2", "avx512f", "avx512_bf16", "amx_tile") if f in present]
    return f"CPU: {fields.get('model name', 'unknown')} ({', '.join(flags)})"


def _cpu_seconds() -> float:
    """User + system CPU of this process and of its children that have been waited for."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


@dataclass
class Result:
    method: str
    processes: int
    wall_s: float
    cpu_s: float
    peak_pss: int
    peak_rss: int


def timed(method: str, processes: int, run) -> Result:
    """Run `run()` and measure its wall time, CPU time (this process and reaped children,
    less the memory sampler's) and peak memory."""
    with TreeMemory() as memory:
        started, cpu = time.perf_counter(), _cpu_seconds()
        run()
        seconds = time.perf_counter() - started
    return Result(method, processes, seconds, _cpu_seconds() - cpu - memory.cpu_seconds, memory.peak_pss,
                  memory.peak_rss)


def print_table(results: list[Result], count: int) -> None:
    print("| method | processes | wall s | images/s | speed-up (wall) | CPU s | images per CPU s "
          "| speed-up (per CPU s) | peak memory (PSS sum / max RSS) |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---|")
    base = results[0] if results[0].method.startswith("baseline") else None
    for result in results:
        rate, per_cpu = count / result.wall_s, count / result.cpu_s
        wall_speedup = f"{base.wall_s / result.wall_s:.2f}x" if base else "-"
        cpu_speedup = f"{base.cpu_s / result.cpu_s:.2f}x" if base else "-"
        memory = f"{result.peak_pss / 2**20:,.0f} MiB / {result.peak_rss / 2**20:,.0f} MiB"
        print(f"| {result.method} | {result.processes} | {result.wall_s:.2f} | {rate:,.0f} | {wall_speedup} | "
              f"{result.cpu_s:.2f} | {per_cpu:,.0f} | {cpu_speedup} | {memory} |")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=20_000, help="images (default 20,000)")
    parser.add_argument("--unique", type=int, default=0,
                        help="distinct JPEGs; the rest are hard links (default: all distinct)")
    parser.add_argument("--size", type=int, default=64, choices=(32, 64, 128, 256))
    parser.add_argument("--crop", default="squash", choices=("squash", "center"),
                        help="prepare's crop (the baseline always resizes the whole frame, as the seed did)")
    parser.add_argument("--workers", type=int, default=default_workers(),
                        help="prepare's processes (default: every core, at most 8)")
    parser.add_argument("--seed-workers", type=int, default=None,
                        help="the seed DataLoader's worker processes (default: --workers; 0 decodes in this process)")
    parser.add_argument("--skip-baseline", action="store_true")
    parser.add_argument("--quick", action="store_true", help="2,000 images: a check that runs in well under a minute")
    parser.add_argument("--dir", help="work folder (default: a temporary folder, deleted at the end)")
    args = parser.parse_args()
    args.count = 2_000 if args.quick else args.count
    args.unique = min(args.unique or args.count, args.count)
    args.seed_workers = args.workers if args.seed_workers is None else args.seed_workers
    return args


def main() -> None:
    args = parse_args()
    cores = len(os.sched_getaffinity(0))
    work = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="facevae-prepare-bench-"))
    try:
        started = time.perf_counter()
        make_dataset(work / "celeba", args.count, args.unique, cores)
        print(f"made {args.count:,} JPEGs ({args.unique:,} distinct) in {time.perf_counter() - started:.1f} s; "
              f"{cores} cores, load average {os.getloadavg()[0]:.2f} before timing", flush=True)
        print(cpu_summary(), flush=True)
        files = sorted((work / "celeba" / "img_align_celeba").iterdir())
        results = []
        if not args.skip_baseline:
            results.append(timed(f"baseline: the seed's DataLoader, {args.seed_workers} workers, Pillow full decode "
                                 f"+ resize, one epoch", max(1, args.seed_workers),
                                 lambda: seed_epoch(files, args.size, args.seed_workers)))
        workers = args.workers or cores  # prepare's 0 means every core
        results.append(timed(f"prepare: {workers} workers, DCT-scaled decode (simplejpeg)", workers,
                             lambda: prepare(work / "celeba", out=work / "cache",
                                             preprocessing=Preprocessing(args.size, args.crop),
                                             workers=args.workers, progress=False)))
        started = time.perf_counter()
        prepare(work / "celeba", out=work / "cache", preprocessing=Preprocessing(args.size, args.crop), progress=False)
        reuse = time.perf_counter() - started

        print(f"\n{args.count:,} images of 178x218 -> {args.size}x{args.size} ({args.crop}), load average "
              f"{os.getloadavg()[0]:.2f} after\n")
        print(machine_line())
        print_table(results, args.count)
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
