"""Bulk corpus encoding (`genvec encode --input --output DIR`) against one `model.encode` call, one command.

    python benchmarks/bulk.py                       # the small preset's random backbone, 4,096 texts of ~48 tokens
    python benchmarks/bulk.py --texts 8192 --processes 2

In one run: `model.encode` over every text (batch 32) in this process; then `genvec encode` in a fresh process over
the same texts as a JSONL corpus (shards of 1,024), with one process and with `--processes` CPU processes under
torchrun (each with its share of the cores: OMP_NUM_THREADS = cores / processes). Texts/s of each, wall clock from
process start to the last shard (so the bulk figures include loading the model). Results go to
`benchmarks/results/bulk/<preset>-cpu.json` and `.md` (or `--results-dir`); printed, never asserted.
"""

import functools
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from harness import RESULTS, argument_parser, command_line, markdown_table, timed_call, write_result
from presets import CPU_PRESETS, PRESETS, load_saved_model, make_texts


def main() -> int:
    parser = argument_parser(__doc__)
    parser.add_argument("--preset", default="small", choices=CPU_PRESETS)
    parser.add_argument("--texts", type=int, default=4096)
    parser.add_argument("--tokens", type=int, default=48)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--results-dir", default=str(RESULTS / "bulk"), help="where the JSON and Markdown files go")
    args = parser.parse_args()

    model = load_saved_model(PRESETS[args.preset])
    unique = make_texts(model.tokenizer, 512, args.tokens, seed=11)
    texts = [f"{i}: {unique[i % len(unique)]}" for i in range(args.texts)]
    _, seconds = timed_call(functools.partial(model.encode, texts, batch_size=32, show_progress=False))
    figures = {"direct_encode_texts_per_s": round(len(texts) / seconds, 1)}
    cores = os.cpu_count() or 1
    with tempfile.TemporaryDirectory() as directory:
        scratch = Path(directory)
        model.save_pretrained(scratch / "model")
        corpus = scratch / "corpus.jsonl"
        corpus.write_text("".join(json.dumps({"id": i, "text": t}) + "\n" for i, t in enumerate(texts)))
        del model
        for processes in (1, args.processes):
            seconds = _bulk_encode_seconds(scratch, corpus, processes, cores)
            figures[f"bulk_{processes}_process_texts_per_s"] = round(len(texts) / seconds, 1)
    result = {"preset": args.preset, "texts": len(texts), "tokens_per_text": args.tokens, "cpu_count": cores,
              **figures, "command": command_line()}
    names = list(figures)
    table = "\n".join([f"Command: `{result['command'].strip()}`", "",
                       *markdown_table(names, [[figures[name] for name in names]])])
    write_result(Path(args.results_dir), f"{args.preset}-cpu", result, table + "\n")
    print(table)
    return 0


def _bulk_encode_seconds(scratch: Path, corpus: Path, processes: int, cores: int) -> float:
    """Wall seconds of `genvec encode` over `corpus` with `processes` CPU processes (torchrun beyond one), from
    process start to the last shard."""
    words = ["encode", "--model", str(scratch / "model"), "--device", "cpu", "--input", str(corpus),
             "--output", str(scratch / f"out-{processes}"), "--shard-size", "1024", "--batch-size", "32"]
    launcher = [sys.executable, "-m", "genvec"] if processes == 1 else [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(processes), "--master_port",
        "29571", "-m", "genvec"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "ACCELERATE_USE_CPU": "1",
           "OMP_NUM_THREADS": str(max(1, cores // processes))}
    _, seconds = timed_call(lambda: subprocess.run([*launcher, *words], env=env, check=True,
                                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    return seconds


if __name__ == "__main__":
    sys.exit(main())
