"""The serve batcher's waiting policy, on a stand-in model function (the server tests use the real model)."""

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

pytest.importorskip("fastapi")

from genvec.serve.batcher import Batcher


def run_clients(wait_seconds: float, clients: int, requests: int, think: float = 0.0, texts: int = 1,
                model_seconds: float = 0.0, max_texts: int = 8):
    """`clients` closed-loop clients, each sending `requests` requests of `texts` texts one after another (waiting
    `think` x (its index % 4) seconds after each answer). The batch sizes the model saw, the rows, the seconds."""
    sizes = []

    def run(ids):
        sizes.append(len(ids))
        time.sleep(model_seconds)
        return np.array([[float(len(row))] for row in ids], dtype=np.float32)

    async def main():
        batcher = Batcher(run, ThreadPoolExecutor(1), max_batch_tokens=10_000, max_batch_texts=max_texts,
                          max_queue_texts=1000, wait_seconds=wait_seconds)
        batcher.start()

        async def client(i):
            rows = []
            for n in range(requests):
                vectors = await batcher.submit([[7] * (i + 1)] * (texts if n == 0 else 1))
                rows += [float(v) for v in vectors[:, 0]]
                await asyncio.sleep(think * (i % 4))
            return rows

        started = time.perf_counter()
        rows = await asyncio.gather(*(client(i) for i in range(clients)))
        seconds = time.perf_counter() - started
        await batcher.stop()
        return rows, seconds

    rows, seconds = asyncio.run(main())
    return sizes, rows, seconds


def test_a_lone_client_never_waits():
    sizes, rows, seconds = run_clients(2.0, clients=1, requests=5)
    assert sizes == [1] * 5 and rows == [[1.0] * 5]
    assert seconds < 1.0  # no request waited the 2 s


def test_clients_that_send_again_at_once_share_full_batches_with_a_wait():
    waited, rows, _ = run_clients(0.5, clients=8, requests=6, think=0.003, model_seconds=0.01)
    assert rows == [[float(i + 1)] * 6 for i in range(8)]  # every client got its own rows
    plain, _, _ = run_clients(0.0, clients=8, requests=6, think=0.003, model_seconds=0.01)
    assert sum(waited) == sum(plain) == 48
    assert waited.count(8) >= 5 and len(waited) < len(plain), (waited, plain)


def test_texts_that_do_not_come_are_waited_for_until_the_deadline_only():
    # One client sends 2 texts, then 1: the batch after the first expects 2 and waits the 0.2 s for the second.
    sizes, rows, seconds = run_clients(0.2, clients=1, requests=2, texts=2)
    assert sizes == [2, 1] and rows == [[1.0, 1.0, 1.0]]
    assert 0.2 <= seconds < 1.5
