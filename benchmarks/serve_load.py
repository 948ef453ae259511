"""Many clients at one real `genvec serve`, every route's dialect mixed, every answer checked against the library.

    python benchmarks/serve_load.py                             # 16 clients x 500 requests, the tests' tiny model
    python benchmarks/serve_load.py --clients 8 --requests 25

It saves the tests' tiny model (a random qwen3 backbone, hidden 64, 2 layers; N=4, K=2, D=16) and starts `genvec
serve` on it in its own process on 127.0.0.1, with one declared prompt (`arguana`) beside the model's own query and
document instructions. `--clients` threads then each send `--requests` requests, cycling through `KINDS`:
- `/v1/embeddings` through the `openai` client with only `model` and `input` (its default base64 encoding): the
  aliases NAME-query, NAME-document and NAME-arguana, against `encode_query`, `encode_document` and `encode` with
  the declared instruction;
- `/v1/rerank` (Cohere's shape) and TEI's `/rerank`, 20 documents each, against `model.rerank`: the same order and
  the same scores;
- TEI's `/embed` (`prompt_name`), Ollama's `/api/embed` (an alias with Ollama's `:latest` tag; Ollama's vectors are
  normalised) and vLLM's `/v1/score`, through `httpx2`.
The library's answers are computed in this process before the load starts, on the same checkpoint; a vector or
score counts as equal when no element differs by 1e-5 or more. Printed: requests/s, p50 and p99 latency per kind,
errors (a failed request or a status other than 200) and mismatches (a 200 with another answer). The exit status
is 1 when there is any error or mismatch. `tests/integration/test_serve_dialects_load.py` runs the same `check`.
"""

import argparse
import contextlib
import itertools
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

MODEL_NAME = "tiny-genvec"
PROMPTS = {"arguana": "Generate text that refutes this claim"}
KINDS = ("openai NAME-query", "openai NAME-document", "openai NAME-arguana", "/v1/rerank", "TEI /rerank",
         "TEI /embed", "Ollama /api/embed", "/v1/score")
TOLERANCE = 1e-5
RERANK_DOCUMENTS = 20
_WORDS = ("river", "ice", "polar", "bear", "arctic", "water", "city", "winter", "north", "sea", "snow", "seal",
          "whale", "coast", "storm", "melt", "fish", "glacier", "island", "wind")


@dataclass(frozen=True)
class Library:
    """What the library answers for the fixed texts every request is drawn from."""

    queries: list[str]
    documents: list[str]
    vectors: dict[str, np.ndarray]
    """Normalised embeddings by prompt name (query, document, arguana): (len(texts(name)), D) float32."""
    rankings: list[list[tuple[int, float]]]
    """`model.rerank(queries[i], rerank_documents(i))` as (index, score), for every query i."""

    def texts(self, name: str) -> list[str]:
        return self.queries if name in ("query", "arguana") else self.documents

    def rerank_documents(self, case: int) -> list[str]:
        start = (case * 7) % len(self.documents)
        return [self.documents[(start + j) % len(self.documents)] for j in range(RERANK_DOCUMENTS)]


@dataclass
class Report:
    """What a load run saw: every request's seconds by kind, and one line per error and per mismatch."""

    seconds: float = 0.0
    latencies: dict[str, list[float]] = field(default_factory=lambda: {kind: [] for kind in KINDS})
    errors: list[str] = field(default_factory=list)
    mismatches: list[str] = field(default_factory=list)

    @property
    def requests(self) -> int:
        return sum(len(values) for values in self.latencies.values())

    def figures(self) -> str:
        """requests/s, p50 and p99 per kind, errors and mismatches (the first few of each, in full)."""
        lines = [f"{self.requests} requests in {self.seconds:.1f} s: {self.requests / self.seconds:.1f} requests/s; "
                 f"errors {len(self.errors)}, mismatches {len(self.mismatches)}",
                 f"{'kind':<22}{'requests':>9}{'p50 ms':>9}{'p99 ms':>9}"]
        for kind, values in self.latencies.items():
            ordered = sorted(values) or [float("nan")]
            lines.append(f"{kind:<22}{len(values):>9}{1000 * statistics.median(ordered):>9.1f}"
                         f"{1000 * ordered[int(0.99 * (len(ordered) - 1))]:>9.1f}")
        return "\n".join(lines + [f"error: {line}" for line in self.errors[:10]]
                         + [f"mismatch: {line}" for line in self.mismatches[:10]])


