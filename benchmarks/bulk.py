"""Bulk corpus encoding (`genvec encode --input --output DIR`) against one `model.encode` call, one command.

    python benchmarks/bulk.py                       # the small preset's random backbone, 4,096 texts of ~48 tokens
    python benchmarks/bulk.py --texts 8192 --processes 2

In one run: `model.encode` over every text (batch 32) in this process; then `genvec encode` in a fresh process over
the same texts as a JSONL corpus (shards of 1,024), with one process and with `--processes` CPU processes under
torchrun (each with its share of the cores: OMP_NUM_THREADS = cores / processes). Texts/s of each, wall clock from
process start to the last shard (so the bulk figures include loading the model). Results go to
`benchmarks/results/bulk/<preset>-cpu.json` and `.md`; printed, never asserted.
"""

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import run as bench  # noqa: E402

RESULTS = Path(__file__).parent / "results" / "bulk"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="small", choices=[n for n, p in bench.PRESETS.items() if p.device == "cpu"])
    parser.add_argument("--texts", type=int, default=4096)
    parser.add_argument("--tokens", type=int, default=48)
    parser.add_argument("--processes", type=int, default=2)
    args = parser.parse_args()

    import torch

    from genvec import GenVecModel

    preset = bench.PRESETS[args.preset]
    torch.manual_seed(0)
    model = GenVecModel.from_backbone(bench.save_backbone(preset), embedding_dim=384, dtype=preset.dtype, device="cpu")
    unique = bench.make_texts(model.tokenizer, 512, args.tokens, seed=11)
    texts = [f"{i}: {unique[i % len(unique)]}" for i in range(args.texts)]
    start = time.perf_counter()
    model.encode(texts, batch_size=32, show_progress=False)
    direct = len(texts) / (time.perf_counter() - start)
    figures = {"direct_encode_texts_per_s": round(direct, 1)}
    cores = os.cpu_count() or 1
    with tempfile.TemporaryDirectory() as scratch:
        scratch = Path(scratch)
        model.save_pretrained(scratch / "model")
        corpus = scratch / "corpus.jsonl"
        corpus.write_text("".join(json.dumps({"id": i, "text": t}) + "\n" for i, t in enumerate(texts)))
        del model
        for processes in (1, args.processes):
            words = ["encode", "--model", str(scratch / "model"), "--device", "cpu", "--input", str(corpus),
                     "--output", str(scratch / f"out-{processes}"), "--shard-size", "1024", "--batch-size", "32"]
            launcher = [sys.executable, "-m", "genvec"] if processes == 1 else [
                sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(processes), "--master_port",
                "29571", "-m", "genvec"]
            env = {**os.environ, "HF_HUB_OFFLINE": "1", "ACCELERATE_USE_CPU": "1",
                   "OMP_NUM_THREADS": str(max(1, cores // processes))}
            start = time.perf_counter()
            subprocess.run([*launcher, *words], env=env, check=True, stdout=subprocess.DEVNULL,
                           stderr=subprocess.DEVNULL)
            figures[f"bulk_{processes}_process_texts_per_s"] = round(len(texts) / (time.perf_counter() - start), 1)
    result = {"preset": args.preset, "texts": len(texts), "tokens_per_text": args.tokens, "cpu_count": cores,
              **figures, "command": "python benchmarks/bulk.py " + " ".join(sys.argv[1:])}
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / f"{args.preset}-cpu.json").write_text(json.dumps(result, indent=2) + "\n")
    names = [key for key in figures]
    table = "\n".join([f"Command: `{result['command'].strip()}`", "",
                       "| " + " | ".join(names) + " |", "|" + " --- |" * len(names),
                       "| " + " | ".join(str(figures[name]) for name in names) + " |"])
    (RESULTS / f"{args.preset}-cpu.md").write_text(table + "\n")
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
