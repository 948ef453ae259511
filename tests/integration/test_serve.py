"""`genvec serve` as users meet it: a real uvicorn server on 127.0.0.1, the real `openai` client, bad requests."""

import asyncio
import base64
import json
import logging
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

pytest.importorskip("fastapi")
uvicorn = pytest.importorskip("uvicorn")
openai = pytest.importorskip("openai")
httpx = pytest.importorskip("httpx2")

from genvec import inference
from genvec.config.sections import ServeConfig
from genvec.errors import CheckpointError, InputError
from genvec.serve.app import create_app

KEY = "s3cret-key"


class Server:
    """A uvicorn server in a thread, for the length of a test (or a module)."""

    def __init__(self, load, config: ServeConfig | None = None, api_key: str | None = None):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        app = create_app(load, config, api_key=api_key, model_name="tiny-genvec")
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port, log_config=None,
                                                    access_log=False, timeout_graceful_shutdown=10))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 30
        while not self.server.started and time.monotonic() < deadline:
            time.sleep(0.02)

    def wait_ready(self, seconds: float = 60) -> None:
        deadline = time.monotonic() + seconds
        while httpx.get(self.url + "/ready").status_code != 200:
            assert time.monotonic() < deadline, "the server never became ready"
            time.sleep(0.05)

    def close(self) -> None:
        self.server.should_exit = True
        self.thread.join(20)


@pytest.fixture(scope="module")
def served(served_model):
    server = Server(served_model, api_key=KEY)
    server.wait_ready()
    yield server
    server.close()


def client(server: Server, key: str = KEY):
    return openai.OpenAI(base_url=server.url + "/v1", api_key=key, max_retries=0)


TEXTS = ["where do polar bears live?", "How do rivers form?", "a third, longer text about the arctic sea ice"]


def test_the_openai_client_gets_the_embeddings_of_model_encode(served, served_model):
    api = client(served)
    expected = served_model.encode(TEXTS, normalize=True)
    floats = api.embeddings.create(model="tiny-genvec", input=TEXTS, encoding_format="float")
    assert [item.index for item in floats.data] == [0, 1, 2] and floats.model == "tiny-genvec"
    assert np.abs(np.array([item.embedding for item in floats.data]) - expected).max() < 1e-5
    default = api.embeddings.create(model="tiny-genvec", input=TEXTS)  # the client asks for base64 and decodes it
    assert np.abs(np.array([item.embedding for item in default.data]) - expected).max() < 1e-5
    raw = api.embeddings.create(model="tiny-genvec", input=TEXTS[0], encoding_format="base64")
    vector = np.frombuffer(base64.b64decode(raw.data[0].embedding), dtype="<f4")
    assert np.abs(vector - expected[0]).max() < 1e-5
    tokens = served_model.prepare(TEXTS).num_tokens
    assert floats.usage.prompt_tokens == floats.usage.total_tokens == tokens  # honest counts
    query = api.embeddings.create(model="m", input=TEXTS, extra_body={"input_type": "query"})
    assert np.abs(np.array([d.embedding for d in query.data])
                  - served_model.encode_query(TEXTS, normalize=True)).max() < 1e-5
    document = api.embeddings.create(model="m", input=TEXTS, extra_body={"input_type": "document"})
    assert np.abs(np.array([d.embedding for d in document.data])
                  - served_model.encode_document(TEXTS, normalize=True)).max() < 1e-5
    instructed = api.embeddings.create(model="m", input=TEXTS,
                                       extra_body={"instruction": "Answer:", "normalize": False})
    assert np.abs(np.array([d.embedding for d in instructed.data])
                  - served_model.encode(TEXTS, instruction="Answer:")).max() < 1e-5


