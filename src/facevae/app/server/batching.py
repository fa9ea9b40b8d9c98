"""Dynamic micro-batching: concurrent decode requests share decoder calls, off the event loop.

A request hands in its latent codes (n x D) and awaits its faces (n x H x W x 3 uint8).
`workers` inference threads each take the oldest waiting request, wait at most `wait_ms`
(counted from that request's arrival, so work that queued behind a busy decoder does not
wait again) for more, up to `max_batch` codes (with several workers, up to its share of
the backlog), decode them together and give every request its own rows.

Same seed, same bytes, batched or not: the decoder is only ever called on exactly `chunk`
rows (the last chunk padded with zeros). float32 convolutions and matrix products may add
in a different order for a different batch size (measured here: up to 6e-8 between batch 1
and batch 8, enough to move about one 64 x 64 face in three by one grey level), but with
the shape fixed a row's result depends neither on its position nor on its neighbours
(tests/app/test_batching.py checks both on the machine it runs on). On a CPU a face costs
the same at any batch size, so chunk = 1 wastes nothing; on a GPU chunk = max_batch lets a
full batch run as one call.

Backpressure: at most `queue_size` requests wait; one more gets QueueFullError (the server
answers 503 with a Retry-After estimated from the measured service times). /readyz says
ready only while the expected wait (queued and running work at those service times, shared by
the threads) fits the time limit. Each request has a
deadline: one still waiting when it passes is dropped without being decoded
(DeadlineExceededError, a 504).

Other inference work (edit, reconstruct, morph) goes through the same queue as single jobs,
so the CPU never runs more models at once than there are workers. Jobs carry a cost (for
photo jobs: photos x (refinement steps + 1)); queued and running jobs together may cost at
most `cost_budget`, except that a job always fits when no other costly work is in flight.
Work whose request has given up (its deadline passed) is abandoned: a job's refinement stops
between steps (facevae.inference.inversion.STOP_CHECK) and a decode batch between chunks, so
timed-out work does not hold the inference threads.
"""

from __future__ import annotations

import asyncio
import math
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from ...inference.inversion import STOP_CHECK

# chunk x D float32 codes -> chunk x H x W x 3 uint8 faces
DecodeFn = Callable[[torch.Tensor], np.ndarray]


class QueueFullError(Exception):
    """Too many requests are waiting; try again after `retry_after` seconds."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"the server is busy ({retry_after} s of work queued); retry after {retry_after} s")
        self.retry_after = retry_after


class DeadlineExceededError(Exception):
    """The request was not finished within its time limit."""


class BatcherClosedError(Exception):
    """The server is shutting down and takes no new work."""


@dataclass
class Decoded:
    """One request's faces and how they were decoded (for the X-Batch-* headers)."""

    images: np.ndarray  # n x H x W x 3 uint8
    batch_rows: int  # codes decoded together with this request's (its own included)
    batch_requests: int


@dataclass(eq=False)  # hashed by identity: the running set holds them
class _Work:
    future: Future
    enqueued: float  # time.monotonic()
    deadline: float
    latents: torch.Tensor | None = None  # decode work: n x D
    job: Callable[[], Any] | None = None  # anything else, run alone
    cost: int = 0  # a job's weight against the batcher's cost budget
    started: float = 0.0  # time.monotonic() when an inference thread took it
    abandoned: threading.Event = field(default_factory=threading.Event)  # its request stopped waiting

    @property
    def rows(self) -> int:
        return 0 if self.latents is None else len(self.latents)

    def given_up(self) -> bool:
        return self.abandoned.is_set() or time.monotonic() > self.deadline

    def stop_if_given_up(self) -> None:
        """The job's stop check: raises once nobody waits for its result."""
        if self.given_up():
            raise DeadlineExceededError("the request was abandoned after its time limit")


