"""The other servers' routes: TEI, Ollama, Cohere embed, Cohere / Jina rerank and vLLM score, each a thin
translation onto the server's one request handling (`app._ServerState`: the body limits, the model's front door,
the batcher).

Clients of text-embeddings-inference (LlamaIndex's `TextEmbeddingsInference`, Haystack's TEI embedders), of Ollama
(its Python client, LangChain's `OllamaEmbeddings`, Weaviate's `text2vec-ollama`), of Cohere's v2 embed (its
SDK's `ClientV2.embed`, `embedding_types` int8 / uint8 / binary / ubinary included: `genvec.quantization`) and
rerankers (Cohere's SDK, LangChain and LlamaIndex rerankers, Dify, Open WebUI) reach genvec with the bodies they
already send, and read errors in the shape they already parse (`error_response`). Every route picks its instruction
the same way (`protocol.Prompts`: a model alias in `model`, TEI's `prompt_name`); rerank and score embed the query
side and the document side through the batcher and answer their cosines (`inference.relevance`, `inference.rank`),
exactly the library's `model.rerank`.

What it does not do: anything the OpenAI routes do not (no second model, no cross-encoder: a relevance score is a
cosine of two embeddings, -1 to 1, whatever `raw_scores` asks).
"""

import json
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timezone

import numpy as np
from fastapi import Request
from fastapi.responses import Response

from genvec import inference
from genvec.errors import InputError
from genvec.inference import Inputs
from genvec.serve import protocol
from genvec.serve.protocol import ApiError, TextOptions
from genvec.version import __version__

TEI_ROUTES = ("/embed", "/tokenize", "/rerank")
OLLAMA_ROUTES = ("/api/embed", "/api/tags", "/api/version")
# TEI's `error_type` for each status genvec answers (TEI answers a client's mistake with 422 "Validation").
TEI_ERROR_TYPES = {413: "Validation", 422: "Validation", 429: "Overloaded", 503: "Unhealthy", 401: "Unauthorized"}
OLLAMA_TAG = ":latest"  # Ollama names a model NAME:TAG; a name without a tag means NAME:latest


def error_response(err: ApiError, path: str) -> Response:
    """`err` in the shape the route's clients parse: TEI's `{"error", "error_type"}` (a 400 becomes TEI's 422),
    Ollama's `{"error"}`, else OpenAI's `{"error": {"message", "type", "param", "code"}}`, as ASCII JSON (a lone
    surrogate a message quotes cannot break it)."""
    status, body = err.status, err.body()
    if path in TEI_ROUTES:
        status = 422 if status == 400 else status
        kind = TEI_ERROR_TYPES.get(status, "Backend" if status >= 500 else "Validation")
        body = {"error": err.message, "error_type": kind}
    elif path in OLLAMA_ROUTES or path.startswith("/api/"):  # Ollama's other routes (/api/show) too: 404 its way
        body = {"error": err.message}
    return Response(json.dumps(body), status_code=status, headers=err.headers, media_type="application/json")


# ------------------------------------------------------------------------------------------------- bodies


@dataclass(frozen=True)
class RerankRequest:
    query: str
    documents: list[str]
    options: TextOptions  # the query's: a model alias binds it; documents are always the document side
    top_n: int | None
    return_documents: bool
    documents_field: str = "documents"


@dataclass(frozen=True)
class ScoreRequest:
    queries: list[str]  # one, or one per document
    documents: list[str]
    options: TextOptions


@dataclass(frozen=True)
class TeiEmbedRequest:
    texts: list[str]
    options: TextOptions
    normalize: bool
    dimensions: int | None = None  # as sent: the front door checks it against the model


def tei_embed_request(body: dict, *, max_inputs: int, default_truncate: bool) -> TeiEmbedRequest:
    """TEI's `/embed`: `inputs` (a string or strings), `normalize` (default true), `truncate`,
    `truncation_direction` ("Right": genvec keeps a text's first tokens), `prompt_name`, `dimensions`."""
    protocol.known(body, {"inputs", "normalize", "truncate", "truncation_direction", "prompt_name", "dimensions"})
    texts = _texts(body, "inputs", max_inputs)
    return TeiEmbedRequest(texts, _tei_options(body, default_truncate), protocol.boolean(body, "normalize", True),
                           protocol.dimensions(body))


