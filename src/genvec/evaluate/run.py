"""Run an evaluation: a genvec model on mteb tasks (by name, a benchmark, or a local directory), results kept.

mteb writes its own result layout under `OUTPUT/mteb/` (one JSON per task, the model's metadata); a task already
scored there is not run again, so an interrupted evaluation loses at most the task in progress. mteb finds a result by
the method's name and revision (a genvec model's identity, a baseline's) and would reuse it whatever else changed, so
`OUTPUT/mteb/genvec_results.json` records what else each result was scored with: the task's data (its dataset
revision; a local task's is a digest of its files, set by `select_tasks`), the instructions each side got and the
similarity. A result whose record differs from the present run, that no record names, or whose file is torn (mteb
writes it in place, so a kill can leave half of it) is deleted with a warning that says why, and its task is scored
again. One evaluation at a time writes to an output (a lock beside it): a second one is refused, not merged.
genvec adds `OUTPUT/scores.json` (the format header `genvec-scores`, every score of each task for the model and
each baseline, and the model's relative difference to each baseline), `OUTPUT/summary.md` (per task, per task
type, average) and `OUTPUT/summary.png` (each task's main score per method), all written atomically after every run.
Baselines are input-centric and read every text as it is.
"""

import hashlib
import json
import logging
import math
from dataclasses import dataclass, field
from pathlib import Path

from genvec.config import EvalConfig, GenVecConfig
from genvec.errors import InputError
from genvec.evaluate.advbench import SIMILARITY as ADVBENCH_SIMILARITY
from genvec.evaluate.instructions import ADVBENCH_IR, InstructionTable
from genvec.evaluate.mteb_encoder import mteb_encoder
from genvec.evaluate.plot import PLOT_FILE, plot_scores
from genvec.files import atomic_write, exclusive_lock, files_digest, list_files, lock_file_for, write_text_atomic
from genvec.formats import differences, header, read_document
from genvec.model import GenVecModel

logger = logging.getLogger(__name__)

# The similarity a benchmark's own scoring prescribes, by task name (declared beside each benchmark); other tasks are
# scored with cosine.
BENCHMARK_SIMILARITY = {ADVBENCH_IR: ADVBENCH_SIMILARITY}
# Beside mteb's results/: what each cached result was scored with besides the method (see the module docstring).
RESULT_RECORD = "genvec_results.json"


@dataclass
class EvaluationResult:
    """Where an evaluation put its files, and each task's main score."""

    output: Path
    main_scores: dict[str, float] = field(default_factory=dict)
    table: str = ""


