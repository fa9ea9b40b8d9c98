"""Face detection from several threads: one YuNet detector per thread (what facevae does) against
one detector shared behind a lock (the other thread-safe choice), same run.

    python benchmarks/face_threads.py [--photo ../shared/photos/obama.jpg] [--threads 16] [--calls 64]

Each configuration runs `--calls` calls of facevae.inference.face.detect_landmarks on the same
photo from `--threads` threads at once (the server's inference threads do this for concurrent
photo requests), after one warm-up call per thread, and prints the wall time, the calls per
second and how many calls found other landmarks than a call made alone (must be 0).
Needs the YuNet file (FACEVAE_DETECTOR, default ../shared/face-detector).
"""

from __future__ import annotations

import argparse
import os
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from PIL import Image

from _machine import machine_line  # benchmarks/_machine.py (this folder is on sys.path when the script runs)
from facevae.inference import face

SHARED = Path(__file__).resolve().parents[2] / "shared"
DETECTOR = os.environ.get("FACEVAE_DETECTOR") or str(SHARED / "face-detector" / "face_detection_yunet_2026may.onnx")


def locked_detection():
    """detect_landmarks serialised by one lock: one detector busy at a time."""
    lock = threading.Lock()

    def detect(image: Image.Image, path: str):
        with lock:
            return face.detect_landmarks(image, path)

    return detect


def measure(detect, photo: Image.Image, threads: int, calls: int) -> dict:
    expected = repr(face.detect_landmarks(photo, DETECTOR))
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(lambda _: detect(photo, DETECTOR), range(threads)))  # warm-up: each thread's detector
        started = time.perf_counter()
        found = list(pool.map(lambda _: repr(detect(photo, DETECTOR)), range(calls)))
        seconds = time.perf_counter() - started
    return {"seconds": seconds, "per_second": calls / seconds, "different": sum(f != expected for f in found)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--photo", default=str(SHARED / "photos" / "obama.jpg"))
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument("--calls", type=int, default=64)
    args = parser.parse_args()
    photo = Image.open(args.photo).convert("RGB")
    results = {"one detector per thread (facevae)": measure(face.detect_landmarks, photo, args.threads, args.calls),
               "one at a time, behind a lock": measure(locked_detection(), photo, args.threads, args.calls)}
    print(f"\n{args.calls} detections of {Path(args.photo).name} ({photo.width} x {photo.height}) on {args.threads} "
          f"threads\n{machine_line()}\n")
    print(f"{'configuration':42} {'wall':>7} {'calls/s':>8}  different")
    for label, r in results.items():
        print(f"{label:42} {r['seconds']:6.2f}s {r['per_second']:8.1f}  {r['different']}")


if __name__ == "__main__":
    main()
