"""facevae.app.server.batching: gathering, chunking, backpressure, deadlines, shutdown; and the
fixed-shape property that makes batched and unbatched bytes equal."""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch

from facevae.app.server.batching import BatcherClosedError, DeadlineExceededError, MicroBatcher, QueueFullError
from facevae.imaging import to_uint8
from facevae.inference.pipeline import FacePipeline
from facevae.model.bundle import load_bundle


class RecordingDecoder:
    """Stands in for the model: face i is filled with the first latent value of row i."""

    def __init__(self, gate: threading.Event | None = None) -> None:
        self.calls: list[int] = []  # rows per call
        self.gate = gate

    def __call__(self, latents: torch.Tensor) -> np.ndarray:
        if self.gate is not None:
            assert self.gate.wait(10), "test gate never opened"
        self.calls.append(len(latents))
        values = latents[:, 0].numpy().astype(np.uint8)
        return np.broadcast_to(values[:, None, None, None], (len(latents), 2, 2, 3)).copy()


def codes(*values: int) -> torch.Tensor:
    out = torch.zeros(len(values), 4)
    out[:, 0] = torch.tensor(values, dtype=torch.float32)
    return out


async def gather_decodes(batcher: MicroBatcher, requests: list[torch.Tensor]):
    return await asyncio.gather(*(batcher.decode(latents) for latents in requests))


def test_concurrent_requests_share_one_batch_and_each_gets_its_own_rows():
    decoder = RecordingDecoder()
    batcher = MicroBatcher(decoder, max_batch=16, chunk=1, wait_ms=200).start()
    try:
        results = asyncio.run(gather_decodes(batcher, [codes(1), codes(2, 3), codes(4), codes(5, 6, 7)]))
    finally:
        batcher.close()
    assert batcher.batch_sizes == {7: 1}  # one decoder batch of 7 rows
    assert [r.images[:, 0, 0, 0].tolist() for r in results] == [[1], [2, 3], [4], [5, 6, 7]]
    assert all(r.batch_rows == 7 and r.batch_requests == 4 for r in results)


def test_batches_respect_max_batch_and_the_decoder_only_sees_whole_chunks():
    decoder = RecordingDecoder()
    batcher = MicroBatcher(decoder, max_batch=8, chunk=4, wait_ms=100).start()
    try:
        results = asyncio.run(gather_decodes(batcher, [codes(i, i, i) for i in range(1, 7)]))  # 6 x 3 rows
    finally:
        batcher.close()
    assert max(batcher.batch_sizes) <= 8 and sum(k * v for k, v in batcher.batch_sizes.items()) == 18
    assert set(decoder.calls) == {4}  # padded to whole chunks, never another shape
    assert [r.images[:, 0, 0, 0].tolist() for r in results] == [[i] * 3 for i in range(1, 7)]


def test_without_batching_every_request_is_decoded_alone():
    decoder = RecordingDecoder()
    batcher = MicroBatcher(decoder, chunk=1, wait_ms=200, batching=False).start()
    try:
        results = asyncio.run(gather_decodes(batcher, [codes(1), codes(2), codes(3)]))
    finally:
        batcher.close()
    assert batcher.batch_sizes == {1: 3} and all(r.batch_requests == 1 for r in results)


def test_several_workers_split_a_backlog_instead_of_one_taking_it_all():
    gate = threading.Event()
    decoder = RecordingDecoder(gate)
    batcher = MicroBatcher(decoder, workers=2, chunk=1, max_batch=16, wait_ms=0).start()
    try:
        busy = [batcher.submit(codes(1)), batcher.submit(codes(2))]  # one for each worker
        deadline = time.monotonic() + 5
        while batcher.pending and time.monotonic() < deadline:
            time.sleep(0.01)
        backlog = [batcher.submit(codes(i)) for i in range(3, 13)]  # 10 rows queue up meanwhile
        gate.set()
        assert [w.future.result(5).images[0, 0, 0, 0] for w in busy + backlog] == list(range(1, 13))
    finally:
        gate.set()
        batcher.close()
    assert decoder.calls.count(1) == 12  # chunk 1
    assert max(batcher.batch_sizes) <= 5  # the first free worker took half of the 10, not all


def test_a_full_queue_refuses_with_a_retry_after():
    gate = threading.Event()
    batcher = MicroBatcher(RecordingDecoder(gate), queue_size=2, wait_ms=0).start()
    try:
        running = batcher.submit(codes(1))
        deadline = time.monotonic() + 5
        while batcher.pending and time.monotonic() < deadline:  # the worker takes it and blocks
            time.sleep(0.01)
        queued = [batcher.submit(codes(2)), batcher.submit(codes(3))]
        with pytest.raises(QueueFullError) as refused:
            batcher.submit(codes(4))
        assert refused.value.retry_after >= 1
        gate.set()
        assert [w.future.result(5).images[0, 0, 0, 0] for w in [running, *queued]] == [1, 2, 3]
    finally:
        gate.set()
        batcher.close()