class MicroBatcher:
    """A bounded queue in front of `workers` inference threads that batch decode requests.

    batching=False decodes each request on its own (still in `chunk`-row calls), which is
    the baseline the load benchmark compares against.
    """

    def __init__(self, decode: DecodeFn, *, max_batch: int = 16, chunk: int = 1, wait_ms: float = 3.0,
                 queue_size: int = 64, timeout_s: float = 30.0, workers: int = 1, batching: bool = True,
                 cost_budget: int | None = None) -> None:
        if chunk < 1 or max_batch < 1 or queue_size < 1 or workers < 1 or wait_ms < 0 or timeout_s <= 0:
            raise ValueError("chunk, max_batch, queue_size and workers must be >= 1, wait_ms >= 0, timeout_s > 0")
        self.decode_fn = decode
        self.max_batch, self.chunk, self.wait_s = max_batch, chunk, wait_ms / 1000.0
        self.queue_size, self.timeout_s, self.workers, self.batching = queue_size, timeout_s, workers, batching
        self.cost_budget = cost_budget  # None: jobs are not weighed
        self._cost_in_flight = 0  # of the jobs queued or running
        self._running: set[_Work] = set()
        self.batch_sizes: Counter[int] = Counter()  # rows per decoder batch -> how many batches
        self._pending: deque[_Work] = deque()
        self._cond = threading.Condition()
        self._threads: list[threading.Thread] = []
        self._closing = False
        self._seconds_per_row = 0.0  # moving averages of measured service times, for /readyz and Retry-After
        self._seconds_per_job_unit = 0.0  # per unit of a job's cost (jobs without one count as one unit)

    # --- life cycle ----------------------------------------------------------------------

    def start(self) -> "MicroBatcher":
        for index in range(self.workers):
            thread = threading.Thread(target=self._loop, name=f"facevae-inference-{index}", daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def close(self, timeout: float | None = None) -> None:
        """Take no new work, finish what is queued, stop the threads."""
        with self._cond:
            self._closing = True
            self._cond.notify_all()
        for thread in self._threads:
            thread.join(timeout)
        self._threads.clear()

    @property
    def pending(self) -> int:
        return len(self._pending)

    def saturated(self) -> str | None:
        """Why a new request would not be served in time now, or None: the queue is full, the
        oldest waiting work is past its deadline, or the expected wait (the queued and running
        work at its measured service time, shared by the threads) does not fit the time limit."""
        now = time.monotonic()
        with self._cond:
            if len(self._pending) >= self.queue_size:
                return f"{len(self._pending)} requests are queued (the limit)"
            if self._pending and self._pending[0].deadline < now:
                return "queued work has waited longer than the time limit"
            if len(self._running) >= self.workers and all(work.deadline < now for work in self._running):
                return "every inference thread is busy with work past its time limit"
            wait = self._expected_wait(now)
        if wait >= self.timeout_s:
            return f"the work in hand would take about {wait:.1f} s, beyond the time limit of {self.timeout_s:g} s"
        return None

    def _expected_wait(self, now: float) -> float:
        """Seconds until a new request would start (call with _cond held)."""
        queued = sum(self._service_time(work) for work in self._pending)
        running = sum(max(self._service_time(work) - (now - work.started), 0.0) for work in self._running)
        return (queued + running) / self.workers

    def _service_time(self, work: _Work) -> float:
        if work.job is not None:
            return max(work.cost, 1) * self._seconds_per_job_unit
        return max(work.rows, self.chunk) * self._seconds_per_row

    # --- submitting ----------------------------------------------------------------------

    def submit(self, latents: torch.Tensor | None = None, job: Callable[[], Any] | None = None, cost: int = 0,
               deadline: float | None = None) -> _Work:
        """Queue decode work (latents) or a job; raises QueueFullError / BatcherClosedError.
        deadline: time.monotonic() by which it must be done (default: now + timeout_s)."""
        now = time.monotonic()
        work = _Work(Future(), now, deadline if deadline is not None else now + self.timeout_s,
                     None if latents is None else latents.detach().float().cpu(), job, cost)
        with self._cond:
            if self._closing:
                raise BatcherClosedError("the server is shutting down")
            if len(self._pending) >= self.queue_size or not self._affordable(cost):
                raise QueueFullError(self._retry_after())
            self._cost_in_flight += cost
            self._pending.append(work)
            self._cond.notify()
        return work

    def _affordable(self, cost: int) -> bool:
        return (self.cost_budget is None or cost == 0 or self._cost_in_flight == 0
                or self._cost_in_flight + cost <= self.cost_budget)

    async def decode(self, latents: torch.Tensor, deadline: float | None = None) -> Decoded:
        """The faces for n x D codes, decoded in a batch with whatever else is waiting."""
        return await self._wait(self.submit(latents=latents, deadline=deadline))

    async def run(self, job: Callable[[], Any], cost: int = 0, deadline: float | None = None) -> Any:
        """Run a function on an inference thread, in turn with the decode batches. While it runs,
        inversion.STOP_CHECK raises once its request has given up, which ends refinement early."""
        return await self._wait(self.submit(job=job, cost=cost, deadline=deadline))

    async def _wait(self, work: _Work) -> Any:
        try:
            return await asyncio.wait_for(asyncio.wrap_future(work.future), max(work.deadline - time.monotonic(), 0))
        except (TimeoutError, asyncio.CancelledError) as stopped:
            work.abandoned.set()  # running: it stops at its next check; queued: it is skipped
            work.future.cancel()
            if isinstance(stopped, asyncio.CancelledError):  # the client went away
                raise
            raise DeadlineExceededError(f"the request took longer than the server's limit of "
                                        f"{self.timeout_s:g} s") from None

    def _retry_after(self) -> int:
        return max(1, math.ceil(self._expected_wait(time.monotonic())))

    # --- the inference threads -----------------------------------------------------------

    def _loop(self) -> None:
        while (batch := self._take_batch()) is not None:
            live = [work for work in batch if self._start(work)]
            with self._cond:
                self._running.update(live)
            try:
                if live and live[0].job is not None:
                    self._run_job(live[0])
                elif live:
                    self._decode_batch(live)
            finally:
                with self._cond:
                    self._running.difference_update(live)
                    self._cost_in_flight -= sum(work.cost for work in batch)

    def _take_batch(self) -> list[_Work] | None:
        """The oldest waiting work plus whatever decode work joins it in the window; None: closed."""
        with self._cond:
            while not self._pending and not self._closing:
                self._cond.wait()
            if not self._pending:
                return None  # closing and drained
            first = self._pending.popleft()
            batch, rows = [first], first.rows
            if first.job is not None or not self.batching:
                return batch
            limit = self._batch_limit(rows)
            closes_at = first.enqueued + self.wait_s
            while rows < limit:
                if self._pending:
                    following = self._pending[0]
                    if following.job is not None or rows + following.rows > limit:
                        break
                    batch.append(self._pending.popleft())
                    rows += following.rows
                    continue
                remaining = closes_at - time.monotonic()
                if remaining <= 0 or self._closing:
                    break
                self._cond.wait(remaining)
            return batch

    def _batch_limit(self, first_rows: int) -> int:
        """Rows this batch may grow to. With several workers, a worker takes only its share of
        what is waiting (whole chunks), so a backlog is split across the workers instead of one
        worker decoding it all while the others idle."""
        if self.workers == 1:
            return self.max_batch
        waiting = first_rows + sum(work.rows for work in self._pending)
        share = math.ceil(waiting / self.workers)
        return min(self.max_batch, max(self.chunk, math.ceil(share / self.chunk) * self.chunk))

    @staticmethod
    def _start(work: _Work) -> bool:
        """Mark work as running; False if it was cancelled or its deadline has passed."""
        if not work.future.set_running_or_notify_cancel():
            return False
        work.started = time.monotonic()
        if work.started > work.deadline:
            work.future.set_exception(DeadlineExceededError("the request waited longer than its time limit"))
            return False
        return True

    def _run_job(self, work: _Work) -> None:
        token = STOP_CHECK.set(work.stop_if_given_up)
        try:
            work.future.set_result(work.job())  # type: ignore[misc]
            per_unit = (time.monotonic() - work.started) / max(work.cost, 1)
            self._seconds_per_job_unit = _moving_average(self._seconds_per_job_unit, per_unit)
        except BaseException as error:  # handed to the waiting request, which reports it
            work.future.set_exception(error)
        finally:
            STOP_CHECK.reset(token)

    def _decode_batch(self, batch: list[_Work]) -> None:
        latents = torch.cat([work.latents for work in batch])  # type: ignore[misc]
        started = time.perf_counter()
        try:
            images = self.decode_chunked(latents, stop=lambda: all(work.given_up() for work in batch))
        except BaseException as error:
            for work in batch:
                work.future.set_exception(error)
            return
        per_row = (time.perf_counter() - started) / len(latents)
        self._seconds_per_row = _moving_average(self._seconds_per_row, per_row)
        self.batch_sizes[len(latents)] += 1
        start = 0
        for work in batch:
            work.future.set_result(Decoded(images[start:start + work.rows], len(latents), len(batch)))
            start += work.rows

    def decode_chunked(self, latents: torch.Tensor, stop: Callable[[], bool] | None = None) -> np.ndarray:
        """n x D codes -> n x H x W x 3 uint8, calling the decoder on exactly `chunk` rows each time;
        stop() is asked between calls, and True abandons the batch (DeadlineExceededError)."""
        count = len(latents)
        padding = -count % self.chunk
        if padding:
            latents = torch.cat([latents, latents.new_zeros(padding, latents.shape[1])])
        parts = []
        for part in latents.split(self.chunk):
            if parts and stop is not None and stop():
                raise DeadlineExceededError("every request in the batch was abandoned after its time limit")
            parts.append(self.decode_fn(part))
        return np.concatenate(parts)[:count]


def _moving_average(average: float, value: float) -> float:
    return value if not average else 0.8 * average + 0.2 * value
