"""The server's request checks, table-driven: every wire mistake gets its status, field and code, and every good
body parses to what the routes hand the front door (no model, no server)."""

import base64
import json

import numpy as np
import pytest

from genvec import decode as decoding
from genvec.errors import InputError
from genvec.serve import protocol
from genvec.serve.protocol import ApiError

H = 4  # hidden size of the states in these tables


def embedding(body: dict):
    return protocol.embedding_request(body, max_inputs=3, default_truncate=False)


def decode(body: dict):
    return protocol.decode_request(body, max_inputs=2, max_new_tokens=256, hidden_size=H, default_truncate=True)


def inspect(body: dict):
    return protocol.inspect_request(body, max_top_k=5, default_truncate=False)


def state(rows: int = 2, value: float = 0.5) -> str:
    return base64.b64encode(np.full(rows * H, value, dtype="<f4").tobytes()).decode()


REFUSED = [  # (check, body, status, param, code)
    (embedding, {}, 400, "input", "missing_input"),
    (embedding, {"input": 3}, 400, "input", "invalid_type"),
    (embedding, {"input": []}, 400, "input", "empty_input"),
    (embedding, {"input": ["a", "  "]}, 400, "input", "empty_input"),
    (embedding, {"input": ["a", 7]}, 400, "input", "invalid_type"),
    (embedding, {"input": [[1, 2, 3]]}, 400, "input", "invalid_type"),
    (embedding, {"input": ["a"] * 4}, 422, "input", "too_many_inputs"),
    (embedding, {"input": "a", "encoding_format": "int8"}, 400, "encoding_format", "invalid_value"),
    (embedding, {"input": "a", "dimensions": "4"}, 400, "dimensions", "invalid_type"),
    (embedding, {"input": "a", "dimensions": True}, 400, "dimensions", "invalid_type"),
    (embedding, {"input": "a", "normalize": "yes"}, 400, "normalize", "invalid_type"),
    (embedding, {"input": "a", "truncate": 1}, 400, "truncate", "invalid_type"),
    (embedding, {"input": "a", "input_type": 5}, 400, "input_type", "invalid_type"),
    (embedding, {"input": "a", "instruction": ["x"]}, 400, "instruction", "invalid_type"),
    (embedding, {"input": "a", "model": 1}, 400, "model", "invalid_type"),
    (embedding, {"input": "a", "user": {}}, 400, "user", "invalid_type"),
    (embedding, {"input": "a", "temperature": 1}, 400, "temperature", "unknown_parameter"),
    (embedding, {"input": "a", "\ud800": 1}, 400, "\\ud800", "unknown_parameter"),  # a lone surrogate, shown escaped
    (decode, {}, 400, "input", "invalid_value"),
    (decode, {"input": "a", "states": [state()]}, 400, "input", "invalid_value"),
    (decode, {"states": []}, 400, "states", "invalid_type"),
    (decode, {"states": "abc"}, 400, "states", "invalid_type"),
    (decode, {"states": [state()] * 3}, 422, "states", "too_many_inputs"),
    (decode, {"states": ["not base64!"]}, 400, "states", "invalid_value"),
    (decode, {"states": [base64.b64encode(b"\0" * 12).decode()]}, 400, "states", "invalid_value"),
    (decode, {"input": "a", "max_new_tokens": 257}, 400, "max_new_tokens", "invalid_value"),
    (decode, {"input": "a", "max_new_tokens": 0}, 400, "max_new_tokens", "invalid_value"),
    (decode, {"input": "a", "max_new_tokens": 2.0}, 400, "max_new_tokens", "invalid_value"),
    (decode, {"input": "a", "do_sample": "true"}, 400, "do_sample", "invalid_type"),
    (decode, {"input": "a", "top_k": 3}, 400, "top_k", "unknown_parameter"),
    (decode, {"input": "a", "score": "true"}, 400, "score", "invalid_type"),
    (decode, {"input": "a", "best_of": 0}, 400, "best_of", "invalid_value"),
    (decode, {"input": "a", "best_of": 2.0}, 400, "best_of", "invalid_value"),
    (decode, {"input": "a", "best_of": True}, 400, "best_of", "invalid_value"),
    (decode, {"input": ["a", "b"], "best_of": 2}, 422, "best_of", "too_many_inputs"),  # 4 candidates, at most 2
    (decode, {"states": [state()], "best_of": 3}, 422, "best_of", "too_many_inputs"),
    (decode, {"input": "a", "best_of": 10**400}, 422, "best_of", "too_many_inputs"),
    (inspect, {}, 400, "input", "invalid_value"),
    (inspect, {"input": ["a"]}, 400, "input", "invalid_value"),
    (inspect, {"input": "a", "top_k": 6}, 400, "top_k", "invalid_value"),
    (inspect, {"input": "a", "top_k": True}, 400, "top_k", "invalid_value"),
    (inspect, {"input": "a", "instruction": "x"}, 400, "instruction", "unknown_parameter"),
    (inspect, {"input": "a", "top_k": 2, "truncate": "yes"}, 400, "truncate", "invalid_type"),
]


