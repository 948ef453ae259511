"""The serve batcher's waiting policy, fairness and withdrawal, on a stand-in model function (the server tests use the
real model)."""

import asyncio
import threading
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

    def run(ids, key=None):
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


def recorded_batches(requests: list[list[list[int]]], max_texts: int, max_tokens: int = 10_000):
    """Submit `requests` at once to a batcher; each batch as the list of its texts' first token ids, and the order in
    which the requests were answered. (`asyncio.ensure_future` takes a future, what `submit` answers, or a
    coroutine, what it was before it could be withdrawn.)"""
    batches = []

    def run(ids, key=None):
        batches.append([row[0] for row in ids])
        return np.array([[float(row[0]), float(len(row))] for row in ids], dtype=np.float32)

    async def main():
        batcher = Batcher(run, ThreadPoolExecutor(1), max_batch_tokens=max_tokens, max_batch_texts=max_texts,
                          max_queue_texts=100_000)
        batcher.start()
        futures = [asyncio.ensure_future(batcher.submit(ids)) for ids in requests]
        answered = []
        for index, future in enumerate(futures):
            future.add_done_callback(lambda _, index=index: answered.append(index))
        results = await asyncio.gather(*futures)
        await batcher.stop()
        return results, answered

    results, answered = asyncio.run(main())
    for ids, result in zip(requests, results):  # every request got its own rows, in its order
        assert result.tolist() == [[float(row[0]), float(len(row))] for row in ids]
    return batches, answered


def test_a_small_request_behind_two_large_ones_waits_a_few_batches_not_for_all_their_texts():
    large_a, large_b, small = [[1] * 50] * 100, [[2] * 50] * 100, [[3] * 5]
    batches, answered = recorded_batches([large_a, large_b, small], max_texts=4)
    assert sorted(x for batch in batches for x in batch) == [1] * 100 + [2] * 100 + [3]  # each text once
    first = next(i for i, batch in enumerate(batches) if 3 in batch)
    assert first <= 2 and answered[0] == 2, (first, answered)  # its turn came third: 2 batches waited, not 50
    assert {1, 2} <= set(batches[0] + batches[1])  # the two large requests share the model from the start


def test_batches_stay_within_their_bounds_and_group_texts_of_similar_length():
    lengths = [50, 5] * 8 + [30] * 3
    batches, _ = recorded_batches([[[length] * length] for length in lengths], max_texts=4, max_tokens=120)
    assert sorted(x for batch in batches for x in batch) == sorted(lengths)
    for batch in batches:
        assert len(batch) <= 4 and (len(batch) == 1 or len(batch) * max(batch) <= 120), batches
    # In arrival order, [50, 5] pairs would pad to 800 tokens; grouped by length: 8 x 50 + 8 x 5 + 4 x 30 at most.
    assert sum(len(batch) * max(batch) for batch in batches) <= 560, batches


def test_a_withdrawn_request_s_texts_never_reach_the_model():
    batches, first_batch = [], threading.Event()

    def run(ids, key=None):
        first_batch.wait(5)
        batches.append(len(ids))
        return np.zeros((len(ids), 1), dtype=np.float32)

    async def main():
        batcher = Batcher(run, ThreadPoolExecutor(1), max_batch_tokens=10_000, max_batch_texts=4, max_queue_texts=100)
        batcher.start()
        gone = asyncio.ensure_future(batcher.submit([[1] * 3] * 40))
        await asyncio.sleep(0.05)  # its first batch is running
        gone.cancel()  # what the server does when the client hangs up
        await asyncio.sleep(0)
        waiting = batcher.queued
        first_batch.set()
        answer = await batcher.submit([[2] * 3])  # the worker goes on with the next request
        await batcher.stop()
        return waiting, answer.shape

    waiting, shape = asyncio.run(main())
    assert waiting == 0 and shape == (1, 1)
    assert batches == [4, 1]  # the batch running when the client left was finished; its other 36 texts never ran


def test_a_batch_holds_texts_of_one_instruction_and_the_model_is_told_which():
    seen = []

    def run(ids, key=None):
        seen.append((key, sorted({row[0] for row in ids})))
        return np.array([[float(row[0])] for row in ids], dtype=np.float32)

    async def main():
        batcher = Batcher(run, ThreadPoolExecutor(1), max_batch_tokens=10_000, max_batch_texts=8,
                          max_queue_texts=1000)
        batcher.start()
        # requests of two instructions interleaved, same lengths: without keys they would share batches
        futures = [batcher.submit([[i] * 4] * 3, key="query:" if i % 2 else "document:") for i in range(6)]
        results = await asyncio.gather(*futures)
        await batcher.stop()
        return results

    results = asyncio.run(main())
    assert [result[:, 0].tolist() for result in results] == [[float(i)] * 3 for i in range(6)]
    for key, requests in seen:  # every batch read one instruction, the one its texts start with
        assert {"query:" if i % 2 else "document:" for i in requests} == {key}, seen
    assert sum(len(requests) > 1 for _, requests in seen) >= 2  # requests of one instruction still share batches
