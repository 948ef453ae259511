"""`genvec serve` under concurrency against a direct `model.encode` or `model.rerank`, figures from one run.

    python benchmarks/serve.py                      # the small preset's random backbone, 16 clients
    python benchmarks/serve.py --clients 16 --requests 1600 --tokens 16
    python benchmarks/serve.py --mode rerank        # documents scored/s: /v1/rerank against model.rerank

It saves a genvec checkpoint over the preset's random backbone (benchmarks/run.py's `small`: hidden 512, 8 layers),
starts `genvec serve` on it in its own process on 127.0.0.1, and then alternates, `--rounds` times:
1. direct: `model.encode` in this process over the same texts at the server's batch size (16: the most 16 one-text
   clients can fill), texts/s; the server is idle meanwhile;
2. server: `--clients` threads, each with a keep-alive connection, send one text per request (the `openai` client's
   request shape: `encoding_format` base64, its default) until `--requests` are done; texts/s, and the latency of
   every request.
With `--mode rerank` a request is a query and `--documents` documents (20) to /v1/rerank (Cohere's shape, as
rerankers send it), the direct path is `model.rerank` on the same query and documents, one request after another, at
the same batch size as the server's (32: `rerank`'s default), and the rates count documents scored per second.
Each round's ratio server / direct compares two measurements taken seconds apart, so a shared machine's changing
speed moves both; the figure is the median of the rounds' ratios (goal >= 0.8), with every round's figures beside
it. The clients are plain `http.client` connections, the lightest load generator the standard library has: they
run on the same cores as the server, so every millisecond a client spends is taken from the server (`httpx`, under
the `openai` client, costs about 3 x more CPU per request: benchmarks/serve_overhead.py). The CPU seconds per
request of the server process and of the clients are reported too. Results go to
`benchmarks/results/serve/<preset>-cpu[-rerank][-waitNms].json` and `.md` (or `--results-dir`). Figures are
printed, never asserted.
"""

import functools
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from harness import RESULTS, argument_parser, command_line, cpu_seconds, markdown_table, timed_call, write_result
from presets import CPU_PRESETS, PRESETS, load_saved_model, make_texts


