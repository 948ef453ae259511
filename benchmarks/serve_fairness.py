"""One one-text client's latency at `genvec serve` while two clients send maximal requests, for one or two code trees.

    python benchmarks/serve_fairness.py                                   # this checkout's genvec
    python benchmarks/serve_fairness.py --baseline /tmp/old-checkout/src  # alternated with another tree's

It saves a checkpoint over a tiny random backbone (`genvec.testing.save_tiny_backbone`: hidden 64, 2 layers, the
tests' model; it reads 508 tokens of text) and then, `--rounds` times, for each tree in turn (alternated, so a shared
machine's changing speed hits both alike), starts `genvec serve --truncate cut --max-inputs N` on it with that tree
first on PYTHONPATH, and for `--seconds`:
- two heavy clients each send maximal requests one after another: N texts (`--inputs`, the server's limit), each
  longer than the model reads (cut to its limit): N x 508 tokens per request;
- one light client sends a one-text request, waits for the answer, waits 0.1 s, and again (a request unanswered
  after 120 s is counted as 120 s and ends the round: the FIFO server before fair batching starved it that long).
Reported per tree: the light client's latency (p50, p99, max, over every round) and how many requests it made, and
the texts/s the heavy clients got answered over the round's whole length (fairness should not cost throughput).
Results go to `benchmarks/results/serve/fairness-<inputs>.json` and `.md` (or `--results-dir`). Figures are printed,
never asserted.
"""

import http.client
import json
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from harness import RESULTS, argument_parser, command_line, markdown_table, write_result
from serve import free_port, wait_until_ready

WORDS = ["the", "river", "ice", "bear", "polar", "arctic", "water", "city", "house", "model", "token", "winter"]
LIGHT_TEXT = "where do polar bears live?"
GIVE_UP_SECONDS = 120.0  # a light request unanswered this long counts as this long, and ends its round
THIS_TREE = str(Path(__file__).resolve().parents[1] / "src")


def main() -> int:
    parser = argument_parser(__doc__)
    parser.add_argument("--baseline", default=None, help="another tree's src directory, measured alternately")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per tree")
    parser.add_argument("--seconds", type=float, default=20.0, help="length of each round's measurement")
    parser.add_argument("--inputs", type=int, default=256, help="texts per heavy request (the server's --max-inputs)")
    parser.add_argument("--results-dir", default=str(RESULTS / "serve"), help="where the JSON and Markdown files go")
    args = parser.parse_args()

    trees = {"this tree": THIS_TREE, **({"baseline": args.baseline} if args.baseline else {})}
    rng = random.Random(1)
    heavy_body = json.dumps({"input": [" ".join(rng.choice(WORDS) for _ in range(330))[:1850]
                                       for _ in range(args.inputs)]})
    measured = {name: [] for name in trees}
    with tempfile.TemporaryDirectory() as scratch:
        checkpoint = _save_checkpoint(Path(scratch), args.baseline or THIS_TREE)
        for round_index in range(args.rounds):
            for name, tree in trees.items():
                figures = _round(checkpoint, tree, heavy_body, args)
                measured[name].append(figures)
                print(f"round {round_index + 1}, {name}: light p50 {_ms(figures['latencies'], 0.5)} ms, max "
                      f"{_ms(figures['latencies'], 1.0)} ms over {len(figures['latencies'])} requests; heavy "
                      f"{figures['heavy_texts'] / figures['seconds']:.0f} texts/s", flush=True)
    result = {"inputs": args.inputs, "rounds": args.rounds, "seconds": args.seconds, "trees": trees,
              "cpu_count": os.cpu_count(), "command": command_line(),
              "figures": {name: _summary(rounds) for name, rounds in measured.items()}}
    table = _markdown(result)
    write_result(Path(args.results_dir), f"fairness-{args.inputs}", result, table + "\n")
    print(table)
    return 0