def test_decode_and_inspect_give_what_the_model_gives(served, served_model):
    headers = {"Authorization": f"Bearer {KEY}"}
    answer = httpx.post(served.url + "/v1/decode", headers=headers,
                        json={"input": TEXTS[:2], "max_new_tokens": 8, "input_type": "query"}).json()
    expected = served_model.decode(TEXTS[:2], max_new_tokens=8,
                                  instruction=served_model.config.model.instructions["query"])
    assert [item["text"] for item in answer["data"]] == expected
    states = served_model.compress(TEXTS[:1]).cpu().numpy()
    encoded = base64.b64encode(states[0].astype("<f4").tobytes()).decode()
    for payload in (states.tolist(), [encoded]):
        answer = httpx.post(served.url + "/v1/decode", headers=headers, json={"states": payload, "max_new_tokens": 8})
        assert answer.status_code == 200, answer.text
        assert [item["text"] for item in answer.json()["data"]] == served_model.decode(states=states, max_new_tokens=8)
    lens = httpx.post(served.url + "/v1/inspect", headers=headers, json={"input": TEXTS[0], "top_k": 3}).json()
    expected_lens = json.loads(json.dumps(served_model.inspect(TEXTS[0], top_k=3).to_dict()))
    assert lens["special_tokens"] == expected_lens["special_tokens"]
    # A top_p below float32's smallest number keeps the most probable token alone: sampling decodes greedily.
    nucleus = httpx.post(served.url + "/v1/decode", headers=headers, json={
        "input": TEXTS[:2], "max_new_tokens": 8, "do_sample": True, "top_p": 1e-300, "seed": 3})
    assert nucleus.status_code == 200, nucleus.text
    assert [item["text"] for item in nucleus.json()["data"]] == served_model.decode(TEXTS[:2], max_new_tokens=8)


def test_decode_scores_are_the_librarys(served, served_model):
    headers = {"Authorization": f"Bearer {KEY}"}
    answer = httpx.post(served.url + "/v1/decode", headers=headers, json={
        "input": TEXTS, "max_new_tokens": 8, "input_type": "query", "score": True}).json()
    expected = served_model.decode(TEXTS, side="query", max_new_tokens=8, score=True)
    assert [item["text"] for item in answer["data"]] == [item.text for item in expected]
    assert np.allclose([item["score"] for item in answer["data"]], [item.score for item in expected], atol=1e-6)
    sampled = {"max_new_tokens": 8, "do_sample": True, "temperature": 1.5, "seed": 7}
    best = httpx.post(served.url + "/v1/decode", headers=headers,
                      json={"input": TEXTS[:2], "best_of": 3, "score": True, **sampled}).json()
    expected = served_model.decode(TEXTS[:2], best_of=3, score=True, **sampled)
    assert [(item["text"], item["index"]) for item in best["data"]] == [(item.text, i) for i, item in
                                                                        enumerate(expected)]
    assert np.allclose([item["score"] for item in best["data"]], [item.score for item in expected], atol=1e-6)
    # From states, the decoded texts are read back with the side the request names.
    states = served_model.compress(TEXTS[:2], side="query").cpu().numpy()
    from_states = httpx.post(served.url + "/v1/decode", headers=headers, json={
        "states": states.tolist(), "max_new_tokens": 8, "input_type": "query", "score": True}).json()
    expected = served_model.decode(states=states, side="query", max_new_tokens=8, score=True)
    assert np.allclose([item["score"] for item in from_states["data"]], [item.score for item in expected], atol=1e-6)
    unscored = httpx.post(served.url + "/v1/decode", headers=headers, json={"input": TEXTS[:1], "max_new_tokens": 8})
    assert "score" not in unscored.json()["data"][0]


