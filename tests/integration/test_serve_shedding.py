"""`genvec serve` against slow, silent and departing clients: deadlines for headers and bodies, the cap on bodies still
arriving, work dropped for clients that hung up, and small requests served beside large ones (a real uvicorn server
on 127.0.0.1 with the connection settings `genvec serve` gives it)."""

import json
import socket
import threading
import time

import pytest

pytest.importorskip("fastapi")
uvicorn = pytest.importorskip("uvicorn")
httpx = pytest.importorskip("httpx2")

from test_serve import Server

from genvec import inference
from genvec.config.sections import ServeConfig
from genvec.serve.app import create_app
from genvec.serve.connections import uvicorn_settings


class ShedServer(Server):
    """test_serve's server, with `genvec serve`'s connection deadlines (`uvicorn_settings`) and no key."""

    def __init__(self, load, config: ServeConfig):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        self.app = create_app(load, config, model_name="tiny-genvec")
        self.server = uvicorn.Server(uvicorn.Config(self.app, host="127.0.0.1", port=self.port, log_config=None,
                                                    access_log=False, timeout_graceful_shutdown=10,
                                                    **uvicorn_settings(config)))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.port}"
        self.wait_ready()

    @property
    def state(self):
        return self.app.state.genvec


@pytest.fixture(scope="module")
def model(backbone_dirs):
    import torch

    from genvec import GenVecModel

    torch.manual_seed(0)
    return GenVecModel.from_backbone(str(backbone_dirs["qwen3"]), num_special_tokens=4, num_compression_tokens=2,
                                     embedding_dim=16, dtype="fp32", device="cpu")


@pytest.fixture
def counted_embed(monkeypatch):
    """The model's embed, slowed to `seconds` per batch; `texts` counts the texts it computed."""
    real = inference.embed
    record = {"texts": 0, "seconds": 0.05}

    def embed(model, inputs, **kwargs):
        time.sleep(record["seconds"])
        record["texts"] += len(inputs.ids)
        return real(model, inputs, **kwargs)

    monkeypatch.setattr(inference, "embed", embed)
    return record


