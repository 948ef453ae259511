"""The genvec HTTP server: OpenAI-compatible embeddings, plus decoding and the logit lens (FastAPI).

Routes: `POST /v1/embeddings` (and `/embeddings`), `POST /v1/decode`, `POST /v1/inspect`, `GET /v1/models` (and
`/v1/models/{id}`: the model and its instruction-bound aliases, `protocol.Prompts`), `GET /info`, the other servers'
routes (`dialects.py`: TEI's, Ollama's, Cohere / Jina rerank, vLLM score), and the open probes `GET /health`
(alive), `GET /ready` (model loaded and warm; 503 before) and `GET /metrics` (Prometheus). With an API key every
other route needs `Authorization: Bearer KEY` (compared in constant time).

A request goes through four steps, one function each: its body is parsed and bounded (`protocol.py`: body size,
fields, number of inputs); its texts are prepared by the model's front door (`genvec.inference.prepare`: the
instruction, tokenising once, the length policy; short requests on the event loop, long ones in a small thread
pool); the model runs them (embeddings are coalesced into model batches by `batcher.py`; decode and inspect run in
the model's own thread, never on the event loop); the answer is written. An `InputError` of the front door becomes a
400 (a 422 for a text too long with truncation off) naming the field, without checking anything twice; a cut text is
counted on /metrics and in the `X-Genvec-Truncated` header. Errors have the OpenAI shape (`protocol.ApiError`), or
TEI's or Ollama's on their routes (`dialects.error_response`); a client that hangs up before its body has arrived is
no error of the server's: 499 on /metrics and in the access log, no traceback. Every request is logged as one JSON
line on the `genvec.serve.access` logger. Requests uvicorn cannot parse as HTTP at all (a bad request line, a broken
Content-Length or chunk) never reach the app: `connections.py` answers them with a 400 in the OpenAI shape and
closes the connection. With `otlp_endpoint`, each request (but the probes) is also one trace: its steps note their
times, and `tracing.py` turns them into spans once the request is answered.

What it does not do: load files or models a client names (the `model` field is reported, never followed), or
keep anything between requests.
"""

import asyncio
import functools
import hashlib
import hmac
import json
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager

import numpy as np
from fastapi import FastAPI, Request
from fastapi.responses import Response
from starlette.datastructures import Headers
from starlette.exceptions import HTTPException
from starlette.requests import ClientDisconnect

from genvec import decode as decoding
from genvec import inference
from genvec.config.sections import ServeConfig
from genvec.errors import GenVecError, InputError, InputTooLongError
from genvec.inference import Inputs
from genvec.model import GenVecModel
from genvec.serve import dialects, protocol, tracing
from genvec.serve.batcher import Batcher, Overloaded, Timing
from genvec.serve.protocol import ApiError
from genvec.version import __version__

logger = logging.getLogger(__name__)
access_logger = logging.getLogger("genvec.serve.access")

OPEN_ROUTES = {"/health", "/ready", "/metrics"}
MAX_TOP_K = 100
INLINE_TOKENIZE_CHARS = 4096  # requests of at most this many characters are prepared on the event loop
TOKENIZER_THREADS = 2  # longer requests are prepared in this many threads
TRUNCATED_HEADER = "X-Genvec-Truncated"  # how many of the request's texts were cut
WAITING_PER_DECODE_INPUT = 4  # decode and inspect inputs that may wait for the model, per max_decode_inputs
CLIENT_GONE = 499  # the status nginx logs for a client that closed the connection before the answer


def create_app(load: Callable[[], GenVecModel] | GenVecModel, config: ServeConfig | None = None, *,
               api_key: str | None = None, model_name: str = "genvec",
               on_load_failure: Callable[[Exception], None] | None = None) -> FastAPI:
    """The FastAPI application. `load` is a loaded model, or a function that loads one (run in a thread at
    startup, while /health already answers and /ready says 503).

    Args:
        api_key: the key every route but the probes requires (white space around it is dropped: a key read from a
            file often ends in a newline); None serves without one.
        on_load_failure: called with the error when `load` fails (`serve` stops the server with it); without it
            the server stays up, /ready and every route answering 503.

    Raises:
        InputError: an `api_key` that is empty or only white space.
    """
    state = _ServerState(config or ServeConfig(), api_key, model_name, on_load_failure)

    @asynccontextmanager
    async def lifespan(app):
        loading = asyncio.get_running_loop().create_task(state.start(load))
        yield
        loading.cancel()
        await state.stop()

    app = FastAPI(title="genvec", version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None,
                  openapi_url=None)
    app.add_exception_handler(ApiError, _api_error)
    app.add_exception_handler(InputError, _input_error)
    app.add_exception_handler(ClientDisconnect, _client_gone)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(Exception, _internal_error)
    routes = _Routes(state)
    for path, method, handler in routes.table() + dialects.DialectRoutes(state, routes.json_body, _answer).table():
        app.add_api_route(path, handler, methods=[method])
    # The route paths once: the middleware labels metrics with them.
    app.add_middleware(_Around, state=state, route_paths={route.path for route in app.routes})
    app.state.genvec = state
    return app