def tei_tokenize_request(body: dict, *, max_inputs: int) -> tuple[list[str], TextOptions, bool]:
    """TEI's `/tokenize`: `inputs`, `add_special_tokens` (default true), `prompt_name`."""
    protocol.known(body, {"inputs", "add_special_tokens", "prompt_name"})
    texts = _texts(body, "inputs", max_inputs)
    protocol.string(body, "prompt_name")
    return texts, TextOptions(None, None, "cut", None, body.get("prompt_name")), protocol.boolean(
        body, "add_special_tokens", True)


def tei_rerank_request(body: dict, *, max_documents: int, default_truncate: bool) -> RerankRequest:
    """TEI's `/rerank`: `query`, `texts`, `return_text`, `raw_scores` (accepted: the score is a cosine either way),
    `truncate`, `truncation_direction`."""
    protocol.known(body, {"query", "texts", "return_text", "raw_scores", "truncate", "truncation_direction"})
    query = _query(body)
    documents = _texts(body, "texts", max_documents, list_only=True)
    protocol.boolean(body, "raw_scores", False)
    return RerankRequest(query, documents, _tei_options(body, default_truncate), None,
                         protocol.boolean(body, "return_text", False), "texts")


def rerank_request(body: dict, *, max_documents: int, default_truncate: bool, return_documents: bool) -> RerankRequest:
    """Cohere's and Jina's rerank: `model` (an alias binds the query's instruction), `query`, `documents` (strings,
    or objects with `text`), `top_n`, `return_documents`, `max_tokens_per_doc` / `truncate` (documents are cut to
    the model's limit unless truncate is false)."""
    protocol.known(body, {"model", "query", "documents", "top_n", "return_documents", "max_tokens_per_doc", "truncate",
                  "input_type", "instruction", "rank_fields", "max_chunks_per_doc", "priority"})
    query = _query(body)
    documents = _documents(body, max_documents)
    top_n = body.get("top_n")
    if top_n is not None and (not protocol.is_int(top_n) or top_n < 1):
        raise ApiError(400, f"top_n must be an integer of 1 or more, got {top_n!r:.40}.", param="top_n",
                       code="invalid_value")
    limit = body.get("max_tokens_per_doc")
    if limit is not None and (not protocol.is_int(limit) or limit < 1):
        raise ApiError(400, f"max_tokens_per_doc must be an integer of 1 or more, got {limit!r:.40} (genvec cuts "
                       "documents at the model's own limit).", param="max_tokens_per_doc", code="invalid_value")
    return RerankRequest(query, documents, protocol.text_options(body, default_truncate), top_n,
                         protocol.boolean(body, "return_documents", return_documents))


def score_request(body: dict, *, max_documents: int, default_truncate: bool, text_limit: int) -> ScoreRequest:
    """vLLM's score: `text_1` (the query side: one text, or one per `text_2` item) and `text_2` (the document side:
    one text or a list), `model`, `truncate_prompt_tokens` (accepted when it is not below the model's limit: genvec
    cuts at its own)."""
    protocol.known(body, {"model", "text_1", "text_2", "truncate_prompt_tokens", "encoding_format", "user", "truncate",
                  "input_type", "instruction"})
    queries = _texts(body, "text_1", max_documents)
    documents = _texts(body, "text_2", max_documents)
    if len(queries) not in (1, len(documents)):
        raise ApiError(400, f"text_1 holds {len(queries)} texts and text_2 {len(documents)}: give one text_1 for "
                       "every text_2, or a single text_1 to score against each.", param="text_1",
                       code="invalid_value")
    limit = body.get("truncate_prompt_tokens")  # vLLM: cut to this many tokens (-1: the model's limit)
    if limit is not None and (not protocol.is_int(limit) or (limit != -1 and limit < text_limit)):
        raise ApiError(400, f"truncate_prompt_tokens={limit!r:.40} is not supported: genvec cuts a text at the "
                       f"model's own limit of {text_limit} tokens (instruction included); send -1 or a number of at "
                       f"least {text_limit}, or leave it out.", param="truncate_prompt_tokens",
                       code="unsupported_value")
    return ScoreRequest(queries, documents, protocol.text_options(body, default_truncate or limit is not None))


