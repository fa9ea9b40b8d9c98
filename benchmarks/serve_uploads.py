"""Server memory under concurrent large uploads: peak RSS for one photo per request and for
16 photos per request, with the pixel budget (the default) against the same server without it
(the behaviour before), same run.

    python benchmarks/serve_uploads.py [--requests 16] [--photos 16] [--side 4990] [--timeout-s 30] [--model BUNDLE]

The upload is the hardening probe's: a ~97 KB PNG that declares side x side RGBA pixels (25 MP
at 4990, under the server's 25-megapixel limit), which decodes to ~100 MB at full size. For each
scenario a server process (the app on uvicorn, as `facevae serve` runs it) is started on
127.0.0.1, warmed up with one small upload, then sent `--requests` concurrent POST
/v1/reconstruct requests of 1 or `--photos` uploads each (whole_image=true: no face to find, so
every job runs to its end). It prints the server's resident memory
before (idle after warm-up), at its peak (the kernel's high-water mark, VmHWM) and 1 s after
the requests, the answers' status codes and the wall time. Without --model an untrained 64-pixel
model with an encoder is used: the weights do not change how pictures are decoded.
Linux only (reads /proc/PID/status).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from _machine import machine_line  # benchmarks/_machine.py (this folder is on sys.path when the script runs)
from facevae.testing.uploads import blank_png
from serve_load import free_port, wait_ready

NO_BUDGET = {"max_decoded_pixels": 10**12}  # the behaviour before: every decoded photo held until its job ends
SCENARIOS = {  # label -> (ServerSettings overrides, photos per request: 1 or --photos)
    "1 photo each, pixel budget (default)": ({}, False),
    "N photos each, no pixel budget (before)": (NO_BUDGET, True),
    "N photos each, pixel budget (default)": ({}, True),
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


def measure(model: Path, overrides: dict, upload: bytes, count: int, photos: int) -> dict:
    port = free_port()
    settings = {"model": str(model), "inference_threads": 1, "queue_size": 64, **overrides}
    os.environ["FACEVAE_SERVE_SETTINGS"] = json.dumps(settings)
    process = subprocess.Popen([sys.executable, "-m", "uvicorn", "--factory", "--port", str(port), "--log-level",
                                "warning", "facevae.app.server.app:app_from_environment"])
    url = f"http://127.0.0.1:{port}"
    small = blank_png(64, 64)

    def send(data: bytes, photos: int = 1) -> int:
        files = [("images", (f"photo{i}.png", data, "image/png")) for i in range(photos)]
        return httpx.post(f"{url}/v1/reconstruct", data={"whole_image": "true"}, files=files,
                          timeout=overrides.get("timeout_s", 30) + 60).status_code

    try:
        wait_ready(port, process)
        send(small)
        before = memory_mb(process.pid)["VmRSS"]
        started = time.perf_counter()
        with ThreadPoolExecutor(count) as pool:
            statuses = list(pool.map(send, [upload] * count, [photos] * count))
        seconds = time.perf_counter() - started
        time.sleep(1.0)
        after = memory_mb(process.pid)
    finally:
        process.terminate()
        process.wait(60)
    return {"before": before, "peak": after["VmHWM"], "after": after["VmRSS"], "seconds": seconds,
            "statuses": {code: statuses.count(code) for code in sorted(set(statuses))}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--requests", type=int, default=16, help="concurrent requests")
    parser.add_argument("--photos", type=int, default=16, help="uploads per request in the multi-photo scenarios")
    parser.add_argument("--side", type=int, default=4990, help="declared width and height of each upload")
    parser.add_argument("--model", default=None, help="a bundle folder with an encoder (default: untrained)")
    parser.add_argument("--timeout-s", type=float, default=30.0,
                        help="the server's time limit (default: 30, the server's; on a slow machine every "
                             "16-photo request may reach it before its photos are decoded: raise it to see them held)")
    args = parser.parse_args()
    upload = blank_png(args.side, args.side)
    with tempfile.TemporaryDirectory() as folder:
        model = Path(args.model) if args.model else untrained_bundle(Path(folder))
        results = {label.replace("N photos", f"{args.photos} photos"):
                   measure(model, {"timeout_s": args.timeout_s, **overrides}, upload, args.requests,
                           args.photos if many else 1)
                   for label, (overrides, many) in SCENARIOS.items()}
    print(f"\n{args.requests} concurrent /v1/reconstruct requests; each upload a {len(upload) / 1e3:.0f} KB PNG "
          f"declaring {args.side} x {args.side} RGBA ({args.side ** 2 / 1e6:.1f} MP); zlib {zlib.ZLIB_VERSION}")
    print(machine_line() + "\n")
    print(f"{'server':46} {'RSS before':>11} {'peak RSS':>10} {'RSS after':>10} {'wall':>7}  answers")
    for label, r in results.items():
        print(f"{label:46} {r['before']:8.0f} MB {r['peak']:7.0f} MB {r['after']:7.0f} MB {r['seconds']:6.1f}s  "
              f"{r['statuses']}")


if __name__ == "__main__":
    main()