@pytest.mark.parametrize(("check", "body", "status", "param", "code"), REFUSED)
def test_a_wire_mistake_gets_its_status_field_and_code(check, body, status, param, code):
    with pytest.raises(ApiError) as refused:
        check(body)
    error = refused.value.body()["error"]
    assert (refused.value.status, error["param"], error["code"]) == (status, param, code)
    assert error["message"] and error["type"] == "invalid_request_error"
    json.dumps(error, ensure_ascii=False).encode("utf-8")  # the answer can be written as UTF-8


PARSED = [  # (body, (texts, instruction, side, truncate, base64, normalize))
    ({"input": "a"}, (["a"], None, None, "error", False, True)),
    ({"input": ["a", "b"], "input_type": "query", "truncate": True}, (["a", "b"], None, "query", "cut", False, True)),
    ({"input": "a", "instruction": "Say:", "encoding_format": "base64", "normalize": False},
     (["a"], "Say:", None, "error", True, False)),
    ({"input": "a", "dimensions": 8, "model": "m", "user": "u"}, (["a"], None, None, "error", False, True)),
]


def test_dimensions_reach_the_front_door_as_sent():  # which sizes a model allows is the front door's to say
    assert [embedding({"input": "a", "dimensions": d}).dimensions for d in (4, 0, 99)] == [4, 0, 99]
    assert embedding({"input": "a"}).dimensions is None


@pytest.mark.parametrize(("body", "expected"), PARSED)
def test_a_good_embeddings_body_parses_to_what_the_front_door_reads(body, expected):
    parsed = embedding(body)
    options = parsed.options
    assert (parsed.texts, options.instruction, options.side, options.truncate, parsed.base64,
            parsed.normalize) == expected


def test_inspect_takes_truncate_as_the_other_routes_do():
    assert inspect({"input": "a", "top_k": 2}).options == protocol.TextOptions(None, None, "error")
    parsed = inspect({"input": "a", "top_k": 2, "truncate": True})
    assert (parsed.text, parsed.top_k, parsed.options.truncate) == ("a", 2, "cut")
    assert protocol.inspect_request({"input": "a"}, max_top_k=10, default_truncate=True).options.truncate == "cut"


def test_decode_takes_score_and_best_of_and_leaves_sampling_to_the_front_door():
    parsed = decode({"input": "a"})
    assert (parsed.score, parsed.best_of) == (False, 1)
    parsed = decode({"input": "a", "score": True, "best_of": 2})
    assert (parsed.score, parsed.best_of, parsed.do_sample) == (True, 2, False)
    with pytest.raises(InputError, match="best_of=2 needs sampling") as refused:  # the app asks before decoding
        decoding.check_decode_arguments(parsed.max_new_tokens, None, 1, best_of=parsed.best_of, score=parsed.score)
    assert refused.value.param == "best_of"
    decoding.check_decode_arguments(8, decoding.Sampling(seed=1), 1, best_of=2, score=True)
    with pytest.raises(ApiError, match=r"1 inputs x best_of 10{39} candidates is more than the 2 ") as big:
        decode({"input": "a", "best_of": 10**400})
    assert len(str(big.value)) < 300