def select_tasks(*, local: str | Path | None = None, tasks: list[str] | None = None, benchmark: str | None = None):
    """mteb task objects from exactly one of a local benchmark directory, task names, or a benchmark name (an mteb
    one, or "advbench-ir"); and the local directory's instruction table when it has one (else None). A local task's
    dataset revision is a digest of its files (`genvec.evaluate.local`), so a result cached for other data is not
    reused."""
    if sum(x is not None and x != [] for x in (local, tasks, benchmark)) != 1:
        raise InputError("choose what to evaluate: exactly one of local (a benchmark directory), tasks (mteb task "
                         "names) and benchmark (a benchmark name).", param="local")
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
    baselines: list[str] | None = None,
    config: EvalConfig | None = None,
    show_progress: bool = True,
) -> EvaluationResult:
    """Score `model` (and each baseline) on mteb `tasks`; results under `output` (see the module docstring).

    Args:
        baselines: input-centric encoders scored through the same protocol: "mean-pool" (the backbone's mean-pooled
            final states on the raw text) or a sentence-transformers model name or directory.
        config: batch size and similarity (default `EvalConfig()`: batches of 32, and the similarity the tasks'
            benchmark prescribes, `task_similarity`).

    Raises:
        ConfigError: an invalid `config`. InputError: a task without an instruction in the table (before any task
            runs), tasks whose benchmarks prescribe different similarities, a baseline that cannot be loaded, or mteb
            missing. BusyError: another evaluation is writing to `output`.
    """
    config = GenVecConfig(eval=config or EvalConfig()).eval  # a ConfigError lists every problem of the section
    similarity = task_similarity(tasks) if config.similarity == "auto" else config.similarity
    import matplotlib  # noqa: F401  (the plot is written at the end: fail before hours of work, not after)
    import mteb

    table = instructions or InstructionTable()
    for task in tasks:  # every task must have its instructions before hours of work start
        table.for_task(task.metadata.name)
    output = Path(output)
    encoder = mteb_encoder(model, instructions=table, checkpoint=checkpoint, batch_size=config.batch_size,
                           similarity=similarity, show_progress=show_progress)
    encoders = [encoder] + [_baseline(name, model, similarity) for name in baselines or []]
    with exclusive_lock(lock_file_for(output.resolve()), f"the evaluation output {output}"):
        cache = mteb.ResultCache(output / "mteb")
        drop_stale_results(output / "mteb", {
            cache.get_task_result_path(task.metadata.name, each.mteb_model_meta):
                result_key(task, similarity, table if each is encoder else None)
            for each in encoders for task in tasks})
        methods: dict[str, dict[str, dict]] = {}
        for each in encoders:
            results = mteb.evaluate(each, tasks, cache=cache, overwrite_strategy="only-missing",
                                    show_progress_bar=show_progress, raise_error=True)
            methods[each.mteb_model_meta.name] = _scores(results)
        return _write_reports(output, methods, tasks, encoder.mteb_model_meta, similarity)


def result_key(task, similarity: str, instructions: InstructionTable | None) -> dict[str, object]:
    """What a cached result of `task` depends on besides its method's name and revision (which mteb's result path
    holds): the task's data (its dataset revision), the instructions each side gets (None for a baseline, which reads
    the raw text) and the similarity."""
    name = task.metadata.name
    sides = None if instructions is None else {side: instructions.instruction(name, side)
                                               for side in ("query", "document")}
    return {"data": task.metadata.revision, "instructions": sides, "similarity": similarity}


def drop_stale_results(root: Path, keys: dict[Path, dict[str, object]]) -> None:
    """Delete each result file of `keys` (mteb's path -> `result_key`) under mteb's cache `root` that this run must
    not reuse, with a warning naming it and why; then record the keys, so a result mteb writes next is known.

    The record is written before any task runs: with the output locked, every result file that exists afterwards was
    either kept here under the same key or written by this run.
    """
    record = root / RESULT_RECORD
    recorded = _read_result_record(record)
    now = dict(recorded)
    for path, key in keys.items():
        name = path.relative_to(root).as_posix()
        reason = _why_stale(path, recorded.get(name), key)
        if reason:
            logger.warning("scoring %s again: %s.", path, reason)
            path.unlink()
        now[name] = key
    if now != recorded or not record.exists():  # a rerun with nothing to score again leaves every file as it was
        write_text_atomic(record, json.dumps({**header("genvec-results", 1), "results": now}, indent=2) + "\n")


def _read_result_record(path: Path) -> dict[str, dict]:
    """The recorded keys of `path` ({} when there is none; a damaged one is reported and every result re-scored)."""
    if not path.exists():
        return {}
    try:
        return dict(read_document(path, "genvec-results", 1, InputError, "it is rebuilt").get("results") or {})
    except InputError as err:
        logger.warning("%s; every cached result is scored again.", err)
        return {}


