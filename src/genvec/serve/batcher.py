"""Coalesce texts from concurrent requests into model batches, length-aware, with a bounded queue.

Every request's texts (already tokenised) join one queue. A single worker task takes the oldest texts (up to four
batches' worth), sorts them longest first and fills a batch until its padded size (texts x longest) would pass
`max_batch_tokens` or it holds `max_batch_texts`; the model runs it in the model thread, off the event loop, while
new requests queue up behind it and join the next batch. A large request is thereby split into model batches by the
server, and small requests share them. When more than `max_queue_texts` texts wait, `submit` raises `Overloaded`.

With `wait_seconds`, the batch after an answered one may wait that long at most for as many texts as were queued
plus as many as were just answered: clients that send their next text as soon as they get an answer then share
full batches instead of splitting into groups that alternate. Texts arriving when no batch was just answered, or
enough texts for a full batch, never wait.

What it does not do: tokenise, normalise or know HTTP (`genvec.serve.app` does).
"""

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass

import numpy as np


class Overloaded(Exception):
    """The queue is full; the caller should answer 429 with Retry-After."""


@dataclass
class _Job:
    """One request's texts: its future, and the rows computed so far."""

    future: asyncio.Future
    size: int
    vectors: np.ndarray | None = None
    remaining: int = 0


class Batcher:
    def __init__(
        self,
        run: Callable[[list[list[int]]], np.ndarray],
        executor: Executor,
        *,
        max_batch_tokens: int,
        max_batch_texts: int,
        max_queue_texts: int,
        wait_seconds: float = 0.0,
        on_batch: Callable[[int, int], None] | None = None,
    ) -> None:
        """`run(ids) -> (len(ids), D)` runs in `executor`; `on_batch(texts, padded_tokens)` after every batch;
        `wait_seconds`: how long after a batch is answered the next one may wait for those clients' next texts."""
        self.run, self.executor, self.wait_seconds = run, executor, wait_seconds
        self.max_batch_tokens, self.max_batch_texts, self.max_queue_texts = (
            max_batch_tokens, max_batch_texts, max_queue_texts)
        self.on_batch = on_batch
        self.pending: deque[tuple[_Job, int, list[int]]] = deque()
        self.expected, self.deadline = 0, 0.0  # texts the next batch may wait for, until this loop time
        self.wakeup = asyncio.Event()
        self.worker: asyncio.Task | None = None

    @property
    def queued(self) -> int:
        """Texts waiting for the model (not those in the batch being computed)."""
        return len(self.pending)

    def start(self) -> None:
        self.worker = asyncio.get_running_loop().create_task(self._work(), name="genvec-batcher")

    async def stop(self) -> None:
        if self.worker is not None:
            self.worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.worker

    async def submit(self, ids: list[list[int]]) -> np.ndarray:
        """The embeddings (rows in the order of `ids`) once every text has been through a batch.

        Raises:
            Overloaded: the queue would pass `max_queue_texts`.
        """
        if self.pending and self.queued + len(ids) > self.max_queue_texts:
            raise Overloaded(f"{self.queued} texts are waiting (limit {self.max_queue_texts})")
        job = _Job(asyncio.get_running_loop().create_future(), len(ids), remaining=len(ids))
        self.pending.extend((job, index, row) for index, row in enumerate(ids))
        self.wakeup.set()
        return await job.future

    async def _work(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self.wakeup.wait()
            if not self.pending:
                self.wakeup.clear()
                continue
            if self.wait_seconds > 0:
                await self._fill()
            batch = self._take()
            rows = [row for _, _, row in batch]
            try:
                vectors = await loop.run_in_executor(self.executor, self.run, rows)
            except Exception as err:  # noqa: BLE001  whatever the model raised, every waiting request learns it
                for job, _, _ in batch:
                    if not job.future.done():
                        job.future.set_exception(err)
                self.expected = 0
                continue
            if self.on_batch is not None:
                self.on_batch(len(rows), len(rows) * max(len(row) for row in rows))
            for (job, index, _), vector in zip(batch, vectors):
                if job.future.done():  # the client went away, or an earlier batch failed
                    continue
                if job.vectors is None:
                    job.vectors = np.empty((job.size, vectors.shape[1]), dtype=np.float32)
                job.vectors[index] = vector
                job.remaining -= 1
                if job.remaining == 0:
                    job.future.set_result(job.vectors)
            # Clients just answered often send again at once: the next batch may wait briefly for as many texts.
            self.expected = min(self.max_batch_texts, len(self.pending) + len(rows))
            self.deadline = loop.time() + self.wait_seconds

    async def _fill(self) -> None:
        """Wait, until `deadline`, for the texts expected since the last batch was answered (or a full batch)."""
        loop = asyncio.get_running_loop()
        while (len(self.pending) < self.expected and not self._full()
               and (left := self.deadline - loop.time()) > 0):
            self.wakeup.clear()
            try:
                await asyncio.wait_for(self.wakeup.wait(), left)
            except TimeoutError:
                break
        self.wakeup.set()  # texts may remain after the batch taken next: the worker must not sleep on them

    def _full(self) -> bool:
        """Whether the queue holds at least one full batch (in texts, or in padded tokens)."""
        if len(self.pending) >= self.max_batch_texts:
            return True
        longest = max(len(row) for _, _, row in self.pending)
        return len(self.pending) * longest >= self.max_batch_tokens

    def _take(self) -> list[tuple[_Job, int, list[int]]]:
        """The next batch: from the oldest texts, longest first, within the token and text bounds."""
        window = [self.pending.popleft() for _ in range(min(len(self.pending), 4 * self.max_batch_texts))]
        window.sort(key=lambda item: -len(item[2]))
        batch, longest = [], 0
        for item in window:
            size = max(longest, len(item[2]))
            if batch and (len(batch) >= self.max_batch_texts or (len(batch) + 1) * size > self.max_batch_tokens):
                break
            batch.append(item)
            longest = size
        for item in reversed(window[len(batch):]):  # the rest go back to the front of the queue
            self.pending.appendleft(item)
        return batch