def ollama_embed_request(body: dict, *, max_inputs: int) -> tuple[list[str], TextOptions, int | None]:
    """Ollama's `/api/embed`: `model` (required; a `:latest` tag is dropped), `input`, `truncate` (default true, as
    Ollama's), `dimensions` (as sent: the front door checks it), and `keep_alive` and `options` (accepted: the model
    stays loaded)."""
    protocol.known(body, {"model", "input", "truncate", "dimensions", "keep_alive", "options"})
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise ApiError(400, "model is required: this server's model or one of its aliases (GET /api/tags lists "
                       "them).", param="model", code="invalid_value")
    texts = _texts(body, "input", max_inputs)
    dimensions = protocol.dimensions(body)
    if body.get("options") is not None and not isinstance(body["options"], dict):
        raise ApiError(400, f"options must be an object, got {type(body['options']).__name__}.", param="options",
                       code="invalid_type")
    truncate = protocol.boolean(body, "truncate", True)
    return texts, TextOptions(None, None, "cut" if truncate else "error", model.removesuffix(OLLAMA_TAG)), dimensions


@dataclass(frozen=True)
class CohereEmbedRequest:
    texts: list[str]
    options: TextOptions
    types: list[str]  # the embedding types asked for, the keys of the answer's `embeddings`
    dimensions: int | None = None  # output_dimension as sent: the front door checks it against the model


# Cohere's embedding types: the precisions, and "base64" (the float embedding's little-endian float32 bytes).
COHERE_EMBEDDING_TYPES = (*protocol.PRECISIONS, "base64")


def cohere_embed_request(body: dict, *, max_inputs: int) -> CohereEmbedRequest:
    """Cohere v2's `/v2/embed`: `model` (an alias binds the instruction), `input_type` (search_query and
    search_document: the sides), `texts`, `embedding_types` (default float), `output_dimension` (genvec's
    `dimensions`), `truncate` ("END", the default, cuts a long text's end; "NONE" refuses it), `max_tokens` and
    `priority` (accepted; genvec cuts at the model's own limit). `images` and `inputs` are refused: genvec embeds
    texts."""
    protocol.known(body, {"model", "input_type", "texts", "images", "inputs", "embedding_types", "output_dimension",
                          "truncate", "max_tokens", "priority"})
    for name in ("images", "inputs"):
        if name in body:
            raise ApiError(400, f"{name} is not supported: genvec embeds texts; send them in texts.", param=name,
                           code="invalid_value")
    texts = _texts(body, "texts", max_inputs, list_only=True)
    types = body.get("embedding_types", ["float"])
    if not isinstance(types, list) or not types or not all(isinstance(kind, str) for kind in types):
        raise ApiError(400, f"embedding_types must be a non-empty list of {', '.join(COHERE_EMBEDDING_TYPES)}, got "
                       f"{types!r:.60}.", param="embedding_types", code="invalid_value")
    for kind in types:
        if kind != "base64":
            protocol.precision(kind, "embedding_types")
    truncate = body.get("truncate", "END")
    if truncate not in ("END", "NONE"):
        raise ApiError(400, f"truncate must be \"END\" (cut a long text's end, as genvec does) or \"NONE\" (refuse "
                       f"it), got {truncate!r:.40}.", param="truncate", code="invalid_value")
    for name in ("max_tokens", "output_dimension"):
        value = body.get(name)
        if value is not None and (not protocol.is_int(value) or value < 1):
            raise ApiError(400, f"{name} must be an integer of 1 or more, got {value!r:.40}.", param=name,
                           code="invalid_value")
    for name in ("model", "input_type"):
        protocol.string(body, name)
    options = TextOptions(None, protocol.side(body.get("input_type")), "cut" if truncate == "END" else "error",
                          body.get("model"))
    return CohereEmbedRequest(texts, options, list(dict.fromkeys(types)), body.get("output_dimension"))