def library_answers(model, num_queries: int = 12, num_documents: int = 40, seed: int = 0) -> Library:
    """The library's vectors and rankings of seeded texts (queries of 4-10 words, documents of 6-40: their lengths
    differ, so the server's batches pad them)."""
    rng = random.Random(seed)
    queries = [" ".join(rng.choices(_WORDS, k=rng.randint(4, 10))) + "?" for _ in range(num_queries)]
    documents = [" ".join(rng.choices(_WORDS, k=rng.randint(6, 40))) + "." for _ in range(num_documents)]
    vectors = {"query": model.encode_query(queries, normalize=True),
               "document": model.encode_document(documents, normalize=True),
               "arguana": model.encode(queries, instruction=PROMPTS["arguana"], normalize=True)}
    library = Library(queries, documents, vectors, [])
    for case, query in enumerate(queries):
        ranked = model.rerank(query, library.rerank_documents(case))
        gap = min(first.score - second.score for first, second in itertools.pairwise(ranked))
        assert gap > 10 * TOLERANCE, f"query {case}'s documents score within {gap:.1e}: their order is no check"
        library.rankings.append([(hit.index, hit.score) for hit in ranked])
    return library


def check(url: str, library: Library, clients: int, requests: int, model_name: str = MODEL_NAME) -> Report:
    """`clients` threads, each with its own `openai` client and `httpx2` connection, send `requests` requests to the
    server at `url`, cycling through `KINDS`; every answer is compared with `library`'s."""
    report, lock = Report(), threading.Lock()

    def one_client(worker: int) -> None:
        import httpx2
        import openai

        sender = _Sender(openai.OpenAI(base_url=url + "/v1", api_key="unused", max_retries=0, timeout=120),
                         httpx2.Client(base_url=url, timeout=120), library, model_name)
        try:
            for n in range(requests):
                kind, case = KINDS[(worker + n) % len(KINDS)], (worker * 5 + n) % len(library.queries)
                started = time.perf_counter()
                error = problem = None
                try:
                    problem = sender.send(kind, case)
                except Exception as err:  # noqa: BLE001  whatever failed (connection, status, body) is counted, once
                    error = f"{type(err).__name__}: {err}"
                seconds = time.perf_counter() - started
                with lock:
                    report.latencies[kind].append(seconds)
                    if error is not None:
                        report.errors.append(f"client {worker} request {n} ({kind}): {error}")
                    if problem is not None:
                        report.mismatches.append(f"client {worker} request {n} ({kind}, case {case}): {problem}")
        finally:
            sender.http.close()
            sender.api.close()

    threads = [threading.Thread(target=one_client, args=(worker,)) for worker in range(clients)]
    started = time.perf_counter()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    report.seconds = time.perf_counter() - started
    return report


class _Sender:
    """One client's requests of each kind; `send` returns what differs from the library's answer (None: nothing)
    and raises for a failed request."""

    def __init__(self, api, http, library: Library, model_name: str) -> None:
        self.api, self.http, self.library, self.name = api, http, library, model_name
        self.kinds: dict[str, Callable[[int], str | None]] = {
            "openai NAME-query": lambda case: self._openai("query", case),
            "openai NAME-document": lambda case: self._openai("document", case),
            "openai NAME-arguana": lambda case: self._openai("arguana", case),
            "/v1/rerank": self._rerank, "TEI /rerank": self._tei_rerank, "TEI /embed": self._tei_embed,
            "Ollama /api/embed": self._ollama_embed, "/v1/score": self._score}

    def send(self, kind: str, case: int) -> str | None:
        return self.kinds[kind](case)

    def _openai(self, prompt: str, case: int) -> str | None:
        texts = self.library.texts(prompt)
        rows = [case % len(texts), (case + 3) % len(texts)]
        answer = self.api.embeddings.create(model=f"{self.name}-{prompt}", input=[texts[i] for i in rows])
        return _vectors_differ([item.embedding for item in answer.data], self.library.vectors[prompt][rows])

    def _rerank(self, case: int) -> str | None:
        documents = self.library.rerank_documents(case)
        body = self._post("/v1/rerank", {"model": self.name, "query": self.library.queries[case],
                                         "documents": documents})
        if any(item["document"]["text"] != documents[item["index"]] for item in body["results"]):
            return "a result's document is not the document at its index"
        return _ranking_differs([(item["index"], item["relevance_score"]) for item in body["results"]],
                                self.library.rankings[case])

    def _tei_rerank(self, case: int) -> str | None:
        body = self._post("/rerank", {"query": self.library.queries[case],
                                      "texts": self.library.rerank_documents(case)})
        return _ranking_differs([(item["index"], item["score"]) for item in body], self.library.rankings[case])

    def _tei_embed(self, case: int) -> str | None:
        rows = [case % len(self.library.queries), (case + 5) % len(self.library.queries)]
        body = self._post("/embed", {"inputs": [self.library.queries[i] for i in rows], "prompt_name": "query"})
        return _vectors_differ(body, self.library.vectors["query"][rows])

    def _ollama_embed(self, case: int) -> str | None:
        rows = [case % len(self.library.documents), (case + 11) % len(self.library.documents)]
        body = self._post("/api/embed", {"model": f"{self.name}-document:latest",
                                         "input": [self.library.documents[i] for i in rows]})
        return _vectors_differ(body["embeddings"], self.library.vectors["document"][rows])

    def _score(self, case: int) -> str | None:
        documents = self.library.rerank_documents(case)[:5]
        body = self._post("/v1/score", {"model": self.name, "text_1": self.library.queries[case],
                                        "text_2": documents})
        expected = dict(self.library.rankings[case])
        return _vectors_differ([[item["score"] for item in body["data"]]], np.array([[expected[i] for i in range(5)]]))

    def _post(self, path: str, body: dict):
        response = self.http.post(path, json=body)
        if response.status_code != 200:
            raise RuntimeError(f"{path} answered {response.status_code}: {response.text[:200]}")
        return response.json()


