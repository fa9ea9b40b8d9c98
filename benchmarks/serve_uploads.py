"""Server memory under concurrent large uploads: peak RSS with bounded upload decoding against
the same server decoding every upload at full size at once (the behaviour before), same run.

    python benchmarks/serve_uploads.py [--uploads 16] [--side 4990] [--model BUNDLE]

The upload is the hardening probe's: a ~97 KB PNG that declares side x side RGBA pixels (25 MP
at 4990, under the server's 25-megapixel limit), which decodes to ~100 MB. For each
configuration a server process (the app on uvicorn, as `facevae serve` runs it) is started on
127.0.0.1, warmed up with one small upload, then sent `--uploads` concurrent POST
/v1/reconstruct requests, one upload each. It prints the server's resident memory before
(idle after warm-up), at its peak (the kernel's high-water mark, VmHWM) and after the
requests, the answers' status codes and the wall time. Without --model an untrained 64-pixel
model with an encoder is used: the weights do not change how pictures are decoded.
Linux only (reads /proc/PID/status).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from facevae.testing.uploads import blank_png
from serve_load import free_port, wait_ready  # this folder is on sys.path when the script runs

CONFIGURATIONS = {  # label -> ServerSettings overrides
    "unbounded (full-size decoding, all at once)": {"upload_max_side": None, "decoding_uploads": 64},
    "bounded (shrink on decoding, 2 at once)": {},
}


def memory_mb(pid: int) -> dict[str, float]:
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            fields[name] = int(value.split()[0]) / 1024
    return fields


def untrained_bundle(folder: Path) -> Path:
    import torch

    from facevae.config import ModelConfig
    from facevae.model.bundle import FaceModel, Preprocessing, save_bundle
    from facevae.model.vae import Decoder, Encoder

    torch.manual_seed(0)
    config = ModelConfig()
    return save_bundle(FaceModel(config, Decoder(config), Encoder(config), {}, {},
                                 preprocessing=Preprocessing(image_size=config.image_size),
                                 provenance={"source": "benchmarks/serve_uploads.py: untrained"}), folder / "bundle")


def measure(model: Path, overrides: dict, upload: bytes, count: int) -> dict:
    port = free_port()
    settings = {"model": str(model), "inference_threads": 1, "queue_size": 64, **overrides}
    os.environ["FACEVAE_SERVE_SETTINGS"] = json.dumps(settings)
    process = subprocess.Popen([sys.executable, "-m", "uvicorn", "--factory", "--port", str(port), "--log-level",
                                "warning", "facevae.app.server.app:app_from_environment"])
    url = f"http://127.0.0.1:{port}"
    small = blank_png(64, 64)

    def send(data: bytes) -> int:
        return httpx.post(f"{url}/v1/reconstruct", files=[("images", ("photo.png", data, "image/png"))],
                          timeout=300).status_code

    try:
        wait_ready(port, process)
        send(small)
        before = memory_mb(process.pid)["VmRSS"]
        started = time.perf_counter()
        with ThreadPoolExecutor(count) as pool:
            statuses = list(pool.map(send, [upload] * count))
        seconds = time.perf_counter() - started
        time.sleep(1.0)
        after = memory_mb(process.pid)
    finally:
        process.terminate()
        process.wait(60)
    return {"before": before, "peak": after["VmHWM"], "after": after["VmRSS"], "seconds": seconds,
            "statuses": {code: statuses.count(code) for code in sorted(set(statuses))}}


def cpu_flags() -> str:
    try:
        flags = next(line for line in Path("/proc/cpuinfo").read_text().splitlines() if line.startswith("flags"))
    except (OSError, StopIteration):
        return "unknown"
    wanted = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")
    return " ".join(flag for flag in wanted if f" {flag}" in flags) or "none of avx2/avx512/amx"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--uploads", type=int, default=16, help="concurrent requests, one upload each")
    parser.add_argument("--side", type=int, default=4990, help="declared width and height of each upload")
    parser.add_argument("--model", default=None, help="a bundle folder with an encoder (default: untrained)")
    args = parser.parse_args()
    upload = blank_png(args.side, args.side)
    with tempfile.TemporaryDirectory() as folder:
        model = Path(args.model) if args.model else untrained_bundle(Path(folder))
        results = {label: measure(model, overrides, upload, args.uploads)
                   for label, overrides in CONFIGURATIONS.items()}
    print(f"\n{args.uploads} concurrent uploads of a {len(upload) / 1e3:.0f} KB PNG declaring "
          f"{args.side} x {args.side} RGBA ({args.side ** 2 / 1e6:.1f} MP); "
          f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, flags: {cpu_flags()}; "
          f"zlib {zlib.ZLIB_VERSION}\n")
    print(f"{'server':46} {'RSS before':>11} {'peak RSS':>10} {'RSS after':>10} {'wall':>7}  answers")
    for label, r in results.items():
        print(f"{label:46} {r['before']:8.0f} MB {r['peak']:7.0f} MB {r['after']:7.0f} MB {r['seconds']:6.1f}s  "
              f"{r['statuses']}")


if __name__ == "__main__":
    main()