class _Routes:
    """The handlers: parse the body (`protocol`), prepare the texts (the front door), run the model, answer."""

    def __init__(self, state: "_ServerState") -> None:
        self.state = state

    def table(self) -> list[tuple[str, str, Callable]]:
        return [("/health", "GET", self.health), ("/ready", "GET", self.ready), ("/metrics", "GET", self.metrics),
                ("/info", "GET", self.info), ("/v1/models", "GET", self.models),
                ("/v1/models/{model_id:path}", "GET", self.model),
                ("/v1/embeddings", "POST", self.embeddings), ("/embeddings", "POST", self.embeddings),
                ("/v1/decode", "POST", self.decode), ("/v1/inspect", "POST", self.inspect)]

    async def health(self) -> dict:
        return {"status": "ok"}

    async def ready(self) -> dict:
        if not self.state.ready:
            raise self.state.not_ready()
        return {"status": "ready", "model": self.state.model_name}

    async def metrics(self) -> Response:
        return Response(self.state.metrics.render(self.state), media_type="text/plain; version=0.0.4")

    async def info(self) -> dict:
        return self.state.info()

    async def models(self) -> dict:
        """The model and its aliases, each alias with the instruction it binds."""
        return {"object": "list", "data": [self._model_card(name) for name in self._model_names()]}

    async def model(self, model_id: str) -> dict:
        """OpenAI's `models.retrieve`: the served model or an alias by its name; 404 in the OpenAI shape for any
        other."""
        if model_id not in self._model_names():
            raise ApiError(404, f"the model {model_id!r:.120} does not exist; this server serves "
                           f"{', '.join(self._model_names())}.", param="model", code="model_not_found")
        return self._model_card(model_id)

    def _model_names(self) -> list[str]:
        return [self.state.model_name, *self.state.prompts.aliases()]

    def _model_card(self, name: str) -> dict:
        card = {"id": name, "object": "model", "created": 0, "owned_by": "genvec"}
        prompt = self.state.prompts.aliases().get(name)
        if prompt is not None:
            card.update(parent=self.state.model_name, prompt_name=prompt, instruction=self.state.prompts.named[prompt])
        return card

    async def json_body(self, request: Request) -> dict:
        """The request's JSON object: 415 for another Content-Type (before the body is read), then read and parsed."""
        protocol.check_content_type(request.headers.get("content-type"))
        return protocol.parse_json(await self.state.read_body(request))

    async def embeddings(self, request: Request) -> Response:
        state, config = self.state, self.state.config
        body = await self.json_body(request)
        state.require_model()
        parsed = protocol.embedding_request(body, max_inputs=config.max_inputs,
                                            default_truncate=config.truncate == "cut")
        vectors, inputs = await state.embed_texts(parsed.texts, parsed.options, request, dimensions=parsed.dimensions,
                                                  normalize=parsed.normalize, precision=parsed.precision)
        return _answer({"object": "list", "model": state.model_name,
                        "data": [{"object": "embedding", "index": index,
                                  "embedding": protocol.encode_vector(vector, parsed.base64)}
                                 for index, vector in enumerate(vectors)],
                        "usage": {"prompt_tokens": inputs.num_tokens, "total_tokens": inputs.num_tokens}}, inputs)

    async def decode(self, request: Request) -> Response:
        state, config = self.state, self.state.config
        body = await self.json_body(request)
        model = state.require_model()
        parsed = protocol.decode_request(body, max_inputs=config.max_decode_inputs, hidden_size=model.hidden_size,
                                         max_new_tokens=config.max_new_tokens,
                                         default_truncate=config.truncate == "cut")
        sampling = decoding.Sampling(parsed.temperature, parsed.top_p, parsed.seed) if parsed.do_sample else None
        decoding.check_decode_arguments(parsed.max_new_tokens, sampling, 1, best_of=parsed.best_of,
                                        score=parsed.score)  # before the model is busy
        instruction = None  # prepared inputs carry theirs; states are read back with the one the request names
        if parsed.texts is not None:
            request.state.inputs = len(parsed.texts)
            source = inputs = await state.prepare(parsed.texts, parsed.options)
        else:
            source, inputs = decoding.check_states(parsed.states, model.hidden_size), None
            request.state.inputs = source.shape[0]
            instruction = state.instruction(parsed.options)
        decoded = await state.run_model(
            lambda: inference.decode(model, source, max_new_tokens=parsed.max_new_tokens, sampling=sampling,
                                     score=parsed.score, best_of=parsed.best_of, instruction=instruction),
            weight=request.state.inputs * parsed.best_of, request=request)
        data = [{"object": "decoded", "index": i, "text": item.text, "score": item.score} if parsed.score
                else {"object": "decoded", "index": i, "text": item} for i, item in enumerate(decoded)]
        return _answer({"object": "list", "model": state.model_name, "data": data}, inputs)

    async def inspect(self, request: Request) -> Response:
        state = self.state
        body = await self.json_body(request)
        model = state.require_model()
        parsed = protocol.inspect_request(body, max_top_k=MAX_TOP_K, default_truncate=state.config.truncate == "cut")
        request.state.inputs = 1
        inputs = await state.prepare([parsed.text], parsed.options)
        lens = await state.run_model(lambda: inference.inspect(model, inputs, top_k=parsed.top_k), weight=1,
                                     request=request)
        return _answer({"object": "inspection", "model": state.model_name, **lens.to_dict()}, inputs)


