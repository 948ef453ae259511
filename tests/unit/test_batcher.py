"""The serve batcher's waiting policy, on a stand-in model function (the server tests use the real model)."""

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

pytest.importorskip("fastapi")

from genvec.serve.batcher import Batcher  # noqa: E402


def submit_spread(wait_seconds: float, count: int, max_texts: int = 4, gap: float = 0.02):
    """Submit `count` one-text requests `gap` seconds apart; the batch sizes the model saw, the results, seconds."""
    sizes = []

    def run(ids):
        sizes.append(len(ids))
        return np.array([[float(len(row))] for row in ids], dtype=np.float32)

    async def main():
        batcher = Batcher(run, ThreadPoolExecutor(1), max_batch_tokens=1000, max_batch_texts=max_texts,
                          max_queue_texts=100, wait_seconds=wait_seconds)
        batcher.start()

        async def later(i):
            await asyncio.sleep(gap * i)
            return await batcher.submit([[7] * (i + 1)])

        started = time.perf_counter()
        results = await asyncio.gather(*(later(i) for i in range(count)))
        seconds = time.perf_counter() - started
        await batcher.stop()
        return results, seconds

    results, seconds = asyncio.run(main())
    return sizes, [float(r[0, 0]) for r in results], seconds


def test_without_a_wait_each_text_runs_as_soon_as_the_model_is_free():
    sizes, results, _ = submit_spread(0.0, 4)
    assert sizes == [1, 1, 1, 1] and results == [1.0, 2.0, 3.0, 4.0]


def test_a_wait_fills_the_batch_and_a_full_batch_goes_at_once():
    sizes, results, seconds = submit_spread(2.0, 4)
    assert sizes == [4] and results == [1.0, 2.0, 3.0, 4.0]
    assert seconds < 1.5  # it went when the fourth text came (~0.06 s), not after the 2 s wait


def test_a_batch_that_never_fills_goes_when_the_wait_is_over():
    sizes, results, seconds = submit_spread(0.15, 2)
    assert sizes == [2] and results == [1.0, 2.0]
    assert seconds >= 0.15
