"""Traces of the server's requests, sent to an OpenTelemetry collector over OTLP/HTTP (`serve.otlp_endpoint`).

With an endpoint (and the `otel` extra), every request but the probes (/health, /ready, /metrics) becomes a server span
named after its route (`POST /v1/embeddings`; the method, route, status and number of inputs as attributes) with a
child span for each step it took: `tokenize` (the front door's prepare; a rerank prepares its query and its documents
apart), `queue` (waiting for the model: in the batcher until the request's first model batch starts, or, for decode
and inspect, in the model thread's queue), `model` (from the first batch's start to the last one's end: how many
batches, texts and padded tokens) and `serialize` (writing the JSON answer). A W3C `traceparent` header the client
sends makes the request span its child.

The steps only note `time.perf_counter()` times on the request's `RequestTrace` as they happen (the batcher notes its
batches in a `batcher.Timing` and knows nothing of tracing); the spans are made once the request is answered, with
those times, so no OpenTelemetry call sits in the model's loop. They leave in batches from the SDK's background
thread (BatchSpanProcessor); those still waiting are sent when the server stops (`shutdown`).

Without an endpoint the server uses `Tracer`, which does nothing: OpenTelemetry's SDK and exporter are never
imported. What it does not do: metrics or logs over OTLP (/metrics has the metrics), or sampling (every request is
traced; a collector can sample).
"""

import time
from collections.abc import Callable
from contextvars import ContextVar, Token
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from genvec.config.sections import ServeConfig
from genvec.errors import InputError

if TYPE_CHECKING:
    from opentelemetry.sdk.trace.export import SpanExporter

TRACES_PATH = "/v1/traces"  # OTLP/HTTP's path for traces, added to an endpoint given without it

_current: ContextVar["RequestTrace | None"] = ContextVar("genvec_request_trace", default=None)


def current() -> "RequestTrace | None":
    """The trace of the request being handled; None without tracing (or outside a request)."""
    return _current.get()


@dataclass(eq=False)
class RequestTrace:
    """What one request did, noted as it happens: its steps (name, start, end in perf_counter seconds, attributes)."""

    method: str
    started: float
    parent_headers: dict[str, str]  # the W3C trace-context headers the client sent
    token: Token | None = None
    steps: list[tuple[str, float, float, dict]] = field(default_factory=list)

    def add(self, name: str, started: float, ended: float, **attributes: int) -> None:
        """A step from `started` to `ended`; its attributes become `genvec.NAME` span attributes."""
        self.steps.append((name, started, ended, attributes))

    def add_model(self, queued: float, started: float, ended: float, **attributes: int) -> None:
        """The wait for the model from `queued` until the model `started` on the request (0.0: it never did; the wait
        ends now), and the model's run until it `ended` (0.0: still running, so now)."""
        now = time.perf_counter()
        self.add("queue", queued, started or now)
        if started:
            self.add("model", started, ended or now, **attributes)


class Timed:
    """`work` that notes when it ran (perf_counter seconds; 0.0 until then), for work run in another thread."""

    def __init__(self, work: Callable[[], object]) -> None:
        self.work, self.started, self.ended = work, 0.0, 0.0

    def __call__(self) -> object:
        self.started = time.perf_counter()
        try:
            return self.work()
        finally:
            self.ended = time.perf_counter()


class Tracer:
    """No tracing (no `otlp_endpoint`): `begin` answers None, and nothing else is ever called."""

    enabled = False

    def begin(self, scope: dict) -> RequestTrace | None:
        return None

    def end(self, trace: RequestTrace, route: str, status: int, inputs: int) -> None:
        pass

    def shutdown(self) -> None:
        pass


def make_tracer(config: ServeConfig) -> Tracer:
    """The server's tracer: OpenTelemetry's, exporting to `config.otlp_endpoint`, or one that does nothing without it.

    Raises:
        InputError: an endpoint is set but the `otel` extra is not installed.
    """
    if config.otlp_endpoint is None:
        return Tracer()
    try:
        import opentelemetry.sdk.trace  # noqa: F401  (checked here, used by OtelTracer)
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    except ImportError as err:
        raise InputError(f"serve.otlp_endpoint ({config.otlp_endpoint}) needs OpenTelemetry: pip install "
                         f"'genvec[otel]' ({err}).", param="otlp_endpoint") from err
    return OtelTracer(config.otlp_service_name, OTLPSpanExporter(endpoint=traces_url(config.otlp_endpoint)))


def traces_url(endpoint: str) -> str:
    """The URL spans are posted to: the endpoint as given if it ends in /v1/traces, else with it added (as the
    OTEL_EXPORTER_OTLP_ENDPOINT variable is read)."""
    endpoint = endpoint.rstrip("/")
    return endpoint if endpoint.endswith(TRACES_PATH) else endpoint + TRACES_PATH


class OtelTracer(Tracer):
    """Spans made with the OpenTelemetry SDK in a tracer provider of the server's own (the global one is left alone)
    and sent by `exporter` from a BatchSpanProcessor."""

    enabled = True

    def __init__(self, service_name: str, exporter: "SpanExporter") -> None:
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import BatchSpanProcessor
        from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

        from genvec.version import __version__

        # shutdown_on_exit=False: the server shuts it down when it stops (an atexit hook would keep it alive).
        self.provider = TracerProvider(resource=Resource.create({"service.name": service_name}), shutdown_on_exit=False)
        self.provider.add_span_processor(BatchSpanProcessor(exporter))
        self.tracer = self.provider.get_tracer("genvec.serve", __version__)
        self.propagator = TraceContextTextMapPropagator()

    def begin(self, scope: dict) -> RequestTrace:
        """A trace for this request, current until `end` (the route's handlers add their steps to it)."""
        headers = {name.decode("latin-1"): value.decode("latin-1") for name, value in scope["headers"]
                   if name in (b"traceparent", b"tracestate")}
        trace = RequestTrace(scope["method"], time.perf_counter(), headers)
        trace.token = _current.set(trace)
        return trace

    def end(self, trace: RequestTrace, route: str, status: int, inputs: int) -> None:
        """The request's span and its steps', with the times they noted; called once the answer has been sent."""
        from opentelemetry.trace import SpanKind, Status, StatusCode, set_span_in_context

        ended = time.perf_counter()
        _current.reset(trace.token)
        offset = time.time_ns() - time.perf_counter_ns()  # perf_counter seconds -> epoch nanoseconds

        def ns(seconds: float) -> int:
            return round(seconds * 1e9) + offset

        span = self.tracer.start_span(
            f"{trace.method} {route}", self.propagator.extract(trace.parent_headers), kind=SpanKind.SERVER,
            start_time=ns(trace.started), attributes={"http.request.method": trace.method, "http.route": route,
                                                      "http.response.status_code": status, "genvec.inputs": inputs})
        if status >= 500:  # a client's mistake (4xx) is no error of the server's span (OpenTelemetry's conventions)
            span.set_status(Status(StatusCode.ERROR))
        parent = set_span_in_context(span)
        for name, started, step_ended, attributes in trace.steps:
            self.tracer.start_span(name, parent, start_time=ns(started),
                                   attributes={f"genvec.{key}": value for key, value in attributes.items()}
                                   ).end(ns(step_ended))
        span.end(ns(ended))

    def shutdown(self) -> None:
        """Send the spans still waiting, then stop the exporter (blocks up to the exporter's timeout)."""
        self.provider.shutdown()
