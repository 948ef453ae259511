"""Bulk corpus encoding (`genvec encode --input --output DIR`) against one `model.encode` call, one command.

    python benchmarks/bulk.py                       # the small preset's random backbone, 4,096 texts of ~48 tokens
    python benchmarks/bulk.py --texts 8192 --processes 2

In one run: `model.encode` over every text (batch 32) in this process; then `genvec encode` in a fresh process over
the same texts as a JSONL corpus (shards of 1,024), with one process and with `--processes` CPU processes under
torchrun (each with its share of the cores: OMP_NUM_THREADS = cores / processes). Texts/s of each, wall clock from
process start to the last shard (so the bulk figures include loading the model). Results go to
`benchmarks/results/bulk/<preset>-cpu.json` and `.md` (or `--results-dir`); printed, never asserted.

    python benchmarks/bulk.py --ray                 # Ray against the process-shard path and one encode
    python benchmarks/bulk.py --ray --device cuda --preset qwen3-0.6b --texts 2048 --tokens 128   # one GPU

With `--ray`, three ways over the same texts, alternated in `--rounds` rounds (each round starts with another):
`genvec.integrations.ray.embed_dataset` on an actor pool of `--processes` actors (one CPU each; on a GPU one actor
with the GPU) into a fresh directory, the process-shard path (`genvec encode --output DIR` under torchrun with
`--processes` CPU processes, or one process on the GPU), and one `model.encode` in this process. Ray is started
once before the rounds (`ray.init`, its seconds recorded apart, as a cluster exists before a job); the Ray and
process figures include loading the model, the encode figure does not. Texts/s are the median over rounds; ratios
are Ray's over the others. Results: `<preset>-<device>-ray.json` and `.md`.
"""

import functools
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from harness import RESULTS, argument_parser, command_line, markdown_table, timed_call, write_result
from presets import CPU_PRESETS, PRESETS, load_saved_model, make_texts, save_backbone


def main() -> int:
    parser = argument_parser(__doc__)
    parser.add_argument("--preset", default="small", choices=list(PRESETS), help="a CPU preset (default: small), "
                        "or with --ray --device cuda a GPU one")
    parser.add_argument("--texts", type=int, default=4096)
    parser.add_argument("--tokens", type=int, default=48)
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--results-dir", default=str(RESULTS / "bulk"), help="where the JSON and Markdown files go")
    parser.add_argument("--ray", action="store_true", help="Ray vs the process-shard path vs one encode, alternated")
    parser.add_argument("--rounds", type=int, default=2, help="with --ray: rounds of the three (default: 2)")
    parser.add_argument("--device", default="cpu", help="with --ray: cpu, or cuda (one GPU actor beside encode)")
    args = parser.parse_args()
    if args.ray:
        return _ray_comparison(args)
    if args.preset not in CPU_PRESETS or args.device != "cpu":
        parser.error(f"without --ray, bulk.py runs on the CPU only: pass one of {', '.join(CPU_PRESETS)}")

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


def _ray_comparison(args) -> int:
    """Ray's `embed_dataset`, the process-shard path and one `model.encode`, alternated; see the module docstring."""
    import pyarrow as pa
    import pyarrow.parquet as pq
    import ray

    from genvec.integrations.ray import embed_dataset

    gpu = args.device.startswith("cuda")
    workers = 1 if gpu else args.processes  # one GPU: one actor, one process
    model = _load_model(PRESETS[args.preset], args.device)
    unique = make_texts(model.tokenizer, 512, args.tokens, seed=11)
    texts = [f"{i}: {unique[i % len(unique)]}" for i in range(args.texts)]
    cores = os.cpu_count() or 1
    seconds: dict[str, list[float]] = {"ray": [], "process_shards": [], "encode": []}
    with tempfile.TemporaryDirectory() as directory:
        scratch = Path(directory)
        model.save_pretrained(scratch / "model")
        corpus = scratch / "corpus.jsonl"
        corpus.write_text("".join(json.dumps({"id": i, "text": t}) + "\n" for i, t in enumerate(texts)))
        pq.write_table(pa.table({"id": [str(i) for i in range(len(texts))], "text": texts}), scratch / "corpus.parquet")
        start = time.perf_counter()
        ray.init(num_cpus=cores, include_dashboard=False, log_to_driver=False)
        ray_start_s = time.perf_counter() - start
        runs = {
            "ray": lambda r: timed_call(lambda: embed_dataset(scratch / "corpus.parquet", scratch / "model",
                                                              output=scratch / f"ray-{r}", actors=workers,
                                                              batch_size=32))[1],
            "process_shards": lambda r: _bulk_encode_seconds(scratch, corpus, workers, cores, args.device, f"p-{r}"),
            "encode": lambda r: timed_call(functools.partial(model.encode, texts, batch_size=32,
                                                             show_progress=False), model.device)[1],
        }
        names = list(runs)
        for round_index in range(args.rounds):
            for name in names[round_index % 3:] + names[: round_index % 3]:  # each round starts with another
                seconds[name].append(runs[name](round_index))
                print(f"round {round_index}: {name} {len(texts) / seconds[name][-1]:.1f} texts/s", flush=True)
        ray.shutdown()
    rates = {name: round(len(texts) / statistics.median(values), 1) for name, values in seconds.items()}
    figures = {**{f"{name}_texts_per_s": rate for name, rate in rates.items()},
               "ray_over_process_shards": round(rates["ray"] / rates["process_shards"], 3),
               "ray_over_encode": round(rates["ray"] / rates["encode"], 3)}
    result = {"preset": args.preset, "device": args.device, "texts": len(texts), "tokens_per_text": args.tokens,
              "cpu_count": cores, "workers": workers, "rounds": args.rounds, "ray_start_s": round(ray_start_s, 1),
              "seconds": {name: [round(value, 2) for value in values] for name, values in seconds.items()},
              **figures, "ray_version": ray.__version__, "command": command_line()}
    names = list(figures)
    table = "\n".join([f"Command: `{result['command'].strip()}`", "",
                       *markdown_table(names, [[figures[name] for name in names]])])
    write_result(Path(args.results_dir), f"{args.preset}-{'cuda' if gpu else 'cpu'}-ray", result, table + "\n")
    print(table)
    return 0


def _load_model(preset, device: str):
    """The preset's saved random backbone with seeded special vectors and projections, on `device`."""
    if device == "cpu":
        return load_saved_model(preset)
    import torch

    from genvec import GenVecModel

    torch.manual_seed(0)
    return GenVecModel.from_backbone(save_backbone(preset), embedding_dim=384, dtype=preset.dtype, device=device)


def _bulk_encode_seconds(scratch: Path, corpus: Path, processes: int, cores: int, device: str = "cpu",
                         tag: str = "") -> float:
    """Wall seconds of `genvec encode` over `corpus` with `processes` processes (torchrun beyond one; CPU ones unless
    `device` is a GPU) into `scratch/out-<processes><tag>`, from process start to the last shard."""
    words = ["encode", "--model", str(scratch / "model"), "--device", device, "--input", str(corpus),
             "--output", str(scratch / f"out-{processes}{tag}"), "--shard-size", "1024", "--batch-size", "32"]
    launcher = [sys.executable, "-m", "genvec"] if processes == 1 else [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", str(processes), "--master_port",
        "29571", "-m", "genvec"]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": str(max(1, cores // processes)),
           **({"ACCELERATE_USE_CPU": "1"} if device == "cpu" else {})}
    _, seconds = timed_call(lambda: subprocess.run([*launcher, *words], env=env, check=True,
                                                   stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
    return seconds


if __name__ == "__main__":
    sys.exit(main())
