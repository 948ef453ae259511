"""The HTTP API's request bodies, checked by hand so every mistake gets the OpenAI error shape with the field named.

OpenAI's clients read `{"error": {"message", "type", "param", "code"}}` and retry 429 and 5xx, so a client's mistake
is always a 4xx: 400 for a malformed body or a wrong value (JSON nested too deeply included), 413 for an oversized
body (the app), 415 for a body not sent as `application/json`, 422 for a limit (too many inputs, an input too long
with truncation off), 401 for a missing or wrong key (the app).

Only the wire is checked here: JSON types, the fields a route takes, the server's own limits (inputs per request,
`max_new_tokens`, `top_k`) and the states' encoding. What the model accepts (an instruction or a side, the length
of a text, `dimensions`, the sampling numbers, the states' shape) is the front door's to check (`genvec.inference`,
`genvec.decode`); its `InputError` names the parameter, which the app maps to the field (`PARAMS`).

What it does not do: tokenise or run the model (`genvec.serve.app` does).
"""

import base64
import binascii
import itertools
import json
from dataclasses import dataclass
from typing import Any

import numpy as np

EMBEDDING_FIELDS = {"input", "model", "encoding_format", "dimensions", "user", "input_type", "instruction",
                    "prompt_name", "normalize", "truncate", "output_dtype"}
DECODE_FIELDS = {"input", "states", "model", "input_type", "instruction", "max_new_tokens", "do_sample",
                 "temperature", "top_p", "seed", "truncate", "score", "best_of"}
INSPECT_FIELDS = {"input", "model", "top_k", "truncate"}
JSON_MEDIA_TYPE = "application/json"