def bad_requests(model) -> list[tuple[str, str, object, dict, int, str | None]]:
    """(name, path, body (bytes or JSON), headers (sent with Content-Type: application/json unless they name it; None
    leaves it out), expected status, expected param)."""
    k, h = model.num_compression_tokens, model.hidden_size
    auth = {"Authorization": f"Bearer {KEY}"}
    long_text = "river " * 600
    nan_state = base64.b64encode(np.full(k * h, np.nan, dtype="<f4").tobytes()).decode()

    def nested(depth: int, inner: bytes = b"[]") -> bytes:  # [[[...]]] or {"a": {"a": ... 1}}
        if inner == b"[]":
            return b"[" * depth + b"]" * depth
        return b'{"a": ' * depth + inner + b"}" * depth

    return [
        ("malformed JSON", "/v1/embeddings", b'{"input": ', auth, 400, None),
        ("not an object", "/v1/embeddings", [1, 2], auth, 400, None),
        ("invalid UTF-8", "/v1/embeddings", b'{"input": "\xff\xfe"}', auth, 400, None),
        ("NaN literal", "/v1/embeddings", b'{"input": "x", "dimensions": NaN}', auth, 400, None),
        ("missing input", "/v1/embeddings", {"model": "m"}, auth, 400, "input"),
        ("input a number", "/v1/embeddings", {"input": 3}, auth, 400, "input"),
        ("empty list", "/v1/embeddings", {"input": []}, auth, 400, "input"),
        ("empty string", "/v1/embeddings", {"input": ""}, auth, 400, "input"),
        ("whitespace string", "/v1/embeddings", {"input": ["ok", "   "]}, auth, 400, "input"),
        ("nested lists", "/v1/embeddings", {"input": [["a", "b"]]}, auth, 400, "input"),
        ("token ids", "/v1/embeddings", {"input": [101, 2023, 102]}, auth, 400, "input"),
        ("token id lists", "/v1/embeddings", {"input": [[101, 2023]]}, auth, 400, "input"),
        ("huge input", "/v1/embeddings", {"input": long_text}, auth, 422, "input"),
        ("huge batch", "/v1/embeddings", {"input": ["x"] * 2049}, auth, 422, "input"),
        ("bad encoding_format", "/v1/embeddings", {"input": "x", "encoding_format": "int8"}, auth, 400,
         "encoding_format"),
        ("bad dimensions", "/v1/embeddings", {"input": "x", "dimensions": 8}, auth, 400, "dimensions"),
        ("unknown parameter", "/v1/embeddings", {"input": "x", "temperature": 0.5}, auth, 400, "temperature"),
        ("bad input_type", "/v1/embeddings", {"input": "x", "input_type": "classification"}, auth, 400, "input_type"),
        ("normalize not a bool", "/v1/embeddings", {"input": "x", "normalize": "yes"}, auth, 400, "normalize"),
        ("model not a string", "/v1/embeddings", {"input": "x", "model": 7}, auth, 400, "model"),
        ("missing key", "/v1/embeddings", {"input": "x"}, {}, 401, None),
        ("bad key", "/v1/embeddings", {"input": "x"}, {"Authorization": "Bearer wrong"}, 401, None),
        ("oversized body", "/v1/embeddings", {"input": ["y" * 1000] * 4100}, auth, 413, None),
        ("NaN literal in decode states", "/v1/decode", {"states": [[[float("nan")] * h] * k]}, auth, 400, None),
        ("NaN in base64 decode states", "/v1/decode", {"states": [nan_state]}, auth, 400, "states"),
        ("wrong state size", "/v1/decode", {"states": [[[0.0] * (h - 1)] * k]}, auth, 400, "states"),
        ("bad base64 state", "/v1/decode", {"states": ["not base64!"]}, auth, 400, "states"),
        ("decode both inputs", "/v1/decode", {"input": "x", "states": [[[0.0] * h] * k]}, auth, 400, "input"),
        ("decode too many tokens", "/v1/decode", {"input": "x", "max_new_tokens": 100000}, auth, 400,
         "max_new_tokens"),
        ("decode bad top_p", "/v1/decode", {"input": "x", "do_sample": True, "top_p": 0}, auth, 400, "top_p"),
        ("inspect bad top_k", "/v1/inspect", {"input": "x", "top_k": 0}, auth, 400, "top_k"),
        ("unknown route", "/v1/completions", {"prompt": "x"}, auth, 404, None),
        # JSON nested deeper than the parser recurses (a RecursionError), anywhere in the body
        ("input nested 1,000 deep", "/v1/embeddings", b'{"input": ' + nested(1000) + b"}", auth, 400, None),
        ("unknown field nested 100,000 deep", "/v1/embeddings", b'{"input": "x", "extra": ' + nested(100_000) + b"}",
         auth, 400, None),
        ("user objects nested 100,000 deep", "/v1/embeddings", b'{"input": "x", "user": ' + nested(100_000, b"1")
         + b"}", auth, 400, None),
        ("temperature nested 800 deep", "/v1/decode", b'{"input": "x", "do_sample": true, "temperature": '
         + nested(800) + b"}", auth, 400, "temperature"),
        # lone surrogates (a JavaScript client cutting a string inside a surrogate pair), in every text field
        ("lone surrogate in input", "/v1/embeddings", {"input": "bad \ud800 text"}, auth, 400, "input"),
        ("lone surrogate in a list", "/v1/embeddings", {"input": ["ok", "\udc00"]}, auth, 400, "input"),
        ("lone surrogate in a long input", "/v1/embeddings", {"input": "y" * 5000 + "\ud800"}, auth, 400, "input"),
        ("lone surrogate in decode input", "/v1/decode", {"input": "\ud800"}, auth, 400, "input"),
        ("lone surrogate in inspect input", "/v1/inspect", {"input": "a \ud800"}, auth, 400, "input"),
        ("lone surrogate in instruction", "/v1/embeddings", {"input": "ok", "instruction": "\ud800"}, auth, 400,
         "instruction"),
        ("lone surrogate in decode instruction", "/v1/decode", {"input": "ok", "instruction": "x\udfff"}, auth, 400,
         "instruction"),
        ("lone surrogate in input_type", "/v1/embeddings", {"input": "ok", "input_type": "\ud800"}, auth, 400,
         "input_type"),
        # an instruction of white space only is a mistake (a template's empty variable), not "no instruction"
        ("blank instruction", "/v1/embeddings", {"input": "ok", "instruction": " "}, auth, 400, "instruction"),
        ("empty decode instruction", "/v1/decode", {"input": "ok", "instruction": ""}, auth, 400, "instruction"),
        ("lone surrogate as a field name", "/v1/embeddings", {"input": "ok", "\ud800": 1}, auth, 400, "\\ud800"),
        # sampling numbers float32 cannot hold, and numbers no float can
        ("temperature 1e-300", "/v1/decode", {"input": "x", "do_sample": True, "temperature": 1e-300,
                                              "max_new_tokens": 2}, auth, 400, "temperature"),
        ("temperature 5e-324", "/v1/decode", {"input": "x", "do_sample": True, "temperature": 5e-324,
                                              "max_new_tokens": 2}, auth, 400, "temperature"),
        ("temperature of 401 digits", "/v1/decode", {"input": "x", "do_sample": True, "temperature": 10**400},
         auth, 400, "temperature"),
        ("top_p of 401 digits", "/v1/decode", {"input": "x", "do_sample": True, "top_p": 10**400}, auth, 400,
         "top_p"),
        ("decode best_of without sampling", "/v1/decode", {"input": "x", "best_of": 2}, auth, 400, "best_of"),
        ("decode score not a boolean", "/v1/decode", {"input": "x", "score": 1}, auth, 400, "score"),
        ("decode too many candidates", "/v1/decode", {"input": ["x"] * 2, "do_sample": True, "best_of": 33}, auth,
         422, "best_of"),
        ("decode states read back with an unknown side", "/v1/decode",
         {"states": [[[0.0] * h] * k], "input_type": "sideways", "score": True}, auth, 400, "input_type"),
        # decode states of JSON booleans, which numpy would read as 1.0 and 0.0
        ("decode states of booleans", "/v1/decode", {"states": [[[True] * h] * k]}, auth, 400, "states"),
        ("decode states with one false", "/v1/decode",
         {"states": [[[0.0] * (h - 1) + [False]] + [[0.0] * h] * (k - 1)]}, auth, 400, "states"),
        # a body not declared JSON (what a web page may POST cross-site without asking first)
        ("text/plain body", "/v1/embeddings", {"input": "x"}, {**auth, "Content-Type": "text/plain"}, 415, None),
        ("form body", "/v1/embeddings", b"input=x", {**auth, "Content-Type": "application/x-www-form-urlencoded"},
         415, None),
        ("multipart body", "/v1/embeddings", {"input": "x"}, {**auth, "Content-Type": "multipart/form-data; b=x"},
         415, None),
        ("no Content-Type", "/v1/decode", {"input": "x"}, {**auth, "Content-Type": None}, 415, None),
        ("XML Content-Type", "/v1/inspect", {"input": "x"}, {**auth, "Content-Type": "application/xml"}, 415, None),
    ]


