"""CPU the `genvec serve` process spends per one-text request, and what the client spends, one command.

    python benchmarks/serve_overhead.py                     # uvicorn's stacks x clients, 400 requests each
    PYTHONPATH=OLD_CHECKOUT/src python benchmarks/serve_overhead.py   # the same for another version of genvec

A tiny random genvec model is served on 127.0.0.1 (uvicorn with `--loop asyncio --http h11`, the pure-Python
stack, and with uvloop + httptools when installed); one client sends requests one after another, so every request
is its own model batch. Printed: CPU ms per request of the server process (/proc, model included) and of the client
(`http.client` or `httpx`). Figures are printed, never asserted.
"""

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

from harness import argument_parser, cpu_seconds
from serve import free_port, wait_until_ready


def main() -> int:
    parser = argument_parser(__doc__)
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--serve-child", nargs=4, help=argparse.SUPPRESS)  # model port loop http
    args = parser.parse_args()
    if args.serve_child:
        return _serve(*args.serve_child)

    import torch

    from genvec import GenVecModel
    from genvec.testing import save_tiny_backbone

    with tempfile.TemporaryDirectory() as scratch:
        torch.manual_seed(0)
        backbone = save_tiny_backbone(Path(scratch) / "backbone")
        model_dir = Path(scratch) / "model"
        GenVecModel.from_backbone(str(backbone), embedding_dim=32, device="cpu").save_pretrained(model_dir)
        stacks = [("asyncio", "h11")]
        try:
            import httptools  # noqa: F401
            import uvloop  # noqa: F401

            stacks.append(("uvloop", "httptools"))
        except ImportError:
            pass
        for loop, parser_name in stacks:
            for client in ("http.client", "httpx"):
                server, client_ms = _measure(model_dir, loop, parser_name, client, args.requests)
                print(f"{loop:8} {parser_name:10} client {client:12} server {server:6.2f} ms CPU/request, "
                      f"client {client_ms:5.2f} ms CPU/request", flush=True)
    return 0


def _serve(model_dir: str, port: str, loop: str, parser_name: str) -> int:
    import uvicorn

    from genvec.loading import load_model
    from genvec.serve.app import create_app

    app = create_app(load_model(model_dir, device="cpu"))
    uvicorn.run(app, host="127.0.0.1", port=int(port), log_config=None, access_log=False, loop=loop, http=parser_name)
    return 0


def _measure(model_dir: Path, loop: str, parser_name: str, client: str, requests: int) -> tuple[float, float]:
    import http.client

    port = free_port()
    server = subprocess.Popen([sys.executable, __file__, "--serve-child", str(model_dir), str(port), loop, parser_name],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    body = json.dumps({"model": "m", "input": "where do polar bears live?", "encoding_format": "base64"})
    try:
        wait_until_ready(port, server)
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        if client == "httpx":
            import httpx2 as httpx

            session = httpx.Client(base_url=f"http://127.0.0.1:{port}")

            def send() -> int:
                return session.post("/v1/embeddings", content=body,
                                    headers={"Content-Type": "application/json"}).status_code
        else:
            def send() -> int:
                connection.request("POST", "/v1/embeddings", body, {"Content-Type": "application/json"})
                response = connection.getresponse()
                response.read()
                return response.status

        for _ in range(50):  # warm-up
            send()
        server_cpu, client_cpu = cpu_seconds(server.pid), cpu_seconds()
        statuses = [send() for _ in range(requests)]
        server_cpu, client_cpu = cpu_seconds(server.pid) - server_cpu, cpu_seconds() - client_cpu
        if set(statuses) != {200}:
            raise SystemExit(f"requests failed: {sorted(set(statuses))}")
    finally:
        server.terminate()
        server.wait(30)
    return 1000 * server_cpu / requests, 1000 * client_cpu / requests


if __name__ == "__main__":
    sys.exit(main())