def _answer(body: dict | list, inputs: Inputs | None) -> Response:
    """The JSON answer, with how many texts were cut. json.dumps directly: FastAPI's default encoder walks every
    float in Python (a third of an embeddings request's time)."""
    trace = tracing.current()
    started = time.perf_counter() if trace is not None else 0.0
    headers = {TRUNCATED_HEADER: str(len(inputs.cut))} if inputs is not None else None
    response = Response(json.dumps(body, separators=(",", ":"), ensure_ascii=False), media_type="application/json",
                        headers=headers)
    if trace is not None:
        trace.add("serialize", started, time.perf_counter(), bytes=len(response.body))
    return response


async def _api_error(request: Request, err: ApiError) -> Response:
    return _error_response(err, request.url.path)


async def _input_error(request: Request, err: InputError) -> Response:
    """The front door refused an input: 422 for a text too long with truncation off, else 400, naming the field."""
    too_long = isinstance(err, InputTooLongError)
    hint = " (over this API: send truncate: true)" if too_long else ""
    return _error_response(ApiError(422 if too_long else 400, f"{err}{hint}",
                                    param=protocol.PARAMS.get(err.param, err.param),
                                    code="input_too_long" if too_long else "invalid_value"), request.url.path)


async def _client_gone(request: Request, err: ClientDisconnect) -> Response:
    """The client hung up before its body arrived: nobody reads an answer, and it is no failure of the server's. The
    status (499) labels /metrics and the request's one access-log line; no traceback."""
    return Response(status_code=CLIENT_GONE)


async def _http_error(request: Request, err: HTTPException) -> Response:
    codes = {404: "not_found", 405: "method_not_allowed"}
    return _error_response(ApiError(err.status_code, f"{request.method} {request.url.path}: {err.detail}",
                                    code=codes.get(err.status_code)), request.url.path)


async def _internal_error(request: Request, err: Exception) -> Response:
    logger.exception("request %s %s failed", request.method, request.url.path)
    return _error_response(ApiError(500, "the server failed on this request; its log has the details.",
                                    kind="server_error", code="internal_error"), request.url.path)


