"""Tracing (`serve.otlp_endpoint`) on a real server on 127.0.0.1: the spans of embeddings, decode, refused and probe
requests (kept in memory), a real OTLP/HTTP export to a receiver on loopback, and no OpenTelemetry SDK without it."""

import http.server
import json
import subprocess
import sys
import threading
from typing import ClassVar

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")
pytest.importorskip("opentelemetry.sdk")
pytest.importorskip("opentelemetry.exporter.otlp.proto.http")
httpx = pytest.importorskip("httpx2")

from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from test_serve import TEXTS, Server

from genvec.config.sections import ServeConfig
from genvec.serve import tracing

STEPS = ["tokenize", "queue", "model", "serialize"]
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"  # the W3C trace-context example
PARENT = f"00-{TRACE_ID}-00f067aa0ba902b7-01"


@pytest.fixture(scope="module")
def model(served_model):
    return served_model


@pytest.fixture(scope="module")
def spans(model):
    """The spans of a server (two texts per model batch) that answered an embeddings request of three texts, one with
    a traceparent header, a decode request, a TEI rerank, a refused one and probes, collected once the server
    stopped."""
    memory = InMemorySpanExporter()
    with pytest.MonkeyPatch.context() as patch:  # the server's exporter keeps its spans in memory
        otel_tracer = tracing.OtelTracer
        patch.setattr(tracing, "OtelTracer", lambda name, exporter: otel_tracer(name, memory))
        server = Server(model, ServeConfig(otlp_endpoint="http://127.0.0.1:9", max_batch_texts=2))
    try:
        server.wait_ready()
        for body in ({"input": TEXTS}, {"input": []}):
            httpx.post(server.url + "/v1/embeddings", json=body)
        httpx.post(server.url + "/v1/embeddings", json={"input": "traced by the client"},
                   headers={"traceparent": PARENT})
        assert httpx.post(server.url + "/v1/decode", json={"input": TEXTS[:2], "max_new_tokens": 4}).status_code == 200
        assert httpx.post(server.url + "/rerank", json={"query": "rivers", "texts": TEXTS}).status_code == 200
    finally:
        server.close()  # flushes the spans
    return memory.get_finished_spans()


def request_span(spans, name: str, **attributes):
    """The one request span of that name and attributes, and its children by name."""
    [span] = [s for s in spans if s.name == name and s.kind == SpanKind.SERVER
              and all(s.attributes.get(key) == value for key, value in attributes.items())]
    children = [s for s in spans if s.parent is not None and s.parent.span_id == span.context.span_id]
    return span, {child.name: child for child in children}, [child.name for child in children]


def test_an_embeddings_request_is_one_span_with_its_four_steps_in_order(spans, model):
    span, steps, names = request_span(spans, "POST /v1/embeddings", **{"http.response.status_code": 200,
                                                                        "genvec.inputs": 3})
    assert sorted(names) == sorted(STEPS)  # each step once
    assert span.attributes["http.route"] == "/v1/embeddings" and span.status.status_code == StatusCode.UNSET
    for step in steps.values():
        assert step.context.trace_id == span.context.trace_id
        assert span.start_time <= step.start_time <= step.end_time <= span.end_time, step.name
    tokenize, queue, batches, serialize = (steps[name] for name in STEPS)
    assert tokenize.end_time <= queue.start_time <= queue.end_time <= batches.start_time
    assert batches.end_time <= serialize.start_time
    lengths = sorted((len(ids) for ids in model.prepare(TEXTS).ids), reverse=True)
    assert tokenize.attributes == {"genvec.texts": 3, "genvec.tokens": sum(lengths)}
    # Two texts per batch: the two longest, then the third.
    assert batches.attributes == {"genvec.batches": 2, "genvec.texts": 3, "genvec.padded_tokens": 2 * lengths[0]
                                + lengths[2]}
    assert serialize.attributes["genvec.bytes"] > 0


def test_a_client_traceparent_makes_the_request_span_its_child(spans):
    span, _, names = request_span(spans, "POST /v1/embeddings", **{"genvec.inputs": 1})
    assert format(span.context.trace_id, "032x") == TRACE_ID and span.parent.span_id == int(PARENT[36:52], 16)
    assert sorted(names) == sorted(STEPS)