def test_bad_requests_get_the_documented_4xx_and_the_server_keeps_serving(served, served_model):
    cases = bad_requests(served_model)
    assert len(cases) >= 20
    server_errors = _server_errors(httpx.get(served.url + "/metrics").text)
    for name, path, body, headers, status, param in cases:
        sent = {key: value for key, value in {"Content-Type": "application/json", **headers}.items()
                if value is not None}
        response = httpx.post(served.url + path, content=body if isinstance(body, bytes) else json.dumps(body),
                              headers=sent)
        assert response.status_code == status, (name, response.status_code, response.text[:300])
        assert response.headers["content-type"] == "application/json", name
        error = response.json()["error"]
        assert set(error) == {"message", "type", "param", "code"} and error["message"], name
        assert error["param"] == param, (name, error)
    assert client(served).embeddings.create(model="m", input="still serving").data[0].embedding
    metrics = httpx.get(served.url + "/metrics").text  # open without the key
    assert 'genvec_requests_total{route="/v1/embeddings",status="401"} 2.0' in metrics
    assert _server_errors(metrics) == server_errors


def test_a_client_that_hangs_up_mid_body_is_one_log_line_and_no_server_error(served, caplog):
    caplog.set_level(logging.INFO, logger="genvec.serve.access")
    before = httpx.get(served.url + "/metrics").text
    head = (f"POST /v1/embeddings HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {KEY}\r\n"
            "Content-Type: application/json\r\nContent-Length: 100\r\n\r\n{").encode()
    for _ in range(3):
        with socket.create_connection(("127.0.0.1", served.port)) as connection:
            connection.sendall(head)
            time.sleep(0.05)
    deadline = time.monotonic() + 10
    while _count(httpx.get(served.url + "/metrics").text, "/v1/embeddings", 499) < _count(before, "/v1/embeddings",
                                                                                            499) + 3:
        assert time.monotonic() < deadline, "the hang-ups were not counted as 499"
        time.sleep(0.05)
    assert _server_errors(httpx.get(served.url + "/metrics").text) == _server_errors(before)
    hang_ups = [record for record in caplog.records if record.name == "genvec.serve.access"
                and json.loads(record.getMessage())["status"] == 499]
    assert len(hang_ups) == 3
    assert [record for record in caplog.records if record.exc_info or record.levelno >= logging.WARNING] == []


