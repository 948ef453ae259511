"""One training seed of a `genvec quickstart --real` recipe on a real run's data, scored on its retrieval tasks.

    python benchmarks/real_recipe.py train --data runs/real --output runs/recipes/every4-480-s1 --seed 1 \
        --set loss.reconstruction_every=4 --set train.max_steps=480
    python benchmarks/real_recipe.py summary --hyde runs/real/eval/scores.json runs/recipes/*-s*

`train` trains the real run's recipe (`genvec quickstart --real`'s config with the `--set` overrides; training seed S
and the special vectors' seed S, as `--seeds` trains seed S) on the data of a run directory (`responses.jsonl`,
`targets/` and `bench/` of a `genvec quickstart --real` run that got past its targets stage, default or `--preset
long`), logs the held-out distillation cosine every 40 steps, then runs `genvec evaluate --local` for genvec alone on
NQAnswers, BoolQPassages and HarmfulRequests into OUTPUT/eval and writes OUTPUT/summary.json. The baselines train
nothing: they are scored once, by the run's own evaluation. Rerun after a kill: training resumes from its last
checkpoint and the evaluation from its cached scores.

`summary` groups the output directories by recipe (the name without its `-sN` ending) and prints, per task, genvec's
score on each seed, the mean and the range, and the mean's share of HyDE (`baseline/hyde` of the scores.json given
to `--hyde`: the run's own evaluation), with HarmfulRequests' any_harm@1 and the final held-out cosine.

What the README's recipe comparison ran: a quickstart seed also decodes and scores MMLU clustering; this isolates
what the training recipe changes on the tasks the 80%-of-HyDE goal is judged on.
"""

import json
import re
import statistics
import time
from pathlib import Path

from harness import argument_parser

TASKS = ("NQAnswers", "BoolQPassages", "HarmfulRequests")


def main(argv: list[str] | None = None) -> int:
    parser = argument_parser(__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    train = commands.add_parser("train", help="train one seed of a recipe and score it")
    train.add_argument("--data", type=Path, required=True, help="a genvec quickstart --real run directory")
    train.add_argument("--output", type=Path, required=True, help="where the model, its log and its scores go")
    train.add_argument("--seed", type=int, default=0, help="training seed (default 0, the one-seed run's)")
    train.add_argument("--set", action="append", default=[], metavar="SECTION.FIELD=VALUE",
                       help="a config override, e.g. loss.reconstruction_every=4 (repeatable)")
    summary = commands.add_parser("summary", help="mean and range over the seeds of each recipe")
    summary.add_argument("--hyde", type=Path, required=True, help="a scores.json with baseline/hyde")
    summary.add_argument("outputs", type=Path, nargs="+", help="output directories of `train`")
    args = parser.parse_args(argv)
    if args.command == "train":
        return _train(args.data, args.output, args.seed, args.set)
    print(_summary(json.loads(args.hyde.read_text(encoding="utf-8")), args.outputs))
    return 0


def _train(data: Path, output: Path, seed: int, overrides: list[str]) -> int:
    from genvec.evaluate.run import evaluate_model, select_tasks
    from genvec.quickstart import real, stages

    backbone = Path.home() / ".cache" / "genvec" / "backbones" / real.BACKBONE_NAME
    config = real._config(real.RealOptions(run_dir=data), data, str(backbone), stages.minilm_path())
    config = config.with_overrides([f"--train.run_dir={output / 'train'}", f"--train.seed={seed}",
                                    f"--tokens.init_seed={seed}", "--train.eval_every=40",
                                    *(f"--{pair}" for pair in overrides)])
    started = time.perf_counter()
    model = stages._train(config, None)
    trained = time.perf_counter() - started
    tasks, table = select_tasks(local=data / "bench")
    started = time.perf_counter()
    result = evaluate_model(model, [task for task in tasks if task.metadata.name in TASKS], output / "eval",
                            instructions=table, checkpoint=output / "train" / "final", baselines=[],
                            show_progress=False)
    print(result.table)
    document = {"data": str(data), "seed": seed, "overrides": overrides, "train_s": round(trained, 1),
                "eval_s": round(time.perf_counter() - started, 1)}
    (output / "summary.json").write_text(json.dumps(document, indent=1) + "\n", encoding="utf-8")
    return 0


def _seed_scores(output: Path) -> dict:
    """One output directory's main scores, any_harm@1 and final held-out and training cosines."""
    scores = json.loads((output / "eval" / "scores.json").read_text(encoding="utf-8"))
    found = {task: entry["main_score"] for task, entry in scores["methods"][scores["model"]].items()}
    for path in (output / "eval" / "mteb").rglob("HarmfulRequests.json"):
        found["any_harm@1"] = json.loads(path.read_text(encoding="utf-8"))["scores"]["test"][0]["any_harm_at_1"]
    from genvec.training.checkpoints import read_metrics

    last = [line for line in read_metrics(output / "train" / "metrics.jsonl") if "heldout_cosine" in line][-1]
    found["held-out cosine"], found["training cosine"] = last["heldout_cosine"], last["train_cosine"]
    return found


def _summary(hyde_scores: dict, outputs: list[Path]) -> str:
    hyde = {task: entry["main_score"] for task, entry in hyde_scores["methods"]["baseline/hyde"].items()}
    recipes: dict[str, list[Path]] = {}
    for output in sorted(outputs):
        recipes.setdefault(re.sub(r"-s\d+$", "", output.name), []).append(output)
    lines = ["| recipe | measure | per seed | mean (min-max) | mean / HyDE |", "|---|---|---|---|---|"]
    for recipe, directories in recipes.items():
        seeds = [_seed_scores(directory) for directory in directories]
        for measure in (*TASKS, "any_harm@1", "held-out cosine", "training cosine"):
            values = [seed[measure] for seed in seeds if measure in seed]
            if not values:
                continue
            mean = statistics.fmean(values)
            share = f"{mean / hyde[measure]:.1%}" if measure in hyde else ""
            lines.append(f"| {recipe} ({len(values)} seeds) | {measure} | {', '.join(f'{v:.4f}' for v in values)} | "
                         f"{mean:.4f} ({min(values):.4f}-{max(values):.4f}) | {share} |")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