def open_request(server: Server, body: bytes, announced: int | None = None) -> socket.socket:
    """A connection that has sent an embeddings request's headers (announcing `announced` bytes) and `body`."""
    connection = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    connection.sendall(b"POST /v1/embeddings HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                       b"Content-Length: %d\r\n\r\n" % (len(body) if announced is None else announced) + body)
    return connection


def read_until_closed(connection: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (socket.timeout if it does not, within 10 s)."""
    received = b""
    while chunk := connection.recv(65536):
        received += chunk
    connection.close()
    return received


def error_of(answer: bytes) -> tuple[int, dict, dict]:
    """Status, lowercase headers and JSON body of a raw HTTP/1.1 answer."""
    head, _, body = answer.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode().split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in header_lines)
    return int(status_line.split()[1]), headers, json.loads(body)


def test_a_body_that_does_not_arrive_in_time_gets_408_and_its_connection_is_closed(model):
    server = ShedServer(model, ServeConfig(body_timeout_seconds=0.5))
    try:
        started = time.monotonic()
        slow = open_request(server, b'{"input": "a' + b"a" * 100, announced=1000)
        status, headers, body = error_of(read_until_closed(slow))  # closed by the server
        assert status == 408 and headers["connection"] == "close", (status, headers)
        assert body["error"]["code"] == "request_timeout" and "body_timeout_seconds" in body["error"]["message"]
        assert time.monotonic() - started < 5
        assert httpx.post(server.url + "/v1/embeddings", json={"input": "fine"}).status_code == 200
        assert server.state.unfinished_bodies == 0
    finally:
        server.close()


def test_bodies_beyond_max_unfinished_bodies_get_503_while_whole_requests_pass(model):
    server = ShedServer(model, ServeConfig(max_unfinished_bodies=2, body_timeout_seconds=30))
    try:
        slow = [open_request(server, b'{"input": "' + b"a" * 100, announced=1000) for _ in range(2)]
        deadline = time.monotonic() + 5
        while server.state.unfinished_bodies < 2 and time.monotonic() < deadline:
            time.sleep(0.02)
        status, headers, body = error_of(read_until_closed(
            open_request(server, b'{"input": "' + b"a" * 100, announced=1000)))
        assert status == 503 and headers["retry-after"] == "1" and headers["connection"] == "close"
        assert body["error"]["code"] == "overloaded" and "max_unfinished_bodies" in body["error"]["message"]
        # A body that arrives whole waits for nothing and is served.
        assert httpx.post(server.url + "/v1/embeddings", json={"input": "fine"}).status_code == 200
        for connection in slow:  # the clients give up: their places are free again
            connection.close()
        deadline = time.monotonic() + 5
        while server.state.unfinished_bodies and time.monotonic() < deadline:
            time.sleep(0.02)
        assert server.state.unfinished_bodies == 0
    finally:
        server.close()


def test_connections_without_complete_headers_are_closed_and_slow_answers_are_not(model, counted_embed):
    server = ShedServer(model, ServeConfig(header_timeout_seconds=0.5))
    try:
        silent = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        partial = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        partial.sendall(b"POST /v1/embeddings HTTP/1.1\r\nHost: x\r\n")
        started = time.monotonic()
        assert read_until_closed(silent) == b"" and read_until_closed(partial) == b""
        assert time.monotonic() - started < 5
        counted_embed["seconds"] = 1.5  # an answer slower than the header deadline is not cut off
        with httpx.Client(base_url=server.url, timeout=30) as client:  # one kept-alive connection
            assert client.post("/v1/embeddings", json={"input": "slow"}).status_code == 200
            time.sleep(0.2)
            assert client.post("/v1/embeddings", json={"input": "again"}).status_code == 200
    finally:
        server.close()


def test_the_waiting_texts_of_a_client_that_hung_up_never_reach_the_model(model, counted_embed):
    server = ShedServer(model, ServeConfig(max_batch_texts=4))
    try:
        body = json.dumps({"input": [f"text number {i}" for i in range(200)]}).encode()
        gone = open_request(server, body)
        time.sleep(0.3)  # read, prepared, its first batches running
        gone.close()
        time.sleep(1.0)  # 20 more batches' time
        assert server.state.batcher.queued == 0
        assert counted_embed["texts"] <= 40, counted_embed  # a few batches, not the 200 texts
        assert httpx.post(server.url + "/v1/embeddings", json={"input": "next"}).status_code == 200
    finally:
        server.close()


def test_a_one_text_request_is_served_between_the_batches_of_two_large_ones(model, counted_embed):
    server = ShedServer(model, ServeConfig(max_batch_texts=4))
    counted_embed["seconds"] = 0.03  # 2 x 50 batches: 3 s of work
    finished = {}

    def send(name: str, texts: list[str]) -> None:
        answer = httpx.post(server.url + "/v1/embeddings", json={"input": texts}, timeout=60)
        assert answer.status_code == 200 and len(answer.json()["data"]) == len(texts)
        finished[name] = time.monotonic()

    try:
        large = [threading.Thread(target=send, args=(name, [f"{name} text {i}" for i in range(200)]))
                 for name in ("a", "b")]
        for thread in large:
            thread.start()
        time.sleep(0.3)  # both large requests are in the queue
        started = time.monotonic()
        send("small", ["a question"])
        for thread in large:
            thread.join(60)
        assert finished["small"] - started < 1.0, finished["small"] - started
        assert finished["small"] < min(finished["a"], finished["b"])
    finally:
        server.close()


def test_a_decode_waiting_for_the_model_is_dropped_when_its_client_hangs_up(model, monkeypatch):
    """Decode and inspect run in the model's thread one after another: a request still waiting there when its
    client hangs up never runs, and its place counts as free again."""
    real = inference.decode
    ran, release = [], threading.Event()

    def decode(model, source, **kwargs):
        ran.append(source.shape[0] if hasattr(source, "shape") else len(source.ids))
        release.wait(10)  # the first request holds the model thread
        return real(model, source, **kwargs)

    monkeypatch.setattr(inference, "decode", decode)
    server = ShedServer(model, ServeConfig())
    try:
        first = threading.Thread(target=lambda: httpx.post(server.url + "/v1/decode", timeout=30,
                                                           json={"input": "first", "max_new_tokens": 2}))
        first.start()
        deadline = time.monotonic() + 5
        while not ran and time.monotonic() < deadline:
            time.sleep(0.02)
        body = json.dumps({"input": ["gone"] * 3, "max_new_tokens": 2}).encode()
        gone = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        gone.sendall(b"POST /v1/decode HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                     b"Content-Length: %d\r\n\r\n" % len(body) + body)
        deadline = time.monotonic() + 5
        while server.state.model_waiting < 4 and time.monotonic() < deadline:  # 1 + 3 inputs waiting
            time.sleep(0.02)
        gone.close()
        while server.state.model_waiting > 1 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert server.state.model_waiting == 1  # only the running request
        release.set()
        first.join(30)
        time.sleep(0.3)
        assert ran == [1], ran  # the withdrawn request's three texts never reached the model
        assert server.state.model_waiting == 0
    finally:
        release.set()
        server.close()


@pytest.mark.parametrize("raw", [b"FOO /v1/embeddings HTTP/1.1\r\nHost: x\r\n\r\n",
                                 b"POST /v1/embeddings HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
                                 b"POST /v1/embeddings HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
                                 b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", b"\x16\x03\x01\x02\x00garbage\r\n\r\n"])
def test_bytes_that_are_not_http_get_a_400_in_the_openai_shape(model, raw):
    server = ShedServer(model, ServeConfig())
    try:
        connection = socket.create_connection(("127.0.0.1", server.port), timeout=10)
        connection.sendall(raw)
        status, headers, body = error_of(read_until_closed(connection))
        assert status == 400 and headers["content-type"] == "application/json" and headers["connection"] == "close"
        assert body["error"]["code"] == "invalid_http" and body["error"]["type"] == "invalid_request_error"
        assert httpx.get(server.url + "/health").status_code == 200  # the server is unaffected
    finally:
        server.close()