def test_a_decode_request_waits_for_and_runs_the_model_thread(spans):
    span, steps, names = request_span(spans, "POST /v1/decode")
    assert sorted(names) == sorted(STEPS) and span.attributes["genvec.inputs"] == 2
    assert steps["queue"].end_time <= steps["model"].start_time
    assert steps["model"].attributes == {"genvec.batches": 1, "genvec.texts": 2}


def test_a_refused_request_is_a_span_with_its_status_and_probes_are_not_traced(spans):
    span, _, names = request_span(spans, "POST /v1/embeddings", **{"http.response.status_code": 400})
    assert names == [] and span.status.status_code == StatusCode.UNSET  # a client's mistake is no server error
    assert not [s for s in spans if "/health" in s.name or "/ready" in s.name]
    assert len([s for s in spans if s.kind == SpanKind.SERVER]) == 5


def test_a_dialects_route_is_traced_through_the_same_steps(spans):
    """TEI's /rerank prepares the query and the documents apart, then embeds them in one submission."""
    span, steps, names = request_span(spans, "POST /rerank")
    assert sorted(names) == sorted(["tokenize", *STEPS]) and span.attributes["genvec.inputs"] == 4
    assert steps["model"].attributes["genvec.texts"] == 4


class Receiver(http.server.BaseHTTPRequestHandler):
    """An OTLP/HTTP collector that keeps what it is sent: (path, content type, body) in `posts`."""

    posts: ClassVar[list[tuple[str, str, bytes]]] = []

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers["Content-Length"]))
        self.posts.append((self.path, self.headers["Content-Type"], body))
        self.send_response(200)
        self.send_header("Content-Type", "application/x-protobuf")
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args) -> None:
        pass


def test_spans_reach_an_otlp_http_collector_when_the_server_stops(model):
    collector = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=collector.serve_forever, daemon=True).start()
    try:
        server = Server(model, ServeConfig(otlp_endpoint=f"http://127.0.0.1:{collector.server_port}",
                                                  otlp_service_name="genvec-test"))
        try:
            server.wait_ready()
            assert httpx.post(server.url + "/v1/embeddings", json={"input": TEXTS}).status_code == 200
        finally:
            server.close()
    finally:
        collector.shutdown()
    assert {(path, kind) for path, kind, _ in Receiver.posts} == {("/v1/traces", "application/x-protobuf")}
    exported = [ExportTraceServiceRequest.FromString(body) for _, _, body in Receiver.posts]
    resources = [resource for request in exported for resource in request.resource_spans]
    names = sorted(span.name for resource in resources for scope in resource.scope_spans for span in scope.spans)
    assert names == sorted(["POST /v1/embeddings", *STEPS])
    service = {a.key: a.value.string_value for resource in resources for a in resource.resource.attributes}
    assert service["service.name"] == "genvec-test"


def test_without_an_endpoint_the_opentelemetry_sdk_is_never_imported(backbone_dirs):
    """In a fresh interpreter: a server without otlp_endpoint answers an embeddings request (FastAPI itself imports
    OpenTelemetry's API, never its SDK or exporter)."""
    script = f"""
import json, sys, time
from fastapi.testclient import TestClient
from genvec import GenVecModel
from genvec.serve.app import create_app
model = GenVecModel.from_backbone({str(backbone_dirs["qwen3"])!r}, num_special_tokens=4, num_compression_tokens=2,
                                  embedding_dim=16, dtype="fp32", device="cpu")
with TestClient(create_app(model)) as client:
    deadline = time.monotonic() + 60
    while client.get("/ready").status_code != 200 and time.monotonic() < deadline:  # the warm-up, in a thread
        time.sleep(0.05)
    assert client.post("/v1/embeddings", json={{"input": ["a text"]}}).status_code == 200
print(json.dumps(sorted(name for name in sys.modules if name.startswith("opentelemetry"))))
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    loaded = json.loads(done.stdout.strip().splitlines()[-1])
    assert not [name for name in loaded if name.startswith(("opentelemetry.sdk", "opentelemetry.exporter"))]
