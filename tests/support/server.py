"""Pipelines that hold or slow decoding for the REST API tests, and a test server launcher.

`python -m support.server BUNDLE PORT DELAY_S QUEUE_SIZE [STEP_DELAY_S TIMEOUT_S THREADS]`
runs the real app on uvicorn in this process, as `facevae serve` runs it, with every decode
slowed by DELAY_S (and every refinement step by STEP_DELAY_S) and one inference thread (or
THREADS): a real server whose queue can be filled and whose requests are still in flight when
it is sent SIGTERM.
"""

from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import torch

from facevae.inference.pipeline import FacePipeline
from facevae.model.bundle import load_bundle

TESTS_DIR = Path(__file__).resolve().parents[1]  # on the servers' PYTHONPATH, so `-m support.server` runs
SLOW_SERVER = ["-m", "support.server"]  # + BUNDLE PORT DELAY_S QUEUE_SIZE, for start_server


class GatedPipeline(FacePipeline):
    """While `gate` is cleared, decoder calls wait for it: holds work on the inference thread.
    The gate starts open (the server's warm-up call passes); `close()` it, then `entered` is
    set once a call waits."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.gate, self.entered = threading.Event(), threading.Event()
        self.gate.set()

    def close(self) -> None:
        self.entered.clear()
        self.gate.clear()

    def decode_tensor(self, latents: torch.Tensor) -> torch.Tensor:
        if not self.gate.is_set():
            self.entered.set()
        assert self.gate.wait(20), "test gate never opened"
        return super().decode_tensor(latents)


class SlowPipeline(FacePipeline):
    delay_s = 0.0

    def decode_tensor(self, latents: torch.Tensor) -> torch.Tensor:
        time.sleep(self.delay_s)
        return super().decode_tensor(latents)


class SlowModule(torch.nn.Module):
    """A module that sleeps before each call: slows refinement, which calls the decoder directly."""

    def __init__(self, inner: torch.nn.Module, delay_s: float) -> None:
        super().__init__()
        self.inner, self.delay_s = inner, delay_s

    def forward(self, latents: torch.Tensor) -> torch.Tensor:
        time.sleep(self.delay_s)
        return self.inner(latents)


def wait_ready(url: str, process: subprocess.Popen, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            output = process.stdout.read() if process.stdout else ""
            raise AssertionError(f"the server exited with {process.returncode}:\n{output}")
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise AssertionError("the server did not become ready")


def start_server(command: list[str], port: int) -> tuple[subprocess.Popen, str]:
    """`python COMMAND...` (serving on 127.0.0.1:PORT) once it answers /readyz, and its URL."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(TESTS_DIR), os.environ.get("PYTHONPATH")]))}
    process = subprocess.Popen([sys.executable, *command], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               text=True, env=env)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_ready(url, process)
    except BaseException:
        stop_server(process)
        raise
    return process, url


def stop_server(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


if __name__ == "__main__":
    import uvicorn

    from facevae.app.server.app import create_app
    from facevae.app.server.connections import ConnectionLimits, GuardedConnection

    bundle, port, delay, queue_size = sys.argv[1:5]
    step_delay, timeout, threads = (sys.argv[5:8] + ["0", "30", "1"][len(sys.argv[5:8]):])
    pipeline = SlowPipeline(load_bundle(bundle))
    pipeline.delay_s = float(delay)
    if float(step_delay):  # refinement is slowed; its first run (torch imports the optimiser) is done now
        pipeline.encode(torch.zeros(1, 3, pipeline.image_size, pipeline.image_size), refine_steps=1)
        pipeline.decoder = SlowModule(pipeline.decoder, float(step_delay))
    app = create_app(pipeline, queue_size=int(queue_size), inference_threads=int(threads), batch_wait_ms=0,
                     timeout_s=float(timeout))
    ConnectionLimits(float(timeout)).to_environment()
    uvicorn.run(app, host="127.0.0.1", port=int(port), log_level="warning", http=GuardedConnection, ws="none",
                timeout_graceful_shutdown=int(float(timeout)) + 5)
