"""Coalesce texts from concurrent requests into model batches, length-aware and fair, with a bounded queue.

Every request's texts (already tokenised) wait in the request's own queue, longest first; the requests take turns.
A single worker task builds each batch around the next text of the request whose turn it is (the *anchor*): it
takes a window of up to four batches' worth of texts round-robin from the waiting requests (one text of each in
turn, then the next of each), and adds the window's texts nearest the anchor's length until the batch's padded size
(texts x longest) would pass `max_batch_tokens` or it holds `max_batch_texts`. That request then goes to the back
of the turn order. A batch holds only texts with the anchor's instruction (the `key` of `submit`), so the model
reads that instruction once for the whole batch (`inference`'s shared prefix) however requests with different
instructions interleave. So a large request is split into model batches by the server, small requests share them, and a
request that arrives behind two huge ones waits a few batches, not for all their texts (fairness by request, not by
arrival); batches stay homogeneous in length, as texts of similar length fill them. The model runs a batch in the
model thread, off the event loop, while new requests queue up behind it. When more than `max_queue_texts` texts
wait, `submit` raises `Overloaded`.

`submit` answers a future: cancelling it (the client went away) withdraws the request's texts that are not yet in a
batch, so they never reach the model; a batch already running is finished and its rows for that request dropped.

Each request's `Timing` notes when its texts went through the model (the first batch that held any of them started,
the last one ended), in how many batches and with how many padded tokens: the server's traces are made from it after
the fact, so nothing here knows of tracing.

With `wait_seconds`, the batch after an answered one may wait that long at most for as many texts as were queued
plus as many as were just answered: clients that send their next text as soon as they get an answer then share
full batches instead of splitting into groups that alternate. Texts arriving when no batch was just answered, or
enough texts for a full batch, never wait.

What it does not do: tokenise, normalise or know HTTP (`genvec.serve.app` does, and cancels the future of a
client that hung up).
"""

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass, field

import numpy as np

WINDOW_BATCHES = 4  # a batch is chosen among this many batches' worth of waiting texts


class Overloaded(Exception):
    """The queue is full; the caller should answer 429 with Retry-After."""


@dataclass(slots=True)
class Timing:
    """When one request's texts went through the model (`time.perf_counter()` seconds; 0.0 before its first batch):
    the start of the first batch that held any of them and the end of the last, how many batches held them, and their
    padded tokens (each text counted at its batch's longest length)."""

    first_start: float = 0.0
    last_end: float = 0.0
    batches: int = 0
    padded_tokens: int = 0


@dataclass(eq=False)
class _Job:
    """One request: its future, its texts not yet in a batch (index, ids; longest first), the rows computed so far."""

    future: asyncio.Future
    size: int
    timing: Timing
    rows: deque = field(default_factory=deque)
    vectors: np.ndarray | None = None
    remaining: int = 0  # rows not yet computed
    batch: int = -1  # the number of the last batch that held one of its texts
    key: str | None = None  # its texts' instruction: a batch holds texts of one key


_Text = tuple[_Job, int, list[int]]  # a request, the text's index in it, its token ids


