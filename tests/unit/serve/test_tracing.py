"""`genvec.serve.tracing` alone: spans made after the fact from a request's noted steps (kept in memory), the no-op
tracer, the missing-extra error, and the batcher's per-request `Timing` the spans are made from."""

import asyncio
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from genvec.config.sections import ServeConfig
from genvec.errors import InputError
from genvec.serve import tracing
from genvec.serve.batcher import Batcher, Timing

SCOPE = {"method": "POST", "headers": [(b"content-type", b"application/json")]}


@pytest.fixture
def memory():
    """An OtelTracer whose spans stay in memory, and that memory."""
    pytest.importorskip("opentelemetry.sdk")
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    exporter = InMemorySpanExporter()
    return tracing.OtelTracer("genvec-test", exporter), exporter


def test_without_an_endpoint_the_tracer_does_nothing():
    tracer = tracing.make_tracer(ServeConfig())
    assert not tracer.enabled and tracer.begin(SCOPE) is None and tracing.current() is None


def test_an_endpoint_without_the_otel_extra_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "opentelemetry.exporter.otlp.proto.http.trace_exporter", None)  # not installed
    with pytest.raises(InputError, match=r"serve.otlp_endpoint .* pip install 'genvec\[otel\]'"):
        tracing.make_tracer(ServeConfig(otlp_endpoint="http://127.0.0.1:4318"))


@pytest.mark.parametrize(("endpoint", "url"), [
    ("http://collector:4318", "http://collector:4318/v1/traces"),
    ("http://collector:4318/", "http://collector:4318/v1/traces"),
    ("https://example.com/otlp/v1/traces", "https://example.com/otlp/v1/traces"),
])
def test_the_traces_path_is_added_unless_given(endpoint, url):
    assert tracing.traces_url(endpoint) == url


def test_a_request_becomes_a_server_span_with_its_steps_as_children(memory):
    tracer, exporter = memory
    trace = tracer.begin(SCOPE)
    assert tracing.current() is trace
    now = time.perf_counter()
    trace.add("tokenize", now, now + 0.001, texts=2, tokens=9)
    trace.add_model(now + 0.001, now + 0.002, now + 0.003, batches=1, texts=2)
    tracer.end(trace, "/v1/embeddings", 503, inputs=2)
    assert tracing.current() is None
    tracer.shutdown()
    *steps, span = exporter.get_finished_spans()  # children end first
    assert span.name == "POST /v1/embeddings" and span.parent is None and span.status.status_code.name == "ERROR"
    assert dict(span.attributes) == {"http.request.method": "POST", "http.route": "/v1/embeddings",
                                     "http.response.status_code": 503, "genvec.inputs": 2}
    assert [(s.name, dict(s.attributes)) for s in steps] == [
        ("tokenize", {"genvec.texts": 2, "genvec.tokens": 9}), ("queue", {}),
        ("model", {"genvec.batches": 1, "genvec.texts": 2})]
    assert all(s.parent.span_id == span.context.span_id for s in steps)
    assert [s.end_time - s.start_time for s in steps] == pytest.approx([1e6] * 3, abs=1e3)  # ns
    assert steps[0].end_time == pytest.approx(steps[1].start_time, abs=1e3)


def test_a_request_that_never_reached_the_model_waited_until_it_ended(memory):
    tracer, exporter = memory
    trace = tracer.begin(SCOPE)
    queued = time.perf_counter()
    trace.add_model(queued, 0.0, 0.0, batches=0, texts=1)  # the client hung up while it waited
    tracer.end(trace, "/v1/embeddings", 499, inputs=1)
    tracer.shutdown()
    queue, span = exporter.get_finished_spans()
    assert queue.name == "queue" and span.start_time <= queue.start_time <= queue.end_time <= span.end_time
    assert span.status.status_code.name == "UNSET"


def test_the_batcher_notes_each_requests_batches():
    """Two texts per batch: A's longest shares the first batch with B's text; A's shorter one runs alone next."""
    runs = []

    def run(ids, key=None):
        runs.append(time.perf_counter())
        return np.zeros((len(ids), 1), dtype=np.float32)

    async def main():
        batcher = Batcher(run, ThreadPoolExecutor(1), max_batch_tokens=1000, max_batch_texts=2, max_queue_texts=10)
        first, second = Timing(), Timing()
        done = [batcher.submit([[1] * 5, [1] * 3], first), batcher.submit([[1] * 4], second)]
        batcher.start()
        await asyncio.gather(*done)
        await batcher.stop()
        return first, second

    first, second = asyncio.run(main())
    assert (first.batches, first.padded_tokens, second.batches, second.padded_tokens) == (2, 5 + 3, 1, 5)
    assert first.first_start == second.first_start <= runs[0] <= second.last_end <= runs[1] <= first.last_end
