"""The server's settings: how it batches, queues and limits work (the `facevae serve` options)."""

from __future__ import annotations

from dataclasses import dataclass

from .backends import Backend

ENV_SETTINGS = "FACEVAE_SERVE_SETTINGS"  # JSON: {"model": ..., **ServerSettings}, for --workers > 1


@dataclass(frozen=True)
class ServerSettings:
    """How the server batches, queues and limits work (the `facevae serve` options)."""

    backend: Backend = "torch"
    device: str = "auto"  # facevae.runtime.pick_runtime's rule: a GPU if there is one, else the CPU
    precision: str = "auto"  # the pipeline's: auto (bf16 on CPUs that have it), fp32, bf16; onnx: fp32
    max_batch: int = 16  # codes decoded together at most
    chunk: int = 1  # rows per decoder call (same bytes at any batching); CPU: 1, GPU: max_batch
    batch_wait_ms: float = 3.0  # how long a lone request waits for company
    batching: bool = True  # False: every request decoded on its own (the benchmark's baseline)
    queue_size: int = 64  # waiting requests before 503
    timeout_s: float = 30.0  # per request, upload decoding and queueing included, before 504
    inference_threads: int = 1  # decoder calls running at once
    compute_threads: int | None = None  # threads inside each call (torch, ONNX Runtime); None: library default
    max_upload_bytes: int = 10 * 1024 * 1024  # per photo
    max_upload_pixels: int = 25_000_000  # per photo, read from the header before decoding
    max_request_bytes: int = 32 * 1024 * 1024  # a whole multipart request
    max_json_bytes: int = 2 * 1024 * 1024  # a JSON request (64 latents of 4096 numbers fit)
    decoding_uploads: int = 2  # full-size photos being decoded at once (each up to max_upload_pixels x 4 bytes)
    # photos with a longer side of twice this or more are shrunk by an integer factor as they are
    # decoded (the face finder searches 800 pixels, the model sees 64); None: decoded at full size
    upload_max_side: int | None = 1024
    # decoded photo pixels held by all requests at once (64 MP: about 190 MB as RGB); a request
    # waits for room, and one always fits when no other holds any
    max_decoded_pixels: int = 64_000_000
    # refinement work (photos x (steps + 1)) queued or running at once; one request always fits
    refine_budget: int = 16 * 501