def _tei_options(body: dict, default_truncate: bool) -> TextOptions:
    protocol.string(body, "prompt_name")
    direction = body.get("truncation_direction", "Right")
    if direction not in ("Right", "right"):
        raise ApiError(400, f"truncation_direction {direction!r:.40} is not supported: genvec keeps a long text's "
                       "first tokens (\"Right\").", param="truncation_direction", code="invalid_value")
    truncate = protocol.boolean(body, "truncate", default_truncate)
    return TextOptions(None, None, "cut" if truncate else "error", None, body.get("prompt_name"))


def _texts(body: dict, name: str, limit: int, *, list_only: bool = False) -> list[str]:
    if name not in body:
        raise ApiError(400, f"{name} is required: {'a list of strings' if list_only else 'a string or strings'}.",
                       param=name, code="missing_input")
    if list_only and not isinstance(body[name], list):
        raise ApiError(400, f"{name} must be a list of strings, got {type(body[name]).__name__}.", param=name,
                       code="invalid_type")
    return protocol.texts(body[name], name, limit)


def _query(body: dict) -> str:
    query = body.get("query")
    if not isinstance(query, str) or not query.strip():
        raise ApiError(400, f"query must be one non-empty string, got {query!r:.60}.", param="query",
                       code="invalid_value")
    return query


def _documents(body: dict, limit: int) -> list[str]:
    """Cohere's and Jina's documents: strings, or objects whose `text` is the document."""
    value = body.get("documents")
    if not isinstance(value, list):
        raise ApiError(400, f"documents must be a list of strings (or of objects with a text field), got "
                       f"{type(value).__name__}.", param="documents", code="invalid_type")
    texts = []
    for index, item in enumerate(value):
        if isinstance(item, dict):
            if not isinstance(item.get("text"), str):
                raise ApiError(400, f"documents[{index}] is an object without a text string (genvec ranks the text "
                               "field).", param="documents", code="invalid_value")
            item = item["text"]
        texts.append(item)
    return protocol.texts(texts, "documents", limit)




# ------------------------------------------------------------------------------------------------- routes