def main() -> int:
    parser = argument_parser(__doc__)
    parser.add_argument("--preset", default="small", choices=CPU_PRESETS)
    parser.add_argument("--mode", choices=["embeddings", "rerank"], default="embeddings",
                        help="embeddings: one text per request against model.encode; rerank: a query and --documents "
                             "documents per request to /v1/rerank against model.rerank")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--requests", type=int, default=None,
                        help="requests per round (default: 1600 of one text each; 80 reranks)")
    parser.add_argument("--documents", type=int, default=20, help="documents per rerank request")
    parser.add_argument("--rounds", type=int, default=5, help="direct-then-server rounds; the ratio is their median")
    parser.add_argument("--tokens", type=int, default=16, help="tokens per text")
    parser.add_argument("--batch", type=int, default=None,
                        help="the server's (and the direct path's) batch size (default: 16; 32 for reranks)")
    parser.add_argument("--batch-wait-ms", type=int, default=None,
                        help="the server's --batch-wait-ms (default: the server's default)")
    parser.add_argument("--encoding", choices=["base64", "float"], default="base64",
                        help="encoding_format of the requests (default: base64, what the openai client sends)")
    parser.add_argument("--results-dir", default=str(RESULTS / "serve"), help="where the JSON and Markdown files go")
    args = parser.parse_args()
    rerank = args.mode == "rerank"
    args.requests = args.requests or (80 if rerank else 1600)
    args.batch = args.batch or (32 if rerank else 16)

    import torch

    model = load_saved_model(PRESETS[args.preset])
    texts = make_texts(model.tokenizer, 256, args.tokens, seed=7)
    workload = (_rerank_workload if rerank else _embeddings_workload)(model, texts, args)
    with tempfile.TemporaryDirectory() as scratch:
        checkpoint = Path(scratch) / "model"
        model.save_pretrained(checkpoint)
        port = free_port()
        server = subprocess.Popen(
            [sys.executable, "-m", "genvec", "serve", "--model", str(checkpoint), "--device", "cpu", "--port",
             str(port), "--max-batch-texts", str(args.batch),
             *([] if args.batch_wait_ms is None else ["--batch-wait-ms", str(args.batch_wait_ms)])],
            env={**os.environ, "HF_HUB_OFFLINE": "1"}, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            wait_until_ready(port, server)
            measured = _rounds(workload, server, port, args)
        finally:
            server.terminate()
            server.wait(30)
    result = _result(measured, workload, args)
    result.update(torch_threads=torch.get_num_threads(), cpu_count=os.cpu_count(), per_round=measured["rounds"],
                  command=command_line())
    stem = (f"{args.preset}-cpu" + ("-rerank" if rerank else "")
            + ("" if args.batch_wait_ms is None else f"-wait{args.batch_wait_ms}ms"))
    table = _markdown(result, workload.unit)
    write_result(Path(args.results_dir), stem, result, table + "\n")
    print(table)
    return 0


@dataclass(frozen=True)
class Workload:
    """One round's work, done once directly and once through the server."""

    unit: str  # what the rates count: "texts" embedded or "documents" scored
    count: int  # of them in one round
    direct: Callable[[], object]  # the library's pass over the round's work, in this process
    path: str  # the server's route
    bodies: list[str]  # the round's requests
    answer: bytes  # how a 200 answer's body starts


def _embeddings_workload(model, texts: list[str], args) -> Workload:
    work = [texts[i % len(texts)] for i in range(args.requests)]
    model.encode(work[:256], batch_size=args.batch, show_progress=False)  # warm-up
    return Workload("texts", len(work),
                    lambda: model.encode(work, batch_size=args.batch, normalize=True, show_progress=False),
                    "/v1/embeddings",
                    [json.dumps({"model": "m", "input": text, "encoding_format": args.encoding}) for text in work],
                    b'{"object":"list"')


def _rerank_workload(model, texts: list[str], args) -> Workload:
    """`args.requests` reranks of `args.documents` of `texts` each (consecutive ones, wrapping), for 64 queries of
    as many tokens as a text."""
    queries = make_texts(model.tokenizer, 64, args.tokens, seed=8)
    work = [(queries[i % len(queries)], [texts[(i * args.documents + j) % len(texts)] for j in range(args.documents)])
            for i in range(args.requests)]

    def direct() -> None:
        for query, documents in work:
            model.rerank(query, documents, batch_size=args.batch)

    for query, documents in work[:8]:  # warm-up
        model.rerank(query, documents, batch_size=args.batch)
    return Workload("documents", args.requests * args.documents, direct, "/v1/rerank",
                    [json.dumps({"model": "m", "query": query, "documents": documents}) for query, documents in work],
                    b'{"id":"rerank-')


def _rounds(workload: Workload, server: subprocess.Popen, port: int, args) -> dict:
    """`args.rounds` times: the workload directly in this process, then through the server; each round's rates,
    every latency, the error count, CPU seconds of both sides and the server's batch counts."""
    unit = workload.unit
    _load(port, workload, workload.bodies[: args.clients * 4], args.clients)  # warm the connections
    before = _batch_counts(port)
    rounds, latencies, errors = [], [], 0
    server_cpu, client_cpu = 0.0, 0.0
    for _ in range(args.rounds):
        _, direct_s = timed_call(workload.direct)
        direct_rate = workload.count / direct_s
        server_before, client_before = cpu_seconds(server.pid), cpu_seconds()
        (round_latencies, round_errors), server_s = timed_call(
            lambda: _load(port, workload, workload.bodies, args.clients))
        server_rate = workload.count / server_s
        server_cpu += cpu_seconds(server.pid) - server_before
        client_cpu += cpu_seconds() - client_before
        latencies += round_latencies
        errors += round_errors
        rounds.append({f"direct_{unit}_per_s": round(direct_rate, 1), f"server_{unit}_per_s": round(server_rate, 1),
                       "ratio": round(server_rate / direct_rate, 3)})
        print(f"round {len(rounds)}: direct {direct_rate:.1f} {unit}/s, server {server_rate:.1f} {unit}/s, "
              f"ratio {server_rate / direct_rate:.3f}", flush=True)
    after = _batch_counts(port)
    return {"rounds": rounds, "latencies": sorted(latencies), "errors": errors, "server_cpu": server_cpu,
            "client_cpu": client_cpu, "batches": after[0] - before[0], "batched_texts": after[1] - before[1]}


def _result(measured: dict, workload: Workload, args) -> dict:
    """The figures of a result file, from `_rounds`' measurements (the run's facts are added by the caller)."""
    rounds, latencies, unit = measured["rounds"], measured["latencies"], workload.unit
    requests_per_round = len(workload.bodies)
    requests = requests_per_round * args.rounds
    mode = ({"mode": "rerank", "documents_per_request": args.documents} if args.mode == "rerank"
            else {"encoding_format": args.encoding})
    return {
        "preset": args.preset, "clients": args.clients, "requests_per_round": requests_per_round,
        "rounds": args.rounds, "tokens_per_text": args.tokens, "batch": args.batch,
        "batch_wait_ms": "server default" if args.batch_wait_ms is None else args.batch_wait_ms, **mode,
        "ratio": round(statistics.median(r["ratio"] for r in rounds), 3), "ratio_min": min(r["ratio"] for r in rounds),
        "ratio_max": max(r["ratio"] for r in rounds), "errors": measured["errors"],
        f"direct_{unit}_per_s_median": statistics.median(r[f"direct_{unit}_per_s"] for r in rounds),
        f"server_{unit}_per_s_median": statistics.median(r[f"server_{unit}_per_s"] for r in rounds),
        "server_batches": int(measured["batches"]),
        "mean_texts_per_batch": round(measured["batched_texts"] / max(1.0, measured["batches"]), 2),
        "latency_ms_p50": round(1000 * statistics.median(latencies), 1),
        "latency_ms_p99": round(1000 * latencies[int(0.99 * (len(latencies) - 1))], 1),
        "server_cpu_ms_per_request": round(1000 * measured["server_cpu"] / requests, 2),
        "client_cpu_ms_per_request": round(1000 * measured["client_cpu"] / requests, 2),
    }


def _markdown(result: dict, unit: str) -> str:
    rounds = result["per_round"]
    header = ["ratio, median (min-max)", f"direct {unit}/s", f"server {unit}/s", "p50 ms", "p99 ms", "errors",
              "texts per model batch", "server CPU ms/request", "client CPU ms/request"]
    row = [f"{result['ratio']} ({result['ratio_min']}-{result['ratio_max']})", result[f"direct_{unit}_per_s_median"],
           result[f"server_{unit}_per_s_median"], result["latency_ms_p50"], result["latency_ms_p99"], result["errors"],
           result["mean_texts_per_batch"], result["server_cpu_ms_per_request"], result["client_cpu_ms_per_request"]]
    return "\n".join([
        f"Command: `{result['command'].strip()}`", "", *markdown_table(header, [row]),
        "", "Rounds (direct, then server, seconds apart): " + "; ".join(
            f"{r[f'direct_{unit}_per_s']} / {r[f'server_{unit}_per_s']} = {r['ratio']}" for r in rounds),
    ])


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def wait_until_ready(port: int, server: subprocess.Popen) -> None:
    """Poll GET /ready on 127.0.0.1:`port` until it answers 200; exit if `server` ends or two minutes pass."""
    deadline = time.monotonic() + 120
    while True:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        try:
            connection.request("GET", "/ready")
            if connection.getresponse().status == 200:
                return
        except OSError:
            pass
        finally:
            connection.close()
        if time.monotonic() > deadline or server.poll() is not None:
            raise SystemExit("the server did not become ready")
        time.sleep(0.2)


def _batch_counts(port: int) -> tuple[float, float]:
    """(model batches, texts in them) so far, from the server's /metrics."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        connection.request("GET", "/metrics")
        metrics = connection.getresponse().read().decode()
    finally:
        connection.close()
    values = {line.split(" ")[0]: float(line.split(" ")[1]) for line in metrics.splitlines()
              if line.startswith(("genvec_batch_texts_count ", "genvec_batch_texts_sum "))}
    return values["genvec_batch_texts_count"], values["genvec_batch_texts_sum"]


def _load(port: int, workload: Workload, bodies: list[str], clients: int) -> tuple[list[float], int]:
    """Send each of `bodies` to `workload.path` from `clients` threads to 127.0.0.1:`port`; latencies and the error
    count."""
    def one_client(index: int) -> tuple[list[float], int]:
        latencies, errors = [], 0
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        try:
            for body in bodies[index::clients]:
                (status, payload), seconds = timed_call(functools.partial(_post, connection, workload.path, body))
                latencies.append(seconds)
                errors += status != 200 or not payload.startswith(workload.answer)
        finally:
            connection.close()
        return latencies, errors

    with ThreadPoolExecutor(clients) as pool:
        parts = list(pool.map(one_client, range(clients)))
    return [x for part, _ in parts for x in part], sum(errors for _, errors in parts)


def _post(connection: http.client.HTTPConnection, path: str, body: str) -> tuple[int, bytes]:
    """POST one request to `path` on a kept-alive connection; the status and the whole response body."""
    connection.request("POST", path, body, {"Content-Type": "application/json"})
    response = connection.getresponse()
    return response.status, response.read()


if __name__ == "__main__":
    sys.exit(main())