def test_a_model_failure_is_a_500_in_the_openai_shape_counted_on_metrics(served):
    def broken(model, inputs, **kwargs):
        raise RuntimeError("secret internal detail")

    headers = {"Authorization": f"Bearer {KEY}"}
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(inference, "embed", broken)
        response = httpx.post(served.url + "/v1/embeddings", headers=headers, json={"input": "x"})
    assert response.status_code == 500, response.text
    assert response.json()["error"]["code"] == "internal_error" and "secret" not in response.text
    assert 'genvec_requests_total{route="/v1/embeddings",status="500"} 1.0' in httpx.get(served.url + "/metrics").text
    assert httpx.post(served.url + "/v1/embeddings", headers=headers, json={"input": "x"}).status_code == 200


def test_the_openai_client_does_not_retry_a_client_mistake(served):
    with pytest.raises(openai.BadRequestError, match="not truncatable"):
        openai.OpenAI(base_url=served.url + "/v1", api_key=KEY).embeddings.create(model="m", input="x", dimensions=3)
    with pytest.raises(openai.AuthenticationError):
        client(served, key="wrong").embeddings.create(model="m", input="x")
    with pytest.raises(openai.UnprocessableEntityError, match="at most 2048 per request"):
        client(served).embeddings.create(model="m", input=["x"] * 2049)