class DialectRoutes:
    """The handlers of the other servers' routes, on the server's state (`app._ServerState`)."""

    def __init__(self, state, json_body: Callable[[Request], Awaitable[dict]],
                 answer: Callable[[object, Inputs | None], Response]) -> None:
        self.state, self.json_body, self.answer = state, json_body, answer

    def table(self) -> list[tuple[str, str, Callable]]:
        return [("/embed", "POST", self.tei_embed), ("/tokenize", "POST", self.tei_tokenize),
                ("/rerank", "POST", self.tei_rerank), ("/v1/rerank", "POST", self.rerank_v1),
                ("/v2/rerank", "POST", self.rerank_v2), ("/v1/score", "POST", self.score),
                ("/score", "POST", self.score), ("/api/embed", "POST", self.ollama_embed),
                ("/api/tags", "GET", self.ollama_tags), ("/api/version", "GET", self.ollama_version),
                ("/v2/embed", "POST", self.cohere_embed)]

    # TEI

    async def tei_embed(self, request: Request) -> Response:
        state = self.state
        body = await self.json_body(request)
        state.require_model()
        parsed = tei_embed_request(body, max_inputs=state.config.max_inputs,
                                   default_truncate=state.config.truncate == "cut")
        vectors, inputs = await state.embed_texts(parsed.texts, parsed.options, request, dimensions=parsed.dimensions,
                                                  normalize=parsed.normalize, what="inputs")
        return self.answer(vectors.tolist(), inputs)

    async def tei_tokenize(self, request: Request) -> Response:
        state = self.state
        body = await self.json_body(request)
        model = state.require_model()
        texts, options, special = tei_tokenize_request(body, max_inputs=state.config.max_inputs)
        request.state.inputs = len(texts)
        inputs = await state.prepare(texts, options, "inputs")
        return self.answer([_tokens(model.tokenizer, ids, special) for ids in inputs.ids], inputs)

    async def tei_rerank(self, request: Request) -> Response:
        body = await self.json_body(request)
        self.state.require_model()
        parsed = tei_rerank_request(body, max_documents=self.state.config.max_rerank_documents,
                                    default_truncate=self.state.config.truncate == "cut")
        ranked, inputs = await self._rank(parsed, request)
        return self.answer([{"index": hit.index, "score": hit.score,
                             **({"text": parsed.documents[hit.index]} if parsed.return_documents else {})}
                            for hit in ranked], inputs)

    # Cohere / Jina

    async def rerank_v1(self, request: Request) -> Response:
        return await self._rerank(request, return_documents=True)

    async def rerank_v2(self, request: Request) -> Response:
        return await self._rerank(request, return_documents=False)

    async def _rerank(self, request: Request, return_documents: bool) -> Response:
        body = await self.json_body(request)
        self.state.require_model()
        # Cohere and Jina cut long documents (to max_tokens_per_doc) unless told otherwise: so does genvec, at the
        # model's limit, whatever serve.truncate says (a request's truncate: false still refuses them).
        parsed = rerank_request(body, max_documents=self.state.config.max_rerank_documents, default_truncate=True,
                                return_documents=return_documents)
        ranked, inputs = await self._rank(parsed, request)
        results = [{"index": hit.index, "relevance_score": hit.score,
                    **({"document": {"text": parsed.documents[hit.index]}} if parsed.return_documents else {})}
                   for hit in ranked]
        return self.answer({"id": f"rerank-{uuid.uuid4().hex}", "model": self.state.model_name, "results": results,
                            "usage": {"total_tokens": inputs.num_tokens},
                            "meta": {"billed_units": {"search_units": 1}}}, inputs)

    async def cohere_embed(self, request: Request) -> Response:
        state = self.state
        body = await self.json_body(request)
        model = state.require_model()
        parsed = cohere_embed_request(body, max_inputs=state.config.max_inputs)
        dimensions = _cohere_checked(lambda: inference.check_dimensions(model, parsed.dimensions), "output_dimension")
        for kind in parsed.types:  # every type checked before any text is read
            if kind != "base64":
                _cohere_checked(lambda kind=kind: inference.check_precision(model, protocol.PRECISIONS[kind],
                                                                            dimensions, True), "embedding_types")
        vectors, inputs = await state.embed_texts(parsed.texts, parsed.options, request, dimensions=dimensions,
                                                  normalize=True, what="texts")  # Cohere's embeddings: unit length
        embeddings = {kind: [protocol.encode_vector(vector, True) for vector in vectors] if kind == "base64" else
                      inference.quantize_rows(model, vectors, protocol.PRECISIONS[kind], dimensions, True).tolist()
                      for kind in parsed.types}
        return self.answer({"id": f"embed-{uuid.uuid4().hex}", "embeddings": embeddings, "texts": parsed.texts,
                            "meta": {"api_version": {"version": "2"},
                                     "billed_units": {"input_tokens": inputs.num_tokens}},
                            "response_type": "embeddings_by_type"}, inputs)

    # vLLM

    async def score(self, request: Request) -> Response:
        state = self.state
        body = await self.json_body(request)
        state.require_model()
        parsed = score_request(body, max_documents=state.config.max_rerank_documents,
                               default_truncate=state.config.truncate == "cut",
                               text_limit=inference.text_limit(state.model))
        scores, inputs = await self._relevance(parsed.queries, parsed.documents, parsed.options, request,
                                               ("text_1", "text_2"))
        pairs = scores[0] if len(parsed.queries) == 1 else np.diagonal(scores)
        return self.answer({"id": f"score-{uuid.uuid4().hex}", "object": "list", "created": int(time.time()),
                            "model": state.model_name,
                            "data": [{"index": i, "object": "score", "score": float(s)} for i, s in enumerate(pairs)],
                            "usage": {"prompt_tokens": inputs.num_tokens, "total_tokens": inputs.num_tokens}}, inputs)

    # Ollama

    async def ollama_embed(self, request: Request) -> Response:
        state = self.state
        started = time.perf_counter_ns()
        body = await self.json_body(request)
        state.require_model()
        texts, options, dimensions = ollama_embed_request(body, max_inputs=state.config.max_inputs)
        names = {state.model_name, *state.prompts.aliases()}
        if options.model not in names:
            raise ApiError(404, f"model {body['model']!r:.120} not found; this server serves "
                           f"{', '.join(sorted(names))}.", param="model", code="model_not_found")
        vectors, inputs = await state.embed_texts(texts, options, request, dimensions=dimensions,
                                                  normalize=True)  # Ollama's /api/embed normalises
        return self.answer({"model": body["model"], "embeddings": vectors.tolist(),
                            "total_duration": time.perf_counter_ns() - started, "load_duration": 0,
                            "prompt_eval_count": inputs.num_tokens}, inputs)

    async def ollama_tags(self) -> dict:
        state = self.state
        model = state.require_model()
        details = {"format": "genvec", "family": model.backbone.config.model_type,
                   "families": [model.backbone.config.model_type],
                   "parameter_size": f"{sum(p.numel() for p in model.backbone.parameters()) / 1e6:.0f}M",
                   "quantization_level": str(model.dtype).removeprefix("torch.").upper()}
        modified = datetime.fromtimestamp(state.started, timezone.utc).isoformat()
        return {"models": [{"name": name + OLLAMA_TAG, "model": name + OLLAMA_TAG, "modified_at": modified,
                            "size": 0, "digest": inference.identity(model), "details": details}
                           for name in (state.model_name, *state.prompts.aliases())]}

    async def ollama_version(self) -> dict:
        return {"version": __version__}

    # shared

    async def _rank(self, parsed: RerankRequest, request: Request) -> tuple[list[inference.Ranked], Inputs]:
        scores, inputs = await self._relevance([parsed.query], parsed.documents, parsed.options, request,
                                               ("query", parsed.documents_field))
        return inference.rank(scores[0], parsed.top_n), inputs

    async def _relevance(self, queries: list[str], documents: list[str], options: TextOptions, request: Request,
                         fields: tuple[str, str]) -> tuple[np.ndarray, Inputs]:
        """Cosines (len(queries), len(documents)) of the query side (the instruction `options` ask for, else the
        model's query one) and the document side, embedded through the batcher (each side in batches of its own
        instruction). `fields`: the request's names of the two, for errors. The inputs returned count both sides."""
        state = self.state
        request.state.inputs = len(queries) + len(documents)
        if state.instruction(options) is None:
            options = TextOptions(None, "query", options.truncate, options.model, options.prompt_name)
        asked = await state.prepare(queries, options, fields[0])
        passages = await state.prepare(documents, TextOptions(None, "document", options.truncate), fields[1])
        inputs = Inputs(asked.ids + passages.ids, cut=asked.cut + tuple(len(asked) + i for i in passages.cut))
        if inputs.num_tokens > state.config.max_rerank_tokens:
            raise ApiError(422, f"the query and documents hold {inputs.num_tokens:,} tokens (instructions included); "
                           f"this server ranks at most {state.config.max_rerank_tokens:,} per request: send fewer "
                           "or shorter documents.", param=fields[1], code="too_many_tokens")
        query_vectors, document_vectors = await state.embed_parts([asked, passages], request)
        state.metrics.tokens.inc(inputs.num_tokens)
        return inference.relevance(query_vectors, document_vectors), inputs


def _cohere_checked(check: Callable[[], object], field: str):
    """`check()`, its InputError a 400 naming Cohere's field."""
    try:
        return check()
    except InputError as err:
        raise ApiError(400, str(err), param=field, code="invalid_value") from err


def _tokens(tokenizer, ids: list[int], special: bool) -> list[dict]:
    """TEI's tokens of one input: id, text, whether it is a special token of the tokenizer, and start/stop (None:
    genvec does not map tokens back to characters)."""
    specials = set(tokenizer.all_special_ids)
    return [{"id": token, "text": tokenizer.decode([token]), "special": token in specials, "start": None,
             "stop": None} for token in ids if special or token not in specials]