def test_what_the_model_accepts_is_left_to_the_front_door():
    # An instruction and sampling numbers pass the wire checks as sent; input_type is read as a side here (its
    # synonyms are the wire's), whether the model saved an instruction for it is the front door's to say ...
    parsed = decode({"input": "a", "input_type": "passage", "instruction": " ", "do_sample": True, "temperature": -1,
                     "top_p": 2})
    assert parsed.options.side == "document" and parsed.options.instruction == " "
    assert (parsed.temperature, parsed.top_p) == (-1, 2)
    # ... and the library's checks name the parameter, which the app maps to the field.
    with pytest.raises(InputError) as refused:
        decoding.check_decode_arguments(parsed.max_new_tokens, decoding.Sampling(parsed.temperature, parsed.top_p),
                                        1)
    assert refused.value.param == "temperature"
    assert protocol.PARAMS.get("texts") == "input" and protocol.PARAMS.get("side") == "input_type"


@pytest.mark.parametrize(("sampling", "param"), [
    ({"temperature": 1e-300}, "temperature"),  # 0 in float32: a zero or NaN distribution for torch.multinomial
    ({"temperature": 5e-324}, "temperature"),
    ({"temperature": 0.5 * decoding.MIN_TEMPERATURE}, "temperature"),
    ({"temperature": 10**400}, "temperature"),  # a JSON integer too large for a float
    ({"top_p": 10**400}, "top_p"),
    ({"top_p": -(10**400)}, "top_p"),
    ({"temperature": "1"}, "temperature"),
    ({"seed": 2**63}, "seed"),
])
def test_sampling_numbers_generation_cannot_use_are_refused_naming_the_field(sampling, param):
    parsed = decode({"input": "a", "do_sample": True, **sampling})
    with pytest.raises(InputError) as refused:
        decoding.check_decode_arguments(parsed.max_new_tokens,
                                        decoding.Sampling(parsed.temperature, parsed.top_p, parsed.seed), 1)
    assert refused.value.param == param and len(str(refused.value)) < 400
    decoding.check_decode_arguments(8, decoding.Sampling(decoding.MIN_TEMPERATURE, 1e-300, 2**63 - 1), 1)


def test_states_arrive_as_k_by_h_rows_and_their_shapes_are_the_front_doors():
    parsed = decode({"states": [state(rows=3), [[0.0] * H] * 3], "max_new_tokens": 8})
    assert [row.shape if isinstance(row, np.ndarray) else "nested" for row in parsed.states] == [(3, H), "nested"]
    assert decoding.check_states(parsed.states, H).shape == (2, 3, H)
    ragged = decode({"states": [state(rows=3), [[0.0] * H] * 2]})
    with pytest.raises(InputError, match=r"states\[1\] has shape \[2, 4\]; expected \[3, 4\]") as refused:
        decoding.check_states(ragged.states, H)
    assert (refused.value.param, refused.value.index) == ("states", 1)
    with pytest.raises(InputError) as infinite:
        decoding.check_states(decode({"states": [state(), state(value=float("inf"))]}).states, H)
    assert (infinite.value.param, infinite.value.index) == ("states", 1)


@pytest.mark.parametrize("states", [
    [[[True] * H] * 2],  # JSON true, which numpy reads as 1.0
    [[[0.5] * H] * 2, [[0.5] * (H - 1) + [False], [0.5] * H]],  # one false among numbers
    [np.ones((2, H), dtype=bool)],
])
def test_states_of_booleans_are_refused_not_read_as_ones(states):
    parsed = decode({"states": states}) if not isinstance(states[0], np.ndarray) else None
    with pytest.raises(InputError, match="true/false") as refused:
        decoding.check_states(parsed.states if parsed else states, H)
    assert (refused.value.param, refused.value.index) == ("states", len(states) - 1)


@pytest.mark.parametrize(("raw", "fragment"), [
    (b"\xff", "not UTF-8"), (b"{", "not valid JSON"), (b"[1]", "must be a JSON object"),
    (b'{"input": NaN}', "not valid JSON"),
    (b'{"input": ' + b"[" * 100_000 + b"]" * 100_000 + b"}", "nested too deeply"),  # 200 KB, a RecursionError
    (b'{"user": ' + b'{"a": ' * 100_000 + b"1" + b"}" * 100_000 + b"}", "nested too deeply"),
])
def test_a_body_that_is_not_a_json_object_is_a_400(raw, fragment):
    with pytest.raises(ApiError, match=fragment) as refused:
        protocol.parse_json(raw)
    assert refused.value.status == 400 and refused.value.code == "invalid_json"
    assert protocol.parse_json(json.dumps({"input": "a"}).encode()) == {"input": "a"}