def test_probes_and_info(served, served_model):
    assert httpx.get(served.url + "/health").json() == {"status": "ok"}
    assert httpx.get(served.url + "/ready").status_code == 200
    assert httpx.get(served.url + "/info").status_code == 401  # behind the key
    info = httpx.get(served.url + "/info", headers={"Authorization": f"Bearer {KEY}"}).json()
    assert info["embedding_dim"] == served_model.embedding_dim
    assert info["num_special_tokens"] == served_model.num_special_tokens
    assert info["max_input_tokens"] == inference.text_limit(served_model) and info["instructions"]["query"]
    names = [m.id for m in client(served).models.list().data]  # the model and its instruction-bound aliases
    assert names == ["tiny-genvec", "tiny-genvec-query", "tiny-genvec-document"]
    assert client(served).models.retrieve("tiny-genvec").id == "tiny-genvec"  # as OpenAI's GET /v1/models/{id}
    with pytest.raises(openai.NotFoundError, match="does not exist; this server serves tiny-genvec, ") as missing:
        client(served).models.retrieve("text-embedding-3-small")
    assert missing.value.body["code"] == "model_not_found"
    assert httpx.get(served.url + "/v1/models/tiny-genvec").status_code == 401  # behind the key


def test_truncation_is_explicit_and_counted(served, served_model):
    limit = inference.text_limit(served_model)
    text = "river " * (limit + 50)  # too many tokens, few enough characters to tokenise
    headers = {"Authorization": f"Bearer {KEY}"}
    refused = httpx.post(served.url + "/v1/embeddings", headers=headers, json={"input": text})
    assert refused.status_code == 422 and "truncate: true" in refused.json()["error"]["message"]
    before = _counter(httpx.get(served.url + "/metrics").text, "genvec_truncations_total")
    cut = httpx.post(served.url + "/v1/embeddings", headers=headers, json={"input": text, "truncate": True,
                                                                            "normalize": False})
    assert cut.status_code == 200 and cut.json()["usage"]["prompt_tokens"] == limit
    assert cut.headers["x-genvec-truncated"] == "1" and refused.json()["error"]["param"] == "input"
    with pytest.warns(UserWarning, match="1 of 1 texts were longer than the model reads and were cut"):
        expected = served_model.encode([text])
    assert np.abs(np.array(cut.json()["data"][0]["embedding"]) - expected[0]).max() < 1e-5
    assert _counter(httpx.get(served.url + "/metrics").text, "genvec_truncations_total") == before + 1
    # /v1/inspect's 422 names the same way out, and inspect takes it
    refused = httpx.post(served.url + "/v1/inspect", headers=headers, json={"input": text})
    assert refused.status_code == 422 and "truncate: true" in refused.json()["error"]["message"]
    lens = httpx.post(served.url + "/v1/inspect", headers=headers, json={"input": text, "truncate": True})
    assert lens.status_code == 200 and lens.headers["x-genvec-truncated"] == "1"


def test_sixteen_concurrent_clients_get_their_own_embeddings(served, served_model):
    texts = [f"question {i} about rivers and ice number {i * 7}" for i in range(64)]
    expected = served_model.encode(texts, normalize=True)
    api = client(served)

    def one_client(worker: int) -> list[str]:
        problems = []
        for n in range(60):
            i = (worker * 13 + n) % len(texts)
            got = np.array(api.embeddings.create(model="m", input=texts[i], encoding_format="float").data[0].embedding)
            if np.abs(got - expected[i]).max() >= 1e-5:
                problems.append(f"client {worker} request {n}: text {i} got another embedding")
        return problems

    with ThreadPoolExecutor(16) as pool:
        problems = [p for found in pool.map(one_client, range(16)) for p in found]
    assert problems == []
    metrics = httpx.get(served.url + "/metrics").text
    assert _counter(metrics, "genvec_batch_texts_count") < 16 * 60  # requests were coalesced into batches