class Batcher:
    def __init__(
        self,
        run: Callable[[list[list[int]], str | None], np.ndarray],
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
        self.jobs: deque[_Job] = deque()  # requests with texts waiting, in turn order
        self.waiting = 0  # texts waiting in them (not those of withdrawn requests)
        self.expected, self.deadline = 0, 0.0  # texts the next batch may wait for, until this loop time
        self.batches = 0  # batches run so far
        self.wakeup = asyncio.Event()
        self.worker: asyncio.Task | None = None

    @property
    def queued(self) -> int:
        """Texts waiting for the model (not those in the batch being computed)."""
        return self.waiting

    def start(self) -> None:
        self.worker = asyncio.get_running_loop().create_task(self._work(), name="genvec-batcher")

    async def stop(self) -> None:
        if self.worker is not None:
            self.worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.worker

    def submit(self, ids: list[list[int]], timing: Timing | None = None, key: str | None = None) -> asyncio.Future:
        """A future of the embeddings (rows in the order of `ids`), set once every text has been through a batch.
        Cancel it to withdraw the texts not yet in a batch. `timing`, if given, is filled in as the batches run.
        `key`: the instruction every text of `ids` starts with (None: none); `run` gets it with each batch.

        Raises:
            Overloaded: the queue would pass `max_queue_texts`.
        """
        assert ids, "submit() needs at least one text"
        if self.waiting and self.waiting + len(ids) > self.max_queue_texts:
            raise Overloaded(f"{self.waiting} texts are waiting (limit {self.max_queue_texts})")
        job = _Job(asyncio.get_running_loop().create_future(), len(ids), timing or Timing(), remaining=len(ids),
                   key=key)
        job.rows.extend(sorted(enumerate(ids), key=lambda item: -len(item[1])))
        job.future.add_done_callback(lambda _: self._withdraw(job))
        self.jobs.append(job)
        self.waiting += len(ids)
        self.wakeup.set()
        return job.future

    def _withdraw(self, job: _Job) -> None:
        """Forget the texts of a request that no longer needs them (cancelled, or failed in an earlier batch)."""
        self.waiting -= len(job.rows)
        job.rows.clear()

    async def _work(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self.wakeup.wait()
            if not self.waiting:
                self.wakeup.clear()
                continue
            if self.wait_seconds > 0:
                await self._fill()
            batch = self._take()
            if not batch:  # every waiting request was withdrawn meanwhile
                continue
            rows = [row for _, _, row in batch]
            started = time.perf_counter()
            try:
                vectors = await loop.run_in_executor(self.executor, self.run, rows, batch[0][0].key)
            except Exception as err:  # noqa: BLE001  whatever the model raised, every waiting request learns it
                for job, _, _ in batch:
                    if not job.future.done():
                        job.future.set_exception(err)
                self.expected = 0
                continue
            ended = time.perf_counter()
            self.batches += 1
            if self.on_batch is not None:
                self.on_batch(len(rows), len(rows) * len(rows[0]))  # the batch is longest first
            self._answer(batch, vectors, started, ended)
            # Clients just answered often send again at once: the next batch may wait briefly for as many texts.
            self.expected = min(self.max_batch_texts, self.waiting + len(rows))
            self.deadline = loop.time() + self.wait_seconds

    def _answer(self, batch: list[_Text], vectors: np.ndarray, started: float, ended: float) -> None:
        """Put each row where its request expects it; a request with all its rows gets its answer. Each request's
        timing notes the batch (run from `started` to `ended`)."""
        longest = len(batch[0][2])  # the batch is longest first
        for (job, index, _), vector in zip(batch, vectors):
            if job.future.done():  # the client went away, or an earlier batch failed
                continue
            timing = job.timing
            if job.batch != self.batches:  # the request's first text in this batch
                job.batch = self.batches
                if not timing.batches:
                    timing.first_start = started
                timing.batches += 1
                timing.last_end = ended
            timing.padded_tokens += longest
            if job.vectors is None:
                job.vectors = np.empty((job.size, vectors.shape[1]), dtype=np.float32)
            job.vectors[index] = vector
            job.remaining -= 1
            if job.remaining == 0:
                job.future.set_result(job.vectors)

    async def _fill(self) -> None:
        """Wait, until `deadline`, for the texts expected since the last batch was answered (or a full batch)."""
        loop = asyncio.get_running_loop()
        while (self.waiting < self.expected and not self._full()
               and (left := self.deadline - loop.time()) > 0):
            self.wakeup.clear()
            try:
                await asyncio.wait_for(self.wakeup.wait(), left)
            except TimeoutError:
                break
        self.wakeup.set()  # texts may remain after the batch taken next: the worker must not sleep on them

    def _full(self) -> bool:
        """Whether the queue holds at least one full batch (in texts, or in padded tokens)."""
        if self.waiting >= self.max_batch_texts:
            return True
        longest = max((len(job.rows[0][1]) for job in self.jobs if job.rows), default=0)
        return self.waiting * longest >= self.max_batch_tokens

    def _take(self) -> list[_Text]:
        """The next batch: the anchor (the next text of the request whose turn it is) and the texts of the window with
        its key nearest its length, within the token and text bounds. The window's other texts go back to their
        requests."""
        for job in self.jobs:
            if job.future.done():  # withdrawn now, not when its callback runs: `waiting` must not count it
                self._withdraw(job)
        self.jobs = deque(job for job in self.jobs if job.rows)
        if not self.jobs:
            return []
        window = self._window()
        key = window[0][0].key  # the anchor's: the batch reads one instruction
        # longest first; a stable sort
        ranked = sorted((item for item in window if item[0].key == key), key=lambda item: -len(item[2]))
        low = next(i for i, item in enumerate(ranked) if item is window[0])
        low, high = self._around(ranked, low)
        batch = ranked[low:high]
        chosen = {id(item) for item in batch}
        for job, index, row in reversed([item for item in window if id(item) not in chosen]):
            job.rows.appendleft((index, row))  # the rest go back to the front of their requests, in order
        self.waiting -= len(batch)
        first = self.jobs.popleft()  # the anchor's request: its turn is over
        if first.rows:
            self.jobs.append(first)
        return batch

    def _around(self, ranked: list[_Text], anchor: int) -> tuple[int, int]:
        """The batch `ranked[low:high]` (texts longest first) grown from `ranked[anchor]` one text at a time, the
        longer or the shorter neighbour, whichever is nearer the anchor's length, while the bounds allow."""
        low, high, length = anchor, anchor + 1, len(ranked[anchor][2])
        while high - low < self.max_batch_texts:  # the batch's longest text is ranked[low]
            longer = low > 0 and (high - low + 1) * len(ranked[low - 1][2]) <= self.max_batch_tokens
            shorter = high < len(ranked) and (high - low + 1) * len(ranked[low][2]) <= self.max_batch_tokens
            if longer and shorter:
                longer = len(ranked[low - 1][2]) - length <= length - len(ranked[high][2])
            if longer:
                low -= 1
            elif shorter:
                high += 1
            else:
                break
        return low, high

    def _window(self) -> list[_Text]:
        """Up to `WINDOW_BATCHES` batches' worth of texts, taken from the waiting requests in turn order, one text of
        each per pass (each request's longest first); the first is the anchor. Taken out of their requests."""
        window: list[_Text] = []
        limit = WINDOW_BATCHES * self.max_batch_texts
        jobs = list(self.jobs)
        while jobs and len(window) < limit:
            for job in jobs[: limit - len(window)]:
                window.append((job, *job.rows.popleft()))
            jobs = [job for job in jobs if job.rows]
        return window