def _vectors_differ(got, expected: np.ndarray) -> str | None:
    got = np.asarray(got, dtype=np.float64)
    if got.shape != expected.shape:
        return f"shape {got.shape}, the library's {expected.shape}"
    difference = float(np.abs(got - expected).max())
    return None if difference < TOLERANCE else f"differs from the library's by {difference:.2e}"


def _ranking_differs(got: list[tuple[int, float]], expected: list[tuple[int, float]]) -> str | None:
    if [index for index, _ in got] != [index for index, _ in expected]:
        return f"order {[index for index, _ in got]}, the library's {[index for index, _ in expected]}"
    return _vectors_differ([score for _, score in got], np.array([score for _, score in expected]))


# ------------------------------------------------------------------------------------------------- the server


def save_tiny_model(directory: Path):
    """The tests' tiny model (qwen3 backbone, N=4, K=2, D=16, fp32, CPU), saved under `directory / "model"`; the
    model and its checkpoint directory."""
    import torch

    from genvec import GenVecModel
    from genvec.testing import save_tiny_backbone

    backbone = save_tiny_backbone(directory / "backbone", "qwen3")
    torch.manual_seed(0)
    model = GenVecModel.from_backbone(str(backbone), num_special_tokens=4, num_compression_tokens=2,
                                      embedding_dim=16, dtype="fp32", device="cpu")
    model.save_pretrained(directory / "model")
    return model, directory / "model"


@contextlib.contextmanager
def genvec_serve(checkpoint: Path, model_name: str = MODEL_NAME, ready_seconds: float = 120) -> Iterator[str]:
    """`genvec serve` on `checkpoint` in its own process on a free port of 127.0.0.1, declaring `PROMPTS`; its URL
    once /ready answers 200. The process is stopped on exit. Its log (an access line per request) goes to a file, not
    a pipe: a pipe nobody reads fills up and blocks the server."""
    import json

    import httpx2

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with tempfile.TemporaryFile("w+") as log:
        server = subprocess.Popen(
            [sys.executable, "-m", "genvec", "serve", "--model", str(checkpoint), "--device", "cpu", "--port",
             str(port), "--model-name", model_name, "--serve.prompts", json.dumps(PROMPTS)],
            env={**os.environ, "HF_HUB_OFFLINE": "1"}, stdout=subprocess.DEVNULL, stderr=log, text=True)
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + ready_seconds
            while True:
                with contextlib.suppress(httpx2.TransportError):
                    if httpx2.get(url + "/ready").status_code == 200:
                        break
                if server.poll() is not None or time.monotonic() > deadline:
                    log.seek(0)
                    raise RuntimeError(f"genvec serve did not become ready: {log.read()[-2000:]}")
                time.sleep(0.1)
            yield url
        finally:
            if server.poll() is None:
                server.terminate()
                server.wait(30)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--requests", type=int, default=500, help="requests per client")
    args = parser.parse_args()

    from genvec import load_model

    with tempfile.TemporaryDirectory() as scratch:
        _, checkpoint = save_tiny_model(Path(scratch))
        library = library_answers(load_model(checkpoint, device="cpu"))  # the server's model, read back
        with genvec_serve(checkpoint) as url:
            report = check(url, library, args.clients, args.requests)
    print(f"{args.clients} clients x {args.requests} requests, mixed over {len(KINDS)} kinds")
    print(report.figures())
    return 1 if report.errors or report.mismatches else 0


if __name__ == "__main__":
    sys.exit(main())