class _Around:
    """Every HTTP request: the API key (before routing), then metrics and one access-log line once answered.

    A plain ASGI middleware: Starlette's `@app.middleware("http")` runs every request through extra tasks and
    memory streams, a large part of a one-text request's time.
    """

    def __init__(self, app, state: "_ServerState", route_paths: set[str]) -> None:
        self.app, self.state, self.route_paths = app, state, route_paths

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        started = time.perf_counter()
        path = scope["path"]
        scope.setdefault("state", {})["inputs"] = 0  # the handlers set request.state.inputs
        status = 500  # unless a response starts: an unhandled error is answered 500 by the outer middleware
        trace = self.state.tracer.begin(scope) if path not in OPEN_ROUTES else None  # None without tracing

        async def sending(message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            if path not in OPEN_ROUTES:
                try:
                    self.state.authorize(Headers(scope=scope).get("authorization"))
                except ApiError as err:
                    return await _error_response(err, path)(scope, receive, sending)
            await self.app(scope, receive, sending)
        finally:
            route = scope.get("route")  # set once routed; a request refused before (401) is named by its path
            label = route.path if route is not None else (path if path in self.route_paths else "unmatched")
            seconds = time.perf_counter() - started
            self.state.metrics.observe(label, status, seconds)
            if trace is not None:
                self.state.tracer.end(trace, label, status, scope["state"].get("inputs", 0))
            if access_logger.isEnabledFor(logging.INFO):
                client = scope.get("client")
                access_logger.info(json.dumps({
                    "time": round(time.time(), 3), "method": scope["method"], "path": path, "status": status,
                    "ms": round(seconds * 1000, 1), "inputs": scope["state"].get("inputs", 0),
                    "client": client[0] if client else None,
                }))


def _error_response(err: ApiError, path: str) -> Response:
    """The error in the shape of the route's dialect (OpenAI's, or TEI's or Ollama's on their routes)."""
    return dialects.error_response(err, path)


class _ServerState:
    """The model, its thread, the batcher, the limits and the metrics of one server."""

    def __init__(self, config: ServeConfig, api_key: str | None, model_name: str,
                 on_load_failure: Callable[[Exception], None] | None) -> None:
        self.config, self.model_name, self.on_load_failure = config, model_name, on_load_failure
        self.key_digest = _key_digest(api_key)
        self.model: GenVecModel | None = None
        self.ready = False
        self.failed = False
        self.started = time.time()
        self.instructions: dict[str, str] = {}
        self.prompts = protocol.Prompts(model_name, {})
        self.model_thread = ThreadPoolExecutor(1, thread_name_prefix="genvec-model")
        self.tokenizer_threads = ThreadPoolExecutor(TOKENIZER_THREADS, thread_name_prefix="genvec-tokenize")
        self.metrics = _Metrics()
        self.tracer = tracing.make_tracer(config)
        self.batcher: Batcher | None = None
        self.model_waiting = 0
        self.unfinished_bodies = 0  # requests whose bodies are still arriving (read_body)

    async def start(self, load) -> None:
        loop = asyncio.get_running_loop()
        try:
            model = load if isinstance(load, GenVecModel) else await loop.run_in_executor(self.model_thread, load)
            self.instructions = {k: v for k, v in model.config.model.instructions.items() if v}
            self.prompts = protocol.Prompts(self.model_name, {**self.instructions, **self.config.prompts})
            await loop.run_in_executor(self.model_thread, lambda: model.encode(["warm up"], show_progress=False))
        except Exception as err:
            # The details (paths, the loader's message) go to the log only, never to a client.
            logger.error("the model could not be loaded: %s", err, exc_info=not isinstance(err, GenVecError))
            self.failed = True
            if self.on_load_failure is not None:
                self.on_load_failure(err)
            return
        self.model = model
        self.batcher = Batcher(lambda ids, instruction: inference.embed(model, Inputs(ids, instruction=instruction),
                                                                        batch_size=len(ids)), self.model_thread,
                               max_batch_tokens=self.config.max_batch_tokens,
                               max_batch_texts=self.config.max_batch_texts,
                               max_queue_texts=self.config.max_queue_texts,
                               wait_seconds=self.config.batch_wait_ms / 1000, on_batch=self.metrics.batch)
        self.batcher.start()
        self.ready = True
        logger.info("genvec serve: %s ready (%s)", self.model_name, model.extra_repr())

    async def stop(self) -> None:
        if self.batcher is not None:
            await self.batcher.stop()
        self.model_thread.shutdown(wait=True)
        self.tokenizer_threads.shutdown(wait=True)
        if self.tracer.enabled:  # send the spans still waiting
            await asyncio.to_thread(self.tracer.shutdown)

    def not_ready(self) -> ApiError:
        if self.failed:
            return ApiError(503, "the model failed to load; see the server log.", kind="server_error",
                            code="model_failed")
        return ApiError(503, "the model is loading; retry shortly.", kind="server_error", code="loading",
                        headers={"Retry-After": "2"})

    def require_model(self) -> GenVecModel:
        if not self.ready:
            raise self.not_ready()
        return self.model

    def authorize(self, header: str | None) -> None:
        if self.key_digest is None:
            return
        scheme, _, given = (header or "").partition(" ")
        if scheme.lower() != "bearer" or not given:
            raise ApiError(401, "missing API key: send the header Authorization: Bearer YOUR_KEY.",
                           kind="authentication_error", code="missing_api_key")
        if not hmac.compare_digest(hashlib.sha256(given.strip().encode()).digest(), self.key_digest):
            raise ApiError(401, "invalid API key.", kind="authentication_error", code="invalid_api_key")

    async def read_body(self, request: Request) -> bytes:
        """The body, refused with 413 as soon as it passes the limit (announced or streamed); 408 when it has not
        all arrived within `body_timeout_seconds`, and 503 when it would be one more unfinished body than
        `max_unfinished_bodies` (both close the connection). Raises ClientDisconnect when the client hangs up."""
        limit = self.config.max_body_bytes
        announced = request.headers.get("content-length")
        if announced is not None and announced.isdigit() and int(announced) > limit:
            raise ApiError(413, f"the request body has {int(announced):,} bytes; the limit is {limit:,}. Send fewer "
                           "or shorter inputs per request.", code="request_too_large")
        seconds = self.config.body_timeout_seconds
        try:
            return await asyncio.wait_for(self._receive_body(request, limit), seconds)
        except asyncio.TimeoutError as err:  # the builtin TimeoutError from Python 3.11 on
            raise ApiError(408, f"the request body did not arrive within {seconds:g} seconds; send it at once (the "
                           "server's body_timeout_seconds).", code="request_timeout",
                           headers={"Connection": "close"}) from err

    async def _receive_body(self, request: Request, limit: int) -> bytes:
        """The body's chunks as they come (ASGI messages: `more_body` says whether the body is unfinished). Only
        bodies still arriving count against `max_unfinished_bodies`: one that came whole costs no waiting memory."""
        chunks, size, unfinished = [], 0, False
        try:
            while True:
                message = await request.receive()
                if message["type"] == "http.disconnect":
                    raise ClientDisconnect()
                chunk = message.get("body", b"")
                size += len(chunk)
                if size > limit:
                    raise ApiError(413, f"the request body passed the limit of {limit:,} bytes. Send fewer or "
                                   "shorter inputs per request.", code="request_too_large")
                chunks.append(chunk)
                if not message.get("more_body", False):
                    return b"".join(chunks)
                if not unfinished:
                    if self.unfinished_bodies >= self.config.max_unfinished_bodies:
                        raise ApiError(503, f"{self.unfinished_bodies} request bodies are still arriving (the "
                                       "server's max_unfinished_bodies); retry after a second.", kind="server_error",
                                       code="overloaded", headers={"Retry-After": "1", "Connection": "close"})
                    self.unfinished_bodies, unfinished = self.unfinished_bodies + 1, True
        finally:
            if unfinished:
                self.unfinished_bodies -= 1

    def instruction(self, options: protocol.TextOptions) -> str | None:
        """The instruction a request asks for (by model alias, prompt name, input_type or instruction)."""
        return self.prompts.instruction(options, functools.partial(inference.resolve_instruction, self.model))

    async def prepare(self, texts: list[str], options: protocol.TextOptions, what: str = "input") -> Inputs:
        """The texts as the model reads them (the front door; long requests in a tokenizer thread); cut ones counted.
        `what`: the texts' field in error messages."""
        trace = tracing.current()
        started = time.perf_counter() if trace is not None else 0.0
        model = self.model
        instruction = self.instruction(options)

        def prepare() -> Inputs:
            return inference.prepare(model, texts, instruction=instruction, truncate=options.truncate, what=what)

        if sum(len(text) for text in texts) <= INLINE_TOKENIZE_CHARS:  # short: no thread hand-off
            inputs = prepare()
        else:
            inputs = await asyncio.get_running_loop().run_in_executor(self.tokenizer_threads, prepare)
        if inputs.cut:
            self.metrics.truncations.inc(len(inputs.cut))
        if trace is not None:
            trace.add("tokenize", started, time.perf_counter(), texts=len(texts), tokens=inputs.num_tokens)
        return inputs

    async def embed_texts(self, texts: list[str], options: protocol.TextOptions, request: Request, *,
                          dimensions: object, normalize: bool, what: str = "input",
                          precision: str = "float32") -> tuple[np.ndarray, Inputs]:
        """An embedding route's work, whatever its dialect: `dimensions` and `precision` checked before any text is
        read, the texts prepared and embedded, truncated to `dimensions`, then normalised (OpenAI's order), then
        quantized to `precision` (`inference.check_precision`), and their tokens counted."""
        dimensions = inference.check_dimensions(self.model, dimensions)
        inference.check_precision(self.model, precision, dimensions, normalize)
        request.state.inputs = len(texts)
        inputs = await self.prepare(texts, options, what)
        vectors = inference.truncate_rows(await self.embed(inputs, request), dimensions)
        self.metrics.tokens.inc(inputs.num_tokens)
        vectors = inference.normalize_rows(vectors) if normalize else vectors
        return inference.quantize_rows(self.model, vectors, precision, dimensions, normalize), inputs

    async def embed(self, inputs: Inputs, request: Request) -> np.ndarray:
        """Embeddings of prepared texts, coalesced with other requests' texts; 429 when the queue is full. If the
        client hangs up meanwhile, its texts not yet in a batch are withdrawn (ClientDisconnect)."""
        return (await self.embed_parts([inputs], request))[0]

    async def embed_parts(self, parts: list[Inputs], request: Request) -> list[np.ndarray]:
        """`embed` of several prepared inputs at once (a query side and a document side): each is submitted with its
        instruction, so the batcher puts it only in batches that read that instruction once."""
        trace, timing, queued = tracing.current(), Timing(), time.perf_counter()
        submitted = []
        try:
            for part in parts:
                submitted.append(self.batcher.submit(part.ids, timing, key=part.instruction))
        except Overloaded as err:
            for future in submitted:
                future.cancel()
            raise ApiError(429, f"the server is busy ({err}); retry after a second.", kind="overloaded",
                           code="overloaded", headers={"Retry-After": "1"}) from err
        try:
            return await _unless_hung_up(request, asyncio.gather(*submitted))
        finally:
            if trace is not None:
                trace.add_model(queued, timing.first_start, timing.last_end, batches=timing.batches,
                                texts=sum(len(part) for part in parts), padded_tokens=timing.padded_tokens)

    async def run_model(self, work: Callable, weight: int, request: Request):
        """Run `work` in the model thread (after the batches ahead of it); 429 when too much is waiting. If the client
        hangs up before the model thread starts it, it never runs (ClientDisconnect); once started it runs to the end
        and counts as waiting until then."""
        if self.model_waiting + weight > WAITING_PER_DECODE_INPUT * self.config.max_decode_inputs:
            raise ApiError(429, "too many decode and inspect requests are waiting; retry after a second.",
                           kind="overloaded", code="overloaded", headers={"Retry-After": "1"})
        self.model_waiting += weight
        loop = asyncio.get_running_loop()
        trace, queued = tracing.current(), time.perf_counter()
        if trace is not None:
            work = timed = tracing.Timed(work)
        job = self.model_thread.submit(work)

        def finished(_) -> None:
            loop.call_soon_threadsafe(self._done_waiting, weight)

        job.add_done_callback(finished)  # withdrawn or ended, in the model thread or here
        try:
            return await _unless_hung_up(request, asyncio.wrap_future(job))
        finally:
            if trace is not None:
                trace.add_model(queued, timed.started, timed.ended, batches=1, texts=request.state.inputs)

    def _done_waiting(self, weight: int) -> None:
        self.model_waiting -= weight

    def info(self) -> dict:
        model = self.require_model()
        config = self.config
        return {
            "model": self.model_name, "backbone": model.config.model.backbone, "genvec_version": __version__,
            "embedding_dim": model.embedding_dim, "truncatable": model.truncation is not None,
            "calibrated": model.quantization is not None,
            "hidden_size": model.hidden_size,
            "num_special_tokens": model.num_special_tokens, "num_compression_tokens": model.num_compression_tokens,
            "max_length": model.config.model.max_length, "max_input_tokens": inference.text_limit(model),
            "instructions": self.instructions, "dtype": str(model.dtype).removeprefix("torch."),
            "device": str(model.device), "truncate": config.truncate, "normalize_default": True,
            "limits": {"max_inputs": config.max_inputs, "max_body_bytes": config.max_body_bytes,
                       "max_batch_tokens": config.max_batch_tokens, "max_batch_texts": config.max_batch_texts,
                       "batch_wait_ms": config.batch_wait_ms,
                       "max_queue_texts": config.max_queue_texts, "max_new_tokens": config.max_new_tokens,
                       "max_decode_inputs": config.max_decode_inputs,
                       "header_timeout_seconds": config.header_timeout_seconds,
                       "body_timeout_seconds": config.body_timeout_seconds,
                       "max_unfinished_bodies": config.max_unfinished_bodies},
            "auth": self.key_digest is not None,
            "aliases": {alias: self.prompts.named[name] for alias, name in self.prompts.aliases().items()},
            "rerank": {"max_documents": config.max_rerank_documents, "max_tokens": config.max_rerank_tokens},
            # TEI's /info fields, for clients and dashboards that read them
            "model_id": self.model_name, "model_sha": None, "model_dtype": str(model.dtype).removeprefix("torch."),
            "model_type": {"embedding": {"pooling": "genvec"}}, "max_input_length": inference.text_limit(model),
            "max_client_batch_size": config.max_inputs, "max_batch_tokens": config.max_batch_tokens,
            "max_batch_requests": config.max_batch_texts, "max_concurrent_requests": config.max_queue_texts,
            "tokenization_workers": TOKENIZER_THREADS, "auto_truncate": config.truncate == "cut",
            "version": __version__, "prompts": self.prompts.named,
        }


async def _unless_hung_up(request: Request, work: asyncio.Future):
    """`work`'s result; if the client hangs up first, `work` is cancelled (what has not started never runs) and
    ClientDisconnect raised. `work` is cancelled too when this request is (shutdown): nothing is left for the model."""
    watcher = asyncio.get_running_loop().create_task(_cancel_on_hang_up(request, work))
    try:
        return await work
    except asyncio.CancelledError:
        if watcher.done() and not watcher.cancelled():  # the client left; this request was not cancelled
            raise ClientDisconnect() from None
        raise
    finally:
        watcher.cancel()
        work.cancel()


async def _cancel_on_hang_up(request: Request, work: asyncio.Future) -> None:
    """Cancel `work` when the client hangs up, at once: a batch formed after the hang-up holds none of its texts.
    The body has been read, so the next ASGI message is the disconnect."""
    while (await request.receive())["type"] != "http.disconnect":
        pass
    work.cancel()


def _key_digest(api_key: str | None) -> bytes | None:
    """The SHA-256 of the key without the white space around it (clients' keys are stripped the same way)."""
    if api_key is None:
        return None
    if not isinstance(api_key, str):
        raise InputError(f"api_key must be a string or None, got {type(api_key).__name__}.", param="api_key")
    if not api_key.strip():
        raise InputError(f"api_key is empty or only white space ({api_key!r}); pass the key clients will send, or "
                         "None to serve without one.", param="api_key")
    return hashlib.sha256(api_key.strip().encode()).digest()


class _Metrics:
    """Prometheus metrics in a registry of this server's own."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.registry = CollectorRegistry()
        self.requests = Counter("genvec_requests", "HTTP requests by route and status", ["route", "status"],
                                registry=self.registry)
        self.latency = Histogram("genvec_request_seconds", "request latency by route", ["route"],
                                 buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
                                 registry=self.registry)
        self.batch_texts = Histogram("genvec_batch_texts", "texts per model batch",
                                     buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256), registry=self.registry)
        self.batch_tokens = Histogram("genvec_batch_padded_tokens", "padded tokens per model batch",
                                      buckets=(64, 256, 1024, 2048, 4096, 8192, 16384, 32768), registry=self.registry)
        self.queue = Gauge("genvec_queue_texts", "texts waiting for the model", registry=self.registry)
        self.tokens = Counter("genvec_input_tokens", "tokens embedded (instruction + text)", registry=self.registry)
        self.truncations = Counter("genvec_truncations", "inputs cut to the model's limit", registry=self.registry)

    def observe(self, route: str, status: int, seconds: float) -> None:
        self.requests.labels(route, str(status)).inc()
        self.latency.labels(route).observe(seconds)

    def batch(self, texts: int, padded_tokens: int) -> None:
        self.batch_texts.observe(texts)
        self.batch_tokens.observe(padded_tokens)

    def render(self, state: "_ServerState") -> bytes:
        from prometheus_client import generate_latest

        self.queue.set(state.batcher.queued if state.batcher is not None else 0)
        return generate_latest(self.registry)
