"""Run an evaluation: a genvec model on mteb tasks (by name, a benchmark, or a local directory), results kept.

mteb writes its own result layout under `OUTPUT/mteb/` (one JSON per task, the model's metadata); a task already
scored there for this checkpoint is not run again, so an interrupted evaluation loses at most the task in progress.
genvec adds `OUTPUT/scores.json` (main score and every score of each task) and `OUTPUT/summary.md` (a table), both
written atomically after every run.
"""

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

from genvec.errors import InputError
from genvec.evaluate.instructions import InstructionTable
from genvec.evaluate.mteb_encoder import mteb_encoder
from genvec.files import write_text_atomic
from genvec.model import GenVecModel


@dataclass
class EvaluationResult:
    """Where an evaluation put its files, and each task's main score."""

    output: Path
    main_scores: dict[str, float] = field(default_factory=dict)
    table: str = ""


def select_tasks(*, local: str | Path | None = None, tasks: list[str] | None = None, benchmark: str | None = None):
    """mteb task objects from exactly one of a local benchmark directory, task names, or a benchmark name (an mteb
    one, or "advbench-ir"); and the local directory's instruction table when it has one (else None)."""
    if sum(x is not None and x != [] for x in (local, tasks, benchmark)) != 1:
        raise InputError("choose what to evaluate: exactly one of --local DIR, --tasks NAME..., --benchmark NAME.")
    if local is not None:
        from genvec.evaluate.local import read_local_benchmark

        return read_local_benchmark(local)
    if benchmark is not None and benchmark.lower() == "advbench-ir":
        from genvec.evaluate.advbench import advbench_task

        return [advbench_task()], None
    import mteb

    try:
        chosen = mteb.get_tasks(tasks=list(tasks)) if tasks else mteb.get_benchmark(benchmark).tasks
    except (KeyError, ValueError) as err:
        raise InputError(f"mteb does not know {tasks or benchmark!r}: {err}") from err
    return list(chosen), None


def evaluate_model(
    model: GenVecModel,
    tasks: list,
    output: str | Path,
    *,
    instructions: InstructionTable | None = None,
    checkpoint: str | Path | None = None,
    batch_size: int = 32,
    similarity: str = "cosine",
    show_progress: bool = True,
) -> EvaluationResult:
    """Score `model` on mteb `tasks` with genvec's instructions; results under `output` (see the module docstring).

    Raises:
        InputError: a task without an instruction in the table (before any task runs), or mteb missing.
    """
    import mteb

    table = instructions or InstructionTable()
    for task in tasks:  # every task must have its instructions before hours of work start
        table.for_task(task.metadata.name)
    output = Path(output)
    encoder = mteb_encoder(model, instructions=table, checkpoint=checkpoint, batch_size=batch_size,
                           similarity=similarity, show_progress=show_progress)
    results = mteb.evaluate(encoder, tasks, cache=mteb.ResultCache(output / "mteb"), overwrite_strategy="only-missing",
                            show_progress_bar=show_progress, raise_error=True)
    scores = {}
    for result in results.task_results:
        splits = result.scores
        split = "test" if "test" in splits else next(iter(splits))
        scores[result.task_name] = {"main_score": round(float(result.get_score()), 6), "split": split,
                                    "scores": _finite(splits[split][0])}
    document = {"model": encoder.mteb_model_meta.name, "revision": encoder.mteb_model_meta.revision,
                "similarity": similarity, "tasks": scores}
    write_text_atomic(output / "scores.json", json.dumps(document, indent=2, allow_nan=False) + "\n")
    table_text = _table(scores)
    write_text_atomic(output / "summary.md", f"# {document['model']} ({document['revision']})\n\n{table_text}\n")
    return EvaluationResult(output, {name: entry["main_score"] for name, entry in scores.items()}, table_text)


def _finite(scores: dict) -> dict[str, float]:
    """The numeric scores that are finite (mteb reports some as NaN on small data; JSON has no NaN), to 6 decimals
    (what mteb keeps in its result files, so a resumed run reports the same figures)."""
    return {key: round(float(value), 6) for key, value in scores.items()
            if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)}


def _table(scores: dict[str, dict]) -> str:
    lines = ["| task | main score |", "| --- | --- |"]
    lines += [f"| {name} | {entry['main_score']:.4f} |" for name, entry in sorted(scores.items())]
    if scores:
        average = sum(entry["main_score"] for entry in scores.values()) / len(scores)
        lines.append(f"| average ({len(scores)} tasks) | {average:.4f} |")
    return "\n".join(lines)