def test_ready_says_503_while_the_model_loads_and_a_full_queue_says_429(served_model):
    release = threading.Event()

    def load():
        release.wait(30)
        return served_model

    server = Server(load, ServeConfig(max_queue_texts=1))
    try:
        assert httpx.get(server.url + "/health").status_code == 200
        loading = httpx.get(server.url + "/ready")
        assert loading.status_code == 503 and loading.headers["retry-after"] == "2"
        assert httpx.post(server.url + "/v1/embeddings", json={"input": "x"}).status_code == 503
        release.set()
        server.wait_ready()
        slow = inference.embed

        def slow_embed(model, inputs, **kwargs):
            time.sleep(0.3)
            return slow(model, inputs, **kwargs)

        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(inference, "embed", slow_embed)
            async def burst():
                async with httpx.AsyncClient(base_url=server.url, timeout=30) as session:
                    return await asyncio.gather(*[session.post("/v1/embeddings", json={"input": f"text {i}"})
                                                  for i in range(12)])

            statuses = [r.status_code for r in asyncio.run(burst())]
        assert 429 in statuses and 200 in statuses and set(statuses) <= {200, 429}, statuses
    finally:
        server.close()


def _counter(metrics: str, name: str) -> float:
    line = next(line for line in metrics.splitlines() if line.startswith(name + " ") or line.startswith(name + "{"))
    return float(line.rsplit(" ", 1)[1])


def _count(metrics: str, route: str, status: int) -> float:
    """genvec_requests_total of one route and status (0 before the first)."""
    prefix = f'genvec_requests_total{{route="{route}",status="{status}"}} '
    return sum(float(line[len(prefix):]) for line in metrics.splitlines() if line.startswith(prefix))


def _server_errors(metrics: str) -> float:
    """Requests answered 5xx on any route (503 aside: a loading model)."""
    return sum(float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines()
               if line.startswith("genvec_requests_total{") and '",status="5' in line and 'status="503"' not in line)


def test_a_model_that_cannot_load_stops_genvec_serve_with_its_error(tmp_path, capsys):
    from genvec.cli import main

    (tmp_path / "empty").mkdir()
    started = time.monotonic()
    assert main(["serve", "--model", str(tmp_path / "empty"), "--device", "cpu", "--serve.port", "0"]) == 2
    assert "is not a genvec checkpoint" in capsys.readouterr().err and time.monotonic() - started < 60


def test_ready_says_the_model_failed_without_the_loaders_details():
    def load():
        raise CheckpointError("/srv/private/models/x is not a genvec checkpoint")

    server = Server(load)
    try:
        deadline = time.monotonic() + 30
        while (ready := httpx.get(server.url + "/ready")).json()["error"]["code"] != "model_failed":
            assert time.monotonic() < deadline, ready.text
            time.sleep(0.05)
        assert ready.status_code == 503 and "see the server log" in ready.json()["error"]["message"]
        assert "private" not in ready.text and "private" not in httpx.post(server.url + "/v1/embeddings",
                                                                          json={"input": "x"}).text
    finally:
        server.close()


def test_the_api_key_is_stripped_and_an_empty_one_refused(served_model, monkeypatch, capsys):
    state = create_app(served_model, api_key=f" {KEY}\n").state.genvec  # as read from a mounted secret file
    state.authorize(f"Bearer {KEY}")  # accepted: no ApiError
    for empty in ("", " \n"):
        with pytest.raises(InputError, match="api_key is empty") as refused:
            create_app(served_model, api_key=empty)
        assert refused.value.param == "api_key"
    from genvec.cli import main

    monkeypatch.setenv("GENVEC_API_KEY", "\n")
    assert main(["serve", "--model", "unused", "--device", "cpu"]) == 2
    assert "GENVEC_API_KEY is set but empty" in capsys.readouterr().err
    assert main(["serve", "--model", "unused", "--api-key", " "]) == 2
    assert "--api-key is set but empty" in capsys.readouterr().err