def test_work_past_its_deadline_is_dropped_without_decoding():
    gate = threading.Event()
    decoder = RecordingDecoder(gate)
    batcher = MicroBatcher(decoder, timeout_s=0.2, wait_ms=0).start()

    async def scenario():
        first = asyncio.create_task(batcher.decode(codes(1)))  # blocks the only worker
        await asyncio.sleep(0.05)
        with pytest.raises(DeadlineExceededError):
            await batcher.decode(codes(2))  # waits in the queue past its deadline
        with pytest.raises(DeadlineExceededError):
            await first
        gate.set()

    try:
        asyncio.run(scenario())
    finally:
        gate.set()
        batcher.close()
    assert decoder.calls == [1]  # the queued request was never decoded


def test_close_finishes_queued_work_then_refuses_new_work():
    gate = threading.Event()
    batcher = MicroBatcher(RecordingDecoder(gate), wait_ms=0).start()
    works = [batcher.submit(codes(i)) for i in (1, 2, 3)]
    closer = threading.Thread(target=batcher.close)
    closer.start()
    time.sleep(0.05)
    with pytest.raises(BatcherClosedError):
        batcher.submit(codes(4))
    gate.set()
    closer.join(5)
    assert [w.future.result(0).images[0, 0, 0, 0] for w in works] == [1, 2, 3]


def test_jobs_run_on_the_inference_thread_and_their_errors_reach_the_caller():
    batcher = MicroBatcher(RecordingDecoder()).start()

    def failing() -> None:
        raise ValueError("bad photo")

    async def scenario():
        name = await batcher.run(lambda: threading.current_thread().name)
        with pytest.raises(ValueError, match="bad photo"):
            await batcher.run(failing)
        return name

    try:
        assert asyncio.run(scenario()).startswith("facevae-inference")
    finally:
        batcher.close()


def test_a_decoder_error_fails_every_request_of_its_batch():
    def broken(latents: torch.Tensor) -> np.ndarray:
        raise RuntimeError("out of memory")

    batcher = MicroBatcher(broken, wait_ms=100).start()

    async def scenario():
        return await asyncio.gather(batcher.decode(codes(1)), batcher.decode(codes(2)), return_exceptions=True)

    try:
        results = asyncio.run(scenario())
    finally:
        batcher.close()
    assert all(isinstance(r, RuntimeError) for r in results)


# --- the property the server's byte-identity rests on ----------------------------------

def _fixed_shape_invariance(pipe: FacePipeline, chunk: int) -> None:
    generator = torch.Generator().manual_seed(0)
    for _ in range(3):
        target = torch.randn(1, pipe.latent_dim, generator=generator)
        outputs = []
        for position in range(chunk):
            batch = torch.randn(chunk, pipe.latent_dim, generator=generator) * 2
            batch[position] = target[0]
            outputs.append(pipe.decode_tensor(batch)[position])
        for output in outputs[1:]:
            assert torch.equal(output, outputs[0]), "a row's pixels depend on its neighbours or position"


@pytest.mark.parametrize("chunk", [1, 4, 8])
def test_at_a_fixed_chunk_a_row_decodes_the_same_wherever_it_sits(tiny_bundle: Path, chunk: int):
    _fixed_shape_invariance(FacePipeline(load_bundle(tiny_bundle)), chunk)


@pytest.mark.slow
def test_fixed_chunk_invariance_on_the_real_decoder(pretrained_bundle: Path):
    _fixed_shape_invariance(FacePipeline(load_bundle(pretrained_bundle)), 4)


def test_batched_and_unbatched_decoding_give_identical_faces(tiny_bundle: Path):
    pipe = FacePipeline(load_bundle(tiny_bundle))
    requests = [pipe.sample_latents(n, seed) for n, seed in [(1, 0), (3, 1), (2, 2), (1, 3), (5, 4)]]

    def decode(latents: torch.Tensor) -> np.ndarray:
        return to_uint8(pipe.decode_tensor(latents))

    outputs = {}
    for batching in (True, False):
        batcher = MicroBatcher(decode, chunk=4, max_batch=16, wait_ms=100, batching=batching).start()
        try:
            outputs[batching] = asyncio.run(gather_decodes(batcher, requests))
        finally:
            batcher.close()
    assert max(r.batch_rows for r in outputs[True]) > 4  # really batched together
    for batched, alone in zip(outputs[True], outputs[False]):
        assert np.array_equal(batched.images, alone.images)