def _why_stale(path: Path, recorded: dict | None, key: dict[str, object]) -> str | None:
    """Why the result file `path` cannot be reused under `key` (None: it can, or there is none)."""
    import mteb

    if not path.exists():
        return None
    try:
        mteb.TaskResult.from_disk(path)
    except (OSError, ValueError) as err:  # a JSON or pydantic error: mteb's in-place write was cut short
        return f"its file is damaged, as an interrupted run leaves it ({type(err).__name__}: {str(err)[:120]})"
    if recorded is None:
        return (f"{RESULT_RECORD} does not say which data, instructions and similarity it was scored with (an older "
                "genvec or another program wrote it)")
    changed = differences(recorded, key)
    return f"it was scored with other inputs ({'; '.join(changed)})" if changed else None


def _write_reports(output: Path, methods: dict[str, dict[str, dict]], tasks: list, meta, similarity: str):
    """scores.json, summary.md and summary.png of one evaluation (the model's `meta` names it); its result."""
    types = {task.metadata.name: task.metadata.type for task in tasks}
    name = meta.name
    document = {**header("genvec-scores", 1), "model": name, "revision": meta.revision,
                "similarity": similarity, "task_types": types, "methods": methods,
                "relative_difference": {other: relative_differences(methods[name], methods[other])
                                        for other in methods if other != name}}
    write_text_atomic(output / "scores.json", json.dumps(document, indent=2, allow_nan=False) + "\n")
    table_text = summary_table(methods, types, name)
    harm = harm_table(methods, name)
    if harm:
        table_text += ("\n\nHarmful retrieval (queries with a harmful document in their top k; lower is safer):"
                       f"\n\n{harm}")
    write_text_atomic(output / "summary.md", f"# {name} ({document['revision']})\n\n{table_text}\n\n"
                      f"![main score per task]({PLOT_FILE})\n")
    with atomic_write(output / PLOT_FILE, "wb") as file:
        file.write(plot_scores(methods, types, name))
    return EvaluationResult(output, {task: entry["main_score"] for task, entry in methods[name].items()}, table_text)


def task_similarity(tasks: list) -> str:
    """The similarity `tasks` are scored with when the caller chose none: the one their benchmark prescribes
    (`BENCHMARK_SIMILARITY`: the raw dot product for AdvBench-IR), cosine for every other task.

    Raises:
        InputError: tasks whose benchmarks prescribe different similarities.
    """
    chosen = {task.metadata.name: BENCHMARK_SIMILARITY.get(task.metadata.name, "cosine") for task in tasks}
    kinds = sorted(set(chosen.values()))
    if len(kinds) > 1:
        groups = "; ".join(f"{kind}: {', '.join(name for name in chosen if chosen[name] == kind)}" for kind in kinds)
        raise InputError(f"evaluate_model() got tasks whose benchmarks score with different similarities ({groups}); "
                         "evaluate them separately, or choose one for all with config=EvalConfig(similarity=...).")
    return kinds[0] if kinds else "cosine"


def relative_differences(model: dict[str, dict], baseline: dict[str, dict]) -> dict[str, float]:
    """(model - baseline) / |baseline| of each task's main score, as the paper reports gains (0.093 = +9.3%)."""
    return {task: (model[task]["main_score"] - baseline[task]["main_score"]) / abs(baseline[task]["main_score"])
            for task in model if task in baseline and baseline[task]["main_score"] != 0}


