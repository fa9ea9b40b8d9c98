"""Load test of `facevae serve`: requests/s and latency, micro-batching on and off, same run.

    python benchmarks/serve_load.py [--model NAME_OR_PATH] [--clients 16] [--duration 10]
                                    [--backends torch,onnx] [--n 1] [--quick]

For each backend and for batching on and off, it starts `facevae serve` on 127.0.0.1 at a
free port, waits for /readyz, warms up, then runs `--clients` concurrent clients for
`--duration` seconds, each sending POST /v1/generate {"n": N, "seed": S} back to back over
one keep-alive connection (a closed loop: at most `--clients` requests in flight). It
prints requests/s, p50/p99 latency, errors and the mean number of faces per decoder batch
(from X-Batch-Rows), and checks that every seed both modes drew gave the same PNG bytes.

The client runs on the same machine as the server, so it is kept lean: a raw HTTP/1.1
client on asyncio streams in one process (no httpx, no threads), a small fraction of a core
at these rates. Its CPU time is printed so you can see what it took from the server.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

from _machine import machine_line  # benchmarks/_machine.py (the script's folder is on sys.path)


@dataclass
class Run:
    label: str
    latencies: list[float] = field(default_factory=list)
    errors: dict[str, int] = field(default_factory=dict)
    batch_rows: list[int] = field(default_factory=list)
    digests: dict[int, str] = field(default_factory=dict)  # seed -> sha256 of the PNG
    seconds: float = 0.0
    client_cpu: float = 0.0
    answered: int = 0  # 200s, warm-up included
    server_cpu: float | None = None  # server process CPU seconds over the whole drive

    @property
    def server_ms_per_request(self) -> float:
        return float("nan") if self.server_cpu is None else self.server_cpu * 1000 / max(1, self.answered)

    def error(self, kind: str) -> None:
        self.errors[kind] = self.errors.get(kind, 0) + 1


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def post(reader: asyncio.StreamReader, writer: asyncio.StreamWriter, port: int, path: str,
               payload: bytes) -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 request on an open keep-alive connection: (status, headers, body)."""
    writer.write(b"POST %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nContent-Type: application/json\r\n"
                 b"Content-Length: %d\r\n\r\n%s" % (path.encode(), port, len(payload), payload))
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, v in (line.split(":", 1) for line in lines[1:] if ":" in line)}
    body = await reader.readexactly(int(headers.get("content-length", 0)))
    return status, headers, body


async def drive(port: int, clients: int, duration: float, n: int, run: Run, warmup: float) -> None:
    next_seed = 0

    async def client() -> None:
        nonlocal next_seed
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while time.perf_counter() < stop:
                seed, next_seed = next_seed, next_seed + 1
                payload = json.dumps({"n": n, "seed": seed}).encode()
                started = time.perf_counter()
                try:
                    status, headers, body = await post(reader, writer, port, "/v1/generate", payload)
                except (OSError, asyncio.IncompleteReadError) as error:
                    run.error(type(error).__name__)
                    writer.close()
                    reader, writer = await asyncio.open_connection("127.0.0.1", port)
                    continue
                if status == 200:
                    run.answered += 1
                if started < measure_from:
                    continue  # warm-up
                if status != 200:
                    run.error(str(status))
                    continue
                run.latencies.append(time.perf_counter() - started)
                run.batch_rows.append(int(headers.get("x-batch-rows", 0)))
                run.digests[seed] = hashlib.sha256(body).hexdigest()
        finally:
            writer.close()

    measure_from = time.perf_counter() + warmup
    stop = measure_from + duration
    cpu = time.process_time()
    await asyncio.gather(*(client() for _ in range(clients)))
    run.seconds, run.client_cpu = duration, (time.process_time() - cpu) / (warmup + duration)  # share of a core


def process_cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of a process (Linux /proc); None elsewhere."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime, stime


def wait_ready(port: int, process: subprocess.Popen, timeout: float = 180.0) -> None:
    import urllib.request

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"the server exited with code {process.returncode}; see its messages above")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=2) as answer:
                if answer.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    raise SystemExit("the server did not become ready in time")


def serve_and_drive(model: str, backend: str, batching: bool, args: argparse.Namespace) -> Run:
    port = free_port()
    command = [sys.executable, "-m", "facevae", "serve", "--model", model, "--port", str(port),
               "--backend", backend, "--log-level", "warning", *args.serve_args]
    if not batching:
        command.append("--no-batching")
    process = subprocess.Popen(command)
    try:
        wait_ready(port, process)
        run = Run(f"{backend}, batching {'on' if batching else 'off'}")
        cpu_before = process_cpu_seconds(process.pid)
        asyncio.run(drive(port, args.clients, args.duration, args.n, run, warmup=args.warmup))
        cpu_after = process_cpu_seconds(process.pid)
        if cpu_before is not None and cpu_after is not None:
            run.server_cpu = cpu_after - cpu_before
        return run
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default=os.environ.get("FACEVAE_BENCH_MODEL", "celeba64-original"),
                        help="registry name or bundle path (default: $FACEVAE_BENCH_MODEL or celeba64-original)")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--duration", type=float, default=10.0, help="measured seconds per configuration")
    parser.add_argument("--warmup", type=float, default=2.0, help="unmeasured seconds of load first")
    parser.add_argument("--n", type=int, default=1, help="faces per request")
    parser.add_argument("--backends", default="torch,onnx", help="comma-separated: torch, onnx")
    parser.add_argument("--quick", action="store_true", help="3 s per configuration, 1 s warm-up")
    parser.add_argument("serve_args", nargs="*", help="extra `facevae serve` options, after --")
    args = parser.parse_args()
    if args.quick:
        args.duration, args.warmup = 3.0, 1.0
    model = str(Path(args.model).resolve()) if Path(args.model).exists() else args.model
    runs = []
    for backend in args.backends.split(","):
        for batching in (True, False):
            runs.append(serve_and_drive(model, backend.strip(), batching, args))

    print(f"\nPOST /v1/generate n={args.n}, {args.clients} concurrent clients, {args.duration:g} s each, "
          f"{os.cpu_count()} CPU cores, model {args.model}")
    print(machine_line())
    print(f"{'configuration':<24} {'requests':>8} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7} "
          f"{'faces/batch':>11} {'server CPU ms/req':>17} {'client CPU':>10}")
    for run in runs:
        rate = len(run.latencies) / run.seconds
        batch = sum(run.batch_rows) / max(1, len(run.batch_rows))
        errors = sum(run.errors.values())
        print(f"{run.label:<24} {len(run.latencies):>8} {rate:>8.1f} {percentile(run.latencies, 0.5) * 1000:>8.1f} "
              f"{percentile(run.latencies, 0.99) * 1000:>8.1f} {errors:>7} {batch:>11.1f} "
              f"{run.server_ms_per_request:>17.1f} {run.client_cpu:>9.0%}")
        if run.errors:
            print(f"  errors: {run.errors}")
    for index in range(0, len(runs), 2):
        on, off = runs[index], runs[index + 1]
        shared = set(on.digests) & set(off.digests)
        same = sum(on.digests[s] == off.digests[s] for s in shared)
        print(f"{on.label.split(',')[0]}: {same} of {len(shared)} seeds drawn in both modes gave identical PNG bytes")
    print(f"machine load average during the run: {os.getloadavg()[0]:.1f} (other processes take CPU from the server; "
          f"server CPU ms/req does not depend on them: {os.cpu_count()} cores / that = the idle-machine ceiling)")


if __name__ == "__main__":
    main()