class ApiError(Exception):
    """A request the server refuses: HTTP status and the OpenAI error fields."""

    def __init__(self, status: int, message: str, *, param: str | None = None, code: str | None = None,
                 kind: str = "invalid_request_error", headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.status, self.message, self.param, self.code, self.kind = status, message, param, code, kind
        self.headers = headers or {}

    def body(self) -> dict:
        return {"error": {"message": self.message, "type": self.kind, "param": self.param, "code": self.code}}


# The front door's parameter names, as this API calls them.
PARAMS = {"texts": "input", "text": "input", "side": "input_type", "precision": "output_dtype"}
# Voyage's `output_dtype` and Cohere's `embedding_types` values, and the precision (`genvec.quantization`) each means.
PRECISIONS = {"float": "float32", "int8": "int8", "uint8": "uint8", "binary": "binary", "ubinary": "ubinary"}
# The `input_type` values clients send (OpenAI-style extra field, NVIDIA NIM, Voyage, Cohere, Jina) and the side of
# the model each means.
SIDES = {"query": "query", "search_query": "query", "retrieval.query": "query",
         "document": "document", "passage": "document", "search_document": "document",
         "retrieval.passage": "document"}


@dataclass(frozen=True)
class TextOptions:
    """How a request's texts are turned into model input: the instruction it asks for (an instruction, a side, a
    model alias or a prompt name: `Prompts.instruction` picks one), and whether long ones may be cut ("cut") or are
    refused ("error")."""

    instruction: str | None
    side: str | None
    truncate: str
    model: str | None = None
    prompt_name: str | None = None


@dataclass(frozen=True)
class Prompts:
    """The instructions a request may name: the model's own (`query`, `document`) and the server's `serve.prompts`.
    Each is also a model alias, `MODEL-NAME`: clients that send only `model` and `input` pick it by name."""

    model_name: str
    named: dict[str, str]
    """Instruction by prompt name."""

    def aliases(self) -> dict[str, str]:
        """Model alias -> prompt name."""
        return {f"{self.model_name}-{name}": name for name in self.named}

    def instruction(self, options: TextOptions, model_instruction) -> str | None:
        """The instruction `options` ask for, None for none. `model_instruction(instruction=, side=)` is the front
        door's `resolve_instruction` for this model (its errors name the field). A request may name its instruction
        in several ways (model alias, prompt_name, input_type or instruction) as long as they agree.

        Raises:
            ApiError: 404 for a `model` that looks like an alias of this model but is none, 400 for an unknown
                prompt_name or when two ways name different instructions.
        """
        asked = []  # (how it was named, the instruction)
        alias = self._alias(options.model)
        if alias is not None:
            asked.append((f"model {options.model!r}", self.named[alias]))
        if options.prompt_name is not None:
            if options.prompt_name not in self.named:
                raise ApiError(400, f"prompt_name {options.prompt_name!r:.80} is not one of this server's prompts: "
                               f"{', '.join(sorted(self.named))}.", param="prompt_name", code="invalid_value")
            asked.append((f"prompt_name {options.prompt_name!r}", self.named[options.prompt_name]))
        explicit = model_instruction(instruction=options.instruction, side=options.side)
        if explicit is not None:
            how = f"input_type (the {options.side} side)" if options.side is not None else "instruction"
            asked.append((how, explicit))
        for (first, instruction), (second, other) in itertools.pairwise(asked):
            if other != instruction:
                raise ApiError(400, f"{first} asks for the instruction {instruction!r:.120} but {second} asks for "
                               f"{other!r:.120}; send one of them.", param="model" if alias else "prompt_name",
                               code="conflicting_instructions")
        return asked[0][1] if asked else None

    def _alias(self, model: str | None) -> str | None:
        """The prompt name `model` is an alias of; None for the model's own name or a name of another kind (reported,
        never followed, as before aliases). A name that starts like an alias but is none is refused: a typo would
        silently embed without the instruction the client meant."""
        if model is None or model == self.model_name:
            return None
        prefix = f"{self.model_name}-"
        if model.startswith(prefix):
            name = model[len(prefix):]
            if name not in self.named:
                raise ApiError(404, f"the model {model!r:.120} does not exist; this server serves "
                               f"{self.model_name!r} and its aliases {', '.join(sorted(self.aliases()))}.",
                               param="model", code="model_not_found")
            return name
        return None


@dataclass(frozen=True)
class EmbeddingRequest:
    texts: list[str]
    options: TextOptions
    base64: bool
    normalize: bool
    dimensions: int | None = None  # as sent (an int): the front door checks it against the model
    precision: str = "float32"  # Voyage's output_dtype, as a `genvec.quantization` precision


@dataclass(frozen=True)
class InspectRequest:
    text: str
    top_k: int
    options: TextOptions


@dataclass(frozen=True)
class DecodeRequest:
    texts: list[str] | None
    states: list[np.ndarray] | None  # (K, H) float32 each, shapes checked by the front door
    options: TextOptions
    max_new_tokens: int
    do_sample: bool
    temperature: object  # as sent: the front door checks the sampling numbers
    top_p: object
    seed: object
    score: bool = False
    best_of: int = 1


def check_content_type(value: str | None) -> None:
    """415 unless the body is declared `application/json` (parameters such as `charset=utf-8` aside). A browser
    sends a cross-site POST without asking the server first only as text/plain, a form or multipart, so refusing
    those also keeps web pages away from a server without a key."""
    media_type = (value or "").split(";", 1)[0].strip().lower()
    if media_type != JSON_MEDIA_TYPE:
        shown = f"Content-Type {value[:100]!r}" if value else "no Content-Type"
        raise ApiError(415, f"the request body must be JSON sent with Content-Type: {JSON_MEDIA_TYPE}; got {shown}.",
                       code="unsupported_media_type")


def parse_json(raw: bytes) -> dict:
    """The request body as a JSON object; 400 when it is not UTF-8 JSON, nested too deeply to parse, or not an
    object."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ApiError(400, f"the request body is not UTF-8 ({err.reason} at byte {err.start}).",
                       code="invalid_json") from err
    try:
        body = json.loads(text, parse_constant=_refuse_constant)
    except ValueError as err:
        raise ApiError(400, f"the request body is not valid JSON ({err}).", code="invalid_json") from err
    except RecursionError as err:  # the parser recurses once per level: [[[[...]]]] a thousand deep
        raise ApiError(400, "the request body is JSON nested too deeply to read (about a thousand levels); no field "
                       "of this API nests more than four.", code="invalid_json") from err
    if not isinstance(body, dict):
        raise ApiError(400, f"the request body must be a JSON object, got {type(body).__name__}.", code="invalid_json")
    return body


def embedding_request(body: dict, *, max_inputs: int, default_truncate: bool) -> EmbeddingRequest:
    known(body, EMBEDDING_FIELDS)
    texts = _texts(body, max_inputs)
    encoding = body.get("encoding_format", "float")
    if encoding not in ("float", "base64"):
        raise ApiError(400, f"encoding_format must be \"float\" or \"base64\", got {encoding!r}.",
                       param="encoding_format", code="invalid_value")
    normalize = boolean(body, "normalize", True)
    string(body, "user")
    return EmbeddingRequest(texts, text_options(body, default_truncate), encoding == "base64", normalize,
                            dimensions(body), precision(body.get("output_dtype", "float"), "output_dtype"))


def decode_request(body: dict, *, max_inputs: int, max_new_tokens: int, hidden_size: int,
                   default_truncate: bool) -> DecodeRequest:
    known(body, DECODE_FIELDS)
    if ("input" in body) == ("states" in body):
        raise ApiError(400, "give exactly one of input (texts to embed and decode) and states (compression states, "
                       "K x H each).", param="input", code="invalid_value")
    texts = _texts(body, max_inputs) if "input" in body else None
    states = _states(body["states"], max_inputs, hidden_size) if "states" in body else None
    limit = body.get("max_new_tokens", 128)
    if not is_int(limit) or not 1 <= limit <= max_new_tokens:
        raise ApiError(400, f"max_new_tokens must be an integer from 1 to {max_new_tokens}, got {limit!r}.",
                       param="max_new_tokens", code="invalid_value")
    best_of = body.get("best_of", 1)
    if not is_int(best_of) or best_of < 1:
        raise ApiError(400, f"best_of must be an integer of 1 or more, got {best_of!r:.40}.", param="best_of",
                       code="invalid_value")
    count = len(texts if texts is not None else states)
    if best_of > max_inputs // count:  # the model decodes every candidate: the per-request limit counts them all
        raise ApiError(422, f"{count} inputs x best_of {best_of!r:.40} candidates is more than the {max_inputs} this "
                       "server decodes per request: send fewer inputs or a smaller best_of.", param="best_of",
                       code="too_many_inputs")
    return DecodeRequest(texts, states, text_options(body, default_truncate), limit, boolean(body, "do_sample", False),
                         body.get("temperature", 1.0), body.get("top_p", 1.0), body.get("seed"),
                         boolean(body, "score", False), best_of)


def inspect_request(body: dict, *, max_top_k: int, default_truncate: bool) -> InspectRequest:
    known(body, INSPECT_FIELDS)
    text = body.get("input")
    if not isinstance(text, str) or not text.strip():
        raise ApiError(400, "input must be one non-empty string.", param="input", code="invalid_value")
    top_k = body.get("top_k", 10)
    if not is_int(top_k) or not 1 <= top_k <= max_top_k:
        raise ApiError(400, f"top_k must be an integer from 1 to {max_top_k}, got {top_k!r}.", param="top_k",
                       code="invalid_value")
    string(body, "model")
    truncate = boolean(body, "truncate", default_truncate)
    return InspectRequest(text, top_k, TextOptions(None, None, "cut" if truncate else "error"))


def encode_vector(vector: np.ndarray, as_base64: bool) -> list[float] | list[int] | str:
    """An embedding in the response: a list of floats, or base64 of its little-endian float32 bytes; a quantized
    one (int8 or uint8 codes, packed bits) a list of integers, or base64 of its bytes (one per code or 8 bits)."""
    quantized = vector.dtype.kind in "iu"
    if as_base64:
        data = vector if quantized else np.ascontiguousarray(vector, dtype="<f4")
        return base64.b64encode(np.ascontiguousarray(data).tobytes()).decode("ascii")
    return vector.tolist() if quantized else vector.astype(np.float32).tolist()


def precision(value: object, name: str) -> str:
    """The precision a Voyage `output_dtype` or a Cohere embedding type names (`PRECISIONS`); 400 for another."""
    if not isinstance(value, str) or value not in PRECISIONS:
        raise ApiError(400, f"{name} must be one of {', '.join(PRECISIONS)}, got {value!r:.40}: float for the "
                       "embedding, int8/uint8 for a byte per coordinate, binary/ubinary for its signs packed 8 per "
                       "byte.", param=name, code="invalid_value")
    return PRECISIONS[value]


# ------------------------------------------------------------------------------------------------- fields


def known(body: dict, allowed: set[str]) -> None:
    unknown = sorted(_shown(name) for name in set(body) - allowed)
    if unknown:
        raise ApiError(400, f"unrecognized request argument supplied: {', '.join(unknown)} (this route takes "
                       f"{', '.join(sorted(allowed))}).", param=unknown[0], code="unknown_parameter")


def _texts(body: dict, max_inputs: int) -> list[str]:
    if "input" not in body:
        raise ApiError(400, "input is required: a string or a list of strings.", param="input", code="missing_input")
    return texts(body["input"], "input", max_inputs)


def texts(value: Any, name: str, max_inputs: int) -> list[str]:
    """The field `name`'s texts: a string or a list of 1 to `max_inputs` strings, none blank (400; 422 for too
    many)."""
    items = [value] if isinstance(value, str) else value
    if not isinstance(items, list):
        raise ApiError(400, f"{name} must be a string or a list of strings, got {type(value).__name__}.",
                       param=name, code="invalid_type")
    if not items:
        raise ApiError(400, f"{name} is an empty list; send at least one text.", param=name, code="empty_input")
    if len(items) > max_inputs:
        raise ApiError(422, f"{name} holds {len(items)} texts; this server takes at most {max_inputs} per request "
                       "(it batches them itself); send the rest in further requests.", param=name,
                       code="too_many_inputs")
    for index, text in enumerate(items):
        if not isinstance(text, str):
            hint = (" Token ids are not accepted (the server tokenises with the model's own tokenizer); with "
                    "LangChain's OpenAIEmbeddings pass check_embedding_ctx_length=False.") if is_int(text) or (
                isinstance(text, list) and all(is_int(x) for x in text)) else ""
            raise ApiError(400, f"{name}[{index}] is {type(text).__name__}, not a string.{hint}", param=name,
                           code="invalid_type")
        if not text.strip():
            raise ApiError(400, f"{name}[{index}] is empty or only whitespace; every text needs content.",
                           param=name, code="empty_input")
    return items


def _states(value: Any, max_inputs: int, hidden_size: int) -> list[np.ndarray]:
    """Compression states: a list of K x H nested lists, or of base64 strings of K*H little-endian float32."""
    if not isinstance(value, list) or not value:
        raise ApiError(400, "states must be a non-empty list (one K x H state per item).", param="states",
                       code="invalid_type")
    if len(value) > max_inputs:
        raise ApiError(422, f"states holds {len(value)} items; at most {max_inputs} per request.", param="states",
                       code="too_many_inputs")
    rows = []
    for index, item in enumerate(value):
        if not isinstance(item, str):
            rows.append(item)  # nested lists: the front door reads and checks them
            continue
        try:
            array = np.frombuffer(base64.b64decode(item, validate=True), dtype="<f4")
        except (binascii.Error, ValueError) as err:
            raise ApiError(400, f"states[{index}] is not base64 of float32 values ({err}).", param="states",
                           code="invalid_value") from err
        if array.size == 0 or array.size % hidden_size:
            raise ApiError(400, f"states[{index}] holds {array.size} float32 values, not K x {hidden_size} (this "
                           "model's hidden size).", param="states", code="invalid_value")
        rows.append(array.reshape(-1, hidden_size))
    return rows


def text_options(body: dict, default_truncate: bool) -> TextOptions:
    for name in ("input_type", "instruction", "prompt_name", "model"):
        string(body, name)
    truncate = boolean(body, "truncate", default_truncate)
    return TextOptions(body.get("instruction"), side(body.get("input_type")), "cut" if truncate else "error",
                       body.get("model"), body.get("prompt_name"))


def side(input_type: str | None) -> str | None:
    """The model side an `input_type` means (`SIDES`); 400 for another value."""
    if input_type is None:
        return None
    if input_type not in SIDES:
        raise ApiError(400, f"input_type {input_type!r:.80} is not one this server knows: "
                       f"{', '.join(SIDES)}; for another task send its instruction (instruction field) or a model "
                       "alias (GET /v1/models lists them).", param="input_type", code="invalid_value")
    return SIDES[input_type]


def dimensions(body: dict) -> int | None:
    """The `dimensions` field (OpenAI, TEI, Ollama): None or an integer, which the front door checks against the model
    (`inference.check_dimensions`: 1..D, and below D only for a truncatable model)."""
    value = body.get("dimensions")
    if value is not None and not is_int(value):
        raise ApiError(400, f"dimensions must be an integer, got {value!r:.40} ({type(value).__name__}).",
                       param="dimensions", code="invalid_type")
    return value


def boolean(body: dict, name: str, default: bool) -> bool:
    value = body.get(name, default)
    if not isinstance(value, bool):
        raise ApiError(400, f"{name} must be true or false, got {value!r}.", param=name, code="invalid_type")
    return value


def string(body: dict, name: str) -> None:
    if name in body and body[name] is not None and not isinstance(body[name], str):
        raise ApiError(400, f"{name} must be a string, got {type(body[name]).__name__}.", param=name,
                       code="invalid_type")


def _shown(text: str) -> str:
    """`text` fit to be echoed in an answer: a lone surrogate (JSON allows `\\ud800`, UTF-8 cannot hold it) escaped."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _refuse_constant(name: str):
    raise ValueError(f"{name} is not a JSON number")