def _save_checkpoint(scratch: Path, tree: str) -> Path:
    """The tests' tiny model (qwen3 backbone, N=4, K=2, D=16), saved by `tree`'s genvec (the baseline's, when there
    is one: an older genvec may not read a newer one's config)."""
    code = ("import sys, torch\nfrom genvec import GenVecModel\nfrom genvec.testing import save_tiny_backbone\n"
            "backbone = save_tiny_backbone(sys.argv[1] + '/backbone', 'qwen3')\ntorch.manual_seed(0)\n"
            "model = GenVecModel.from_backbone(str(backbone), num_special_tokens=4, num_compression_tokens=2, "
            "embedding_dim=16, dtype='fp32', device='cpu')\nmodel.save_pretrained(sys.argv[1] + '/model')\n")
    subprocess.run([sys.executable, "-c", code, str(scratch)], env={**os.environ, "PYTHONPATH": tree}, check=True,
                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return scratch / "model"


def _round(checkpoint: Path, tree: str, heavy_body: str, args) -> dict:
    """One server with `tree`'s genvec: the light client's latencies and the heavy clients' answered texts."""
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "genvec", "serve", "--model", str(checkpoint), "--device", "cpu", "--port", str(port),
         "--truncate", "cut", "--max-inputs", str(args.inputs)],
        env={**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": tree}, stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL)
    stop, answered = threading.Event(), []
    try:
        wait_until_ready(port, server)
        heavy = [threading.Thread(target=_heavy_client, args=(port, heavy_body, stop, answered)) for _ in range(2)]
        started = time.monotonic()
        for thread in heavy:
            thread.start()
        time.sleep(1.0)  # both heavy requests are queued
        latencies = _light_client(port, args.seconds)
        heavy_texts, seconds = args.inputs * len(answered), time.monotonic() - started
    finally:
        stop.set()
        server.kill()  # no graceful drain of the heavy requests in flight: the round is over
        server.wait(60)
    return {"latencies": latencies, "heavy_texts": heavy_texts, "seconds": seconds}


def _heavy_client(port: int, body: str, stop: threading.Event, answered: list) -> None:
    """Send `body` again and again until `stop`; append the time of each answer (200) to `answered`."""
    while not stop.is_set():
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
        try:
            connection.request("POST", "/v1/embeddings", body, {"Content-Type": "application/json"})
            response = connection.getresponse()
            response.read()
            if response.status == 200 and not stop.is_set():
                answered.append(time.monotonic())
        except (OSError, http.client.HTTPException):
            return  # the server was stopped at the end of the round
        finally:
            connection.close()


def _light_client(port: int, seconds: float) -> list[float]:
    """One-text requests one after another (0.1 s apart) for `seconds`; each one's latency. A request still
    unanswered after GIVE_UP_SECONDS ends the round with that latency (a lower bound: it was starved)."""
    latencies, started = [], time.monotonic()
    body = json.dumps({"input": LIGHT_TEXT})
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=GIVE_UP_SECONDS)
    try:
        while time.monotonic() - started < seconds:
            sent = time.perf_counter()
            connection.request("POST", "/v1/embeddings", body, {"Content-Type": "application/json"})
            try:
                response = connection.getresponse()
            except TimeoutError:
                latencies.append(GIVE_UP_SECONDS)
                break
            response.read()
            if response.status != 200:
                raise SystemExit(f"the light client got {response.status}")
            latencies.append(time.perf_counter() - sent)
            time.sleep(0.1)
    finally:
        connection.close()
    return latencies


def _ms(latencies: list[float], quantile: float) -> float:
    ordered = sorted(latencies)
    return round(1000 * ordered[int(quantile * (len(ordered) - 1))], 1)


def _summary(rounds: list[dict]) -> dict:
    latencies = [x for figures in rounds for x in figures["latencies"]]
    return {"light_requests": len(latencies), "light_p50_ms": _ms(latencies, 0.5),
            "light_p99_ms": _ms(latencies, 0.99), "light_max_ms": _ms(latencies, 1.0),
            "heavy_texts_per_s": round(sum(f["heavy_texts"] for f in rounds) / sum(f["seconds"] for f in rounds), 1),
            "per_round_light_max_ms": [_ms(f["latencies"], 1.0) for f in rounds]}


def _markdown(result: dict) -> str:
    header = ["tree", "light requests", "light p50 ms", "light p99 ms", "light max ms", "heavy texts/s"]
    rows = [[name, f["light_requests"], f["light_p50_ms"], f["light_p99_ms"], f["light_max_ms"],
             f["heavy_texts_per_s"]] for name, f in result["figures"].items()]
    return "\n".join([f"Command: `{result['command'].strip()}`", "", *markdown_table(header, rows)])


if __name__ == "__main__":
    sys.exit(main())