@pytest.mark.parametrize(("content_type", "accepted"), [
    ("application/json", True), ("application/json; charset=utf-8", True), ("Application/JSON ; charset=UTF-8", True),
    (None, False), ("", False), ("text/plain", False), ("text/plain; charset=utf-8", False),
    ("application/x-www-form-urlencoded", False), ("multipart/form-data; boundary=x", False),
    ("application/xml", False), ("application/jsonl", False),
])
def test_a_body_not_declared_json_is_a_415(content_type, accepted):
    if accepted:
        protocol.check_content_type(content_type)
        return
    with pytest.raises(ApiError, match="Content-Type: application/json") as refused:
        protocol.check_content_type(content_type)
    assert (refused.value.status, refused.value.code) == (415, "unsupported_media_type")


SAVED = {"query": "Answer this:", "document": "Sum this up:"}
PROMPTS = protocol.Prompts("m", {**SAVED, "refute": "Refute this:"})


def instruction_of(body: dict) -> str | None:
    """The instruction a request asks for, with the model's saved ones standing in for the front door's."""
    def front_door(instruction, side):
        return SAVED[side] if side is not None else instruction

    return PROMPTS.instruction(embedding({"input": "x", **body}).options, front_door)


@pytest.mark.parametrize(("body", "instruction"), [
    ({}, None),
    ({"model": "m"}, None),
    ({"model": "text-embedding-3-small"}, None),  # another kind of name: reported, never followed
    ({"model": "m-query"}, "Answer this:"),
    ({"model": "m-document"}, "Sum this up:"),
    ({"model": "m-refute"}, "Refute this:"),
    ({"prompt_name": "refute"}, "Refute this:"),
    ({"input_type": "search_query"}, "Answer this:"),
    ({"input_type": "retrieval.query"}, "Answer this:"),
    ({"input_type": "passage"}, "Sum this up:"),
    ({"input_type": "search_document"}, "Sum this up:"),
    ({"input_type": "retrieval.passage"}, "Sum this up:"),
    ({"model": "m-query", "input_type": "query"}, "Answer this:"),  # ways that agree
    ({"model": "m-refute", "instruction": "Refute this:", "prompt_name": "refute"}, "Refute this:"),
])
def test_a_request_names_its_instruction_by_alias_prompt_name_or_input_type(body, instruction):
    assert instruction_of(body) == instruction


@pytest.mark.parametrize(("body", "status", "param", "code", "message"), [
    ({"model": "m-document", "input_type": "query"}, 400, "model", "conflicting_instructions",
     "model 'm-document' asks for the instruction 'Sum this up:' but input_type (the query side) asks for "
     "'Answer this:'"),
    ({"model": "m-query", "instruction": "Other:"}, 400, "model", "conflicting_instructions", "but instruction"),
    ({"prompt_name": "refute", "input_type": "passage"}, 400, "prompt_name", "conflicting_instructions", "Refute"),
    ({"prompt_name": "nope"}, 400, "prompt_name", "invalid_value", "document, query, refute"),
    ({"model": "m-qeury"}, 404, "model", "model_not_found", "its aliases m-document, m-query, m-refute"),
    ({"input_type": "classification"}, 400, "input_type", "invalid_value", "search_query"),
    ({"prompt_name": 3}, 400, "prompt_name", "invalid_type", "must be a string"),
])
def test_unknown_or_contradicting_instruction_names_are_refused(body, status, param, code, message):
    with pytest.raises(ApiError) as refused:
        instruction_of(body)
    assert (refused.value.status, refused.value.param, refused.value.code) == (status, param, code)
    assert message in refused.value.message


def test_every_prompt_is_a_model_alias():
    assert PROMPTS.aliases() == {"m-query": "query", "m-document": "document", "m-refute": "refute"}