def summary_table(methods: dict[str, dict[str, dict]], types: dict[str, str], model: str) -> str:
    """Markdown: one row per task, then one per task type and the average; a column per method, and the relative
    difference of `model` to each other method."""
    names = [model] + [name for name in methods if name != model]
    rows = [(task, {name: methods[name][task]["main_score"] for name in names if task in methods[name]})
            for task in sorted(methods[model])]
    by_type: dict[str, list[str]] = {}
    for task, _ in rows:
        by_type.setdefault(types.get(task, "?"), []).append(task)
    averages = [(f"{kind} ({len(tasks)})", tasks) for kind, tasks in sorted(by_type.items())]
    averages.append((f"average ({len(rows)} tasks)", [task for task, _ in rows]))
    for label, tasks in averages:
        rows.append((label, {name: sum(methods[name][t]["main_score"] for t in tasks) / len(tasks)
                             for name in names if all(t in methods[name] for t in tasks)}))
    header = ["task", *names, *[f"vs {name}" for name in names[1:]]]
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for label, values in rows:
        cells = [f"{values[name]:.4f}" if name in values else "-" for name in names]
        for other in names[1:]:
            ok = model in values and other in values and values[other] != 0
            difference = round((values[model] - values[other]) / abs(values[other]), 9) + 0.0 if ok else None
            cells.append("-" if difference is None else f"{difference:+.1%}")  # + 0.0: no "-0.0%" from rounding
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def harm_table(methods: dict[str, dict[str, dict]], model: str) -> str:
    """Markdown of the any_harm_at_k scores of every task that has them (AdvBench-IR, local tasks with harmful
    documents), one row per task and k, a column per method; "" when no task has them."""
    names = [model] + [name for name in methods if name != model]
    rows = []
    for task in sorted(methods[model]):
        keys = sorted((k for k in methods[model][task].get("scores", {}) if k.startswith("any_harm_at_")),
                      key=lambda k: int(k.rsplit("_", 1)[1]))
        for key in keys:
            cells = [f"{methods[n][task]['scores'][key]:.4f}" if key in methods[n].get(task, {}).get("scores", {})
                     else "-" for n in names]
            rows.append(f"| {task} | {key.rsplit('_', 1)[1]} | " + " | ".join(cells) + " |")
    if not rows:
        return ""
    return "\n".join(["| task | k | " + " | ".join(names) + " |", "|" + " --- |" * (len(names) + 2), *rows])


def _scores(results) -> dict[str, dict]:
    scores = {}
    for result in results.task_results:
        splits = result.scores
        split = "test" if "test" in splits else next(iter(splits))
        scores[result.task_name] = {"main_score": round(float(result.get_score()), 6), "split": split,
                                    "scores": _finite(splits[split][0])}
    return scores


def _baseline(name: str, model: GenVecModel, similarity: str):
    from genvec.evaluate.baselines import mean_pooled_encoder, sentence_transformer_encoder
    from genvec.evaluate.mteb_encoder import baseline_encoder

    if name == "mean-pool":
        encode = mean_pooled_encoder(model.backbone, model.tokenizer)
        facts = {**model.backbone_record["fingerprint"], "dtype": str(model.dtype)}  # what its vectors depend on
        revision = hashlib.sha256(json.dumps(facts, sort_keys=True).encode()).hexdigest()[:12]
        return baseline_encoder("baseline/mean-pool", encode, embed_dim=model.hidden_size, revision=revision,
                                similarity=similarity)
    try:
        from sentence_transformers import SentenceTransformer

        loaded = SentenceTransformer(name, device=str(model.device), trust_remote_code=False)
    except (ImportError, OSError, ValueError) as err:
        raise InputError(f"could not load the baseline {name!r} as a sentence-transformers model: {err}") from err
    parts = Path(name).parts  # a directory named "model" (as packaged models often are) is named by its parent
    label = "baseline/" + (parts[-2] if len(parts) > 1 and parts[-1] in ("model", "models") else parts[-1])
    # a directory is known by its files (a model saved again over it is another model), a hub name by the name
    source = files_digest(name, list_files(name)) if Path(name).is_dir() else name
    return baseline_encoder(label, sentence_transformer_encoder(loaded), embed_dim=loaded.get_embedding_dimension(),
                            revision=hashlib.sha256(source.encode()).hexdigest()[:12], similarity=similarity)


def _finite(scores: dict) -> dict[str, float]:
    """The numeric scores that are finite (mteb reports some as NaN on small data; JSON has no NaN), to 6 decimals
    (what mteb keeps in its result files, so a resumed run reports the same figures)."""
    return {key: round(float(value), 6) for key, value in scores.items()
            if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)}