def test_genvec_serve_reads_env_config_logs_json_and_finishes_requests_in_flight_on_sigterm(served_model, tmp_path):
    import os
    import signal
    import subprocess
    import sys

    served_model.save_pretrained(tmp_path / "ckpt")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    environment = {**os.environ, "HF_HUB_OFFLINE": "1", "GENVEC_SERVE_MAX_INPUTS": "5", "GENVEC_API_KEY": KEY,
                   "GENVEC_SERVE_PORT": str(port)}
    process = subprocess.Popen([sys.executable, "-m", "genvec", "serve", "--model", str(tmp_path / "ckpt"),
                                "--device", "cpu"], env=environment, stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    auth = {"Authorization": f"Bearer {KEY}"}
    try:
        deadline = time.monotonic() + 90
        while True:
            try:
                if httpx.get(url + "/ready").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None and time.monotonic() < deadline, "genvec serve did not become ready"
            time.sleep(0.1)
        info = httpx.get(url + "/info", headers=auth).json()
        assert info["limits"]["max_inputs"] == 5 and info["model"] == "ckpt" and info["auth"] is True
        assert httpx.post(url + "/v1/embeddings", headers=auth, json={"input": ["x"] * 6}).status_code == 422
        with ThreadPoolExecutor(1) as pool:  # a long decode in flight when the server is told to stop
            pending = pool.submit(httpx.post, url + "/v1/decode", headers=auth, timeout=120,
                                  json={"input": ["rivers"] * 32, "max_new_tokens": 256})
            time.sleep(0.5)
            process.send_signal(signal.SIGTERM)
            finished = pending.result()
        assert finished.status_code == 200 and len(finished.json()["data"]) == 32
        assert process.wait(60) in (0, -signal.SIGTERM)  # uvicorn re-raises the signal once it has drained
    finally:
        if process.poll() is None:
            process.kill()
    logs = process.stderr.read()
    access = [json.loads(line.split(": ", 1)[1]) for line in logs.splitlines()
              if line.startswith("genvec.serve.access: ")]
    assert {"method": "POST", "path": "/v1/decode", "status": 200} in [
        {k: entry[k] for k in ("method", "path", "status")} for entry in access]
    assert all(entry["ms"] >= 0 and "client" in entry for entry in access)


def test_bad_serve_settings_are_refused_with_the_setting_named(served_model, tmp_path, capsys):
    from genvec.cli import main

    served_model.save_pretrained(tmp_path / "ckpt")
    assert main(["serve", "--model", str(tmp_path / "ckpt"), "--serve.port", "70000"]) == 2
    assert "serve.port: must be between 0 and 65535, got 70000" in capsys.readouterr().err


@pytest.mark.slow
def test_sixteen_clients_times_a_thousand_requests(served, served_model):
    """The issue's load test: 16 concurrent clients x 1,000 requests, every answer the encode of its own input."""
    texts = [f"text {i}: rivers, ice and bears {i * 3}" for i in range(500)]
    expected = served_model.encode(texts, normalize=True)

    def one_client(worker: int) -> int:
        wrong = 0
        with httpx.Client(base_url=served.url, timeout=60, headers={"Authorization": f"Bearer {KEY}"}) as session:
            for n in range(1000):
                i = (worker * 31 + n) % len(texts)
                response = session.post("/v1/embeddings", json={"input": texts[i], "encoding_format": "float"})
                wrong += response.status_code != 200 or np.abs(
                    np.array(response.json()["data"][0]["embedding"]) - expected[i]).max() >= 1e-5
        return wrong

    with ThreadPoolExecutor(16) as pool:
        assert sum(pool.map(one_client, range(16))) == 0
