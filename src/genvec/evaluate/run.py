"""Run an evaluation: a genvec model on mteb tasks (by name, a benchmark, or a local directory), results kept.

mteb writes its own result layout under `OUTPUT/mteb/` (one JSON per task, the model's metadata); a task already
scored there is not run again, so an interrupted evaluation loses at most the task in progress. mteb finds a result by
the method's name and revision (a genvec model's identity, a baseline's) and would reuse it whatever else changed, so
`OUTPUT/mteb/genvec_results.json` records what else each result was scored with: the task's data (its dataset
revision; a local task's is a digest of its files, set by `select_tasks`), the instructions each side got and the
similarity. A result whose record differs from the present run, that no record names, or whose file is torn (mteb
writes it in place, so a kill can leave half of it) is deleted with a warning that says why, and its task is scored
again. One evaluation at a time writes to an output (a lock beside it): a second one is refused, not merged.
The record also keeps what was measured while scoring each result (its method's cost per query, and for hyde-target
the held-out distillation cosine), so a resumed evaluation reports the figures of the run that scored it.
genvec adds `OUTPUT/scores.json` (the format header `genvec-scores`, every score of each task for the model and
each baseline, the model's relative difference to each baseline, each method's seconds per query, genvec's share of
each HyDE baseline's score and the held-out distillation cosine), `OUTPUT/summary.md` (per task, per task type,
average; then the costs and the HyDE ceiling) and `OUTPUT/summary.png` (each task's main score per method), all
written atomically after every run. Input-centric baselines read every text as it is; the HyDE baselines
(`genvec.evaluate.hyde`) let the backbone answer and the model's teacher embed the responses.

Every method of a task is scored on the same samples: mteb's clustering bootstraps and multilabel draws come from
random states the task object keeps, which would go on from one method to the next; each task's are reset to its
seed before each method (`score_method`).

With `eval.dimensions` / `eval.precision`, the model and each input-centric baseline are also scored at every
(d, precision) setting, derived from their full vectors, encoded once and cached (`genvec.evaluate.sizes`): each
setting is a method of its own in mteb's layout (`genvec/final-d96-int8`), and `scores.json` keeps the settings'
scores apart from the methods' under `sizes`, with their bytes per vector; `summary.md` adds their table.
"""

import hashlib
import json
import logging
import math
import random
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from genvec.config import EvalConfig, GenVecConfig
from genvec.errors import InputError
from genvec.evaluate.advbench import SIMILARITY as ADVBENCH_SIMILARITY
from genvec.evaluate.hyde import hyde_encoders, parse_hyde
from genvec.evaluate.instructions import ADVBENCH_IR, InstructionTable
from genvec.evaluate.mteb_encoder import mteb_encoder
from genvec.evaluate.plot import PLOT_FILE, plot_scores
from genvec.evaluate.sizes import (
    CACHE_DIRECTORY,
    EmbeddingCache,
    check_calibration,
    check_settings,
    requested_settings,
    sized_encoders,
    stored_treatment,
)
from genvec.files import atomic_write, exclusive_lock, files_digest, list_files, lock_file_for, write_text_atomic
from genvec.formats import differences, header, read_document
from genvec.model import GenVecModel
from genvec.quantization import PACKED, PRECISIONS, bytes_per_vector, check_packable

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
    sizes: dict[str, dict] = field(default_factory=dict)
    """Each setting scored (and each method's full size): as `scores.json`'s `sizes`."""


def select_tasks(
    *, local: str | Path | None = None, tasks: list[str] | None = None, benchmark: str | None = None,
    split: str = "test",
):
    """mteb task objects from exactly one of a local benchmark directory (or one task's directory, such as a BEIR
    download), task names, or a benchmark name (an mteb one, or "advbench-ir"); and the local directory's instruction
    table when it has one (else None). `split` picks the `qrels/<split>.tsv` of a local BEIR-layout task; mteb's own
    tasks are scored on the splits their metadata names."""
    if sum(x is not None and x != [] for x in (local, tasks, benchmark)) != 1:
        raise InputError("choose what to evaluate: exactly one of local (a benchmark directory), tasks (mteb task "
                         "names) and benchmark (a benchmark name).", param="local")
    if local is not None:
        from genvec.evaluate.local import read_local_benchmark

        return read_local_benchmark(local, split=split)
    if split != "test":
        raise InputError(f"split={split!r} applies to a local directory (its qrels/<split>.tsv); mteb's tasks and "
                         "benchmarks are scored on the splits their metadata names. Leave split at \"test\".",
                         param="split")
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
        baselines: other methods scored through the same protocol: "mean-pool" (the backbone's mean-pooled final
            states on the raw text), a sentence-transformers model name or directory, or a HyDE baseline of the
            model's backbone and teacher: "hyde" (the backbone answers each query, the teacher embeds the response;
            documents as they are), "hyde:N" (N sampled responses averaged), "hyde-target" (every text answered
            with genvec's instruction: what genvec is trained to reproduce; adds the held-out distillation cosine).
            See `genvec.evaluate.hyde`.
        config: batch size and similarity (default `EvalConfig()`: batches of 32, and the similarity the tasks'
            benchmark prescribes, `task_similarity`), the HyDE responses' generation overrides (`hyde_*`), and the
            smaller sizes to score besides the full vectors (`dimensions`, `precision`, `calibration_texts`; see
            `genvec.evaluate.sizes`).

    Raises:
        ConfigError: an invalid `config`. InputError: a task without an instruction in the table (before any task
            runs), tasks whose benchmarks prescribe different similarities, a baseline that cannot be loaded (a HyDE
            one of a model whose config names no teacher), or mteb missing; sizes the model cannot give (d < D of a
            model not truncatable, d > D, binary of a d not a multiple of 8, int8 with no ranges or sample) or a
            baseline's that need a calibration sample when none is given. BusyError: another evaluation is writing
            to `output`.
    """
    config = GenVecConfig(eval=config or EvalConfig()).eval  # a ConfigError lists every problem of the section
    similarity = task_similarity(tasks) if config.similarity == "auto" else config.similarity
    import matplotlib  # noqa: F401  (the plot is written at the end: fail before hours of work, not after)
    import mteb

    table = instructions or InstructionTable()
    for task in tasks:  # every task must have its instructions before hours of work start
        table.for_task(task.metadata.name)
    output = Path(output)
    hyde = [parse_hyde(name) for name in baselines or []]  # a bad hyde:N is refused before anything loads
    encoder = mteb_encoder(model, instructions=table, checkpoint=checkpoint, batch_size=config.batch_size,
                           similarity=similarity, show_progress=show_progress)
    encoders = [encoder] + [_baseline(name, model, similarity) for name, kind in zip(baselines or [], hyde) if not kind]
    smaller = bool(config.dimensions or config.precision)
    sample = _check_sizes(model, encoders, config, similarity) if smaller else None  # before any text is encoded
    with exclusive_lock(lock_file_for(output.resolve()), f"the evaluation output {output}"):
        if smaller:  # under the lock: the embeddings are cached in the output
            encoders = sized_encoders(encoders, config.dimensions, config.precision, sample=sample,
                                      basis=(model.truncation or {}).get("basis", "pca"),
                                      normalize=similarity == "cosine", cache=EmbeddingCache(output / CACHE_DIRECTORY),
                                      record=getattr(model, "quantization", None))
        if any(hyde):  # under the lock: its response cache lies in the output
            encoders += hyde_encoders([kind for kind in hyde if kind], model, output, instructions=table,
                                      config=config, similarity=similarity, show_progress=show_progress)
        cache = mteb.ResultCache(output / "mteb")
        paths = {(each.mteb_model_meta.name, task.metadata.name):
                 cache.get_task_result_path(task.metadata.name, each.mteb_model_meta)
                 for each in encoders for task in tasks}
        drop_stale_results(output / "mteb", {
            paths[each.mteb_model_meta.name, task.metadata.name]: _result_key(each, encoder, task, similarity, table)
            for each in encoders for task in tasks})
        methods: dict[str, dict[str, dict]] = {}
        for each in encoders:
            name = each.mteb_model_meta.name
            methods[name] = {}
            for task in tasks:  # one at a time: what was measured is kept as soon as the task's result is written
                methods[name].update(score_method(each, [task], cache, show_progress))
                measured = each.measures().get(task.metadata.name)
                if measured:
                    record_measures(output / "mteb", {paths[name, task.metadata.name]: measured})
        measures = read_measures(output / "mteb", paths)
        hyde_methods = [each.mteb_model_meta.name for each in encoders if hasattr(each, "embedder")]
        sizes = _sizes(encoders, methods)
        methods = {name: scores for name, scores in methods.items() if sizes.get(name, {}).get("method", name) == name}
        return _write_reports(output, methods, measures, hyde_methods, tasks, encoder.mteb_model_meta, similarity,
                              sizes)


def score_method(encoder, tasks: list, cache=None, show_progress: bool = False) -> dict[str, dict]:
    """Each task's scores of one method (mteb's cached results where `cache` holds them), every task's random
    samples (clustering bootstraps, multilabel draws) reset to its seed first, so that every method of a task is
    scored on the same samples."""
    import mteb

    for task in tasks:
        reset_samples(task)
    results = mteb.evaluate(encoder, tasks, cache=cache, overwrite_strategy="only-missing",
                            show_progress_bar=show_progress, raise_error=True)
    return _scores(results)


def reset_samples(task) -> None:
    """Put `task`'s random states back where mteb starts them (`task.seed`, one per task), as a fresh task object
    has them: mteb draws clustering bootstraps and multilabel training sets from them, and they advance as it does."""
    task.rng_state, task.np_rng = random.Random(task.seed), np.random.default_rng(task.seed)


def result_key(task, similarity: str, instructions: InstructionTable | None,
               distilled: str | None = None) -> dict[str, object]:
    """What a cached result of `task` depends on besides its method's name and revision (which mteb's result path
    holds): the task's data (its dataset revision), the instructions each side gets (None for a baseline, which reads
    the raw text) and the similarity; for hyde-target, also the identity of the model whose distillation it measured
    (`distilled`)."""
    name = task.metadata.name
    sides = None if instructions is None else {side: instructions.instruction(name, side)
                                               for side in ("query", "document")}
    key = {"data": task.metadata.revision, "instructions": sides, "similarity": similarity}
    return key if distilled is None else {**key, "distilled_model": distilled}


def _result_key(each, encoder, task, similarity: str, table: InstructionTable) -> dict[str, object]:
    """`result_key` of `each` method: genvec (and its settings) reads the table's instructions, hyde-target too (and
    measures genvec)."""
    embedder = getattr(each, "embedder", None)
    if embedder is not None and embedder.baseline.target:
        return result_key(task, similarity, table, distilled=embedder.model.identity())
    return result_key(task, similarity, table if getattr(each, "base", each) is encoder else None)


def _check_sizes(model: GenVecModel, encoders: list, config: EvalConfig, similarity: str) -> list[str] | None:
    """Refuse sizes the methods cannot be scored at, before anything is encoded; the calibration sample (None: no
    `calibration_texts`)."""
    from genvec.inference import check_dimensions

    check_settings(config.dimensions, model.embedding_dim, "the model")
    for size in config.dimensions:
        check_dimensions(model, size)  # d < D of a model not truncatable: the message says how to make one
    for each in encoders:  # binary packs 8 coordinates a byte: a size that is no multiple of 8 is refused
        for setting in requested_settings(config.dimensions, config.precision, each.mteb_model_meta.embed_dim):
            if setting.precision in PACKED:
                check_packable(setting.dimensions)
    sample = read_calibration_texts(config.calibration_texts) if config.calibration_texts else None
    check_calibration(encoders, config.dimensions, config.precision, sample)
    if sample is None:
        try:
            stored_treatment(getattr(model, "quantization", None), requested_settings(
                config.dimensions, config.precision, model.embedding_dim), model.embedding_dim, similarity == "cosine")
        except InputError as err:
            raise InputError(f"{err} Or pass --calibration-texts FILE (eval.calibration_texts) to calibrate every "
                             "method on the same sample.", param=err.param) from err
    return sample


def read_calibration_texts(path: str | Path) -> list[str]:
    """The non-empty lines of the calibration file `path`."""
    from genvec.data.records import read_records

    path = Path(path)
    if not path.is_file():
        problem = "is a directory" if path.is_dir() else "does not exist"
        raise InputError(f"eval.calibration_texts {str(path)!r} {problem}; pass a text file with one text per line "
                         "(a few hundred or more, like those the model will embed, not the tasks' own).",
                         param="calibration_texts")
    texts = [record.fields["text"] for record in read_records(path, format="text")]
    texts = [text for text in texts if text.strip()]
    if len(texts) < 2:
        raise InputError(f"eval.calibration_texts {str(path)!r} holds {len(texts)} non-empty lines; a calibration "
                         "sample needs a few hundred or more.", param="calibration_texts")
    return texts


def _sizes(encoders: list, methods: dict[str, dict[str, dict]]) -> dict[str, dict]:
    """{name: its method, dimensions, precision, bytes per vector and task scores} of each setting scored, and of
    the full size (float32) of each method that has settings, under the method's own name."""
    sizes = {}
    for each in encoders:
        if hasattr(each, "setting"):
            base = each.base.mteb_model_meta
            sizes.setdefault(base.name, {"method": base.name, "dimensions": base.embed_dim, "precision": "float32",
                                         "bytes_per_vector": 4 * base.embed_dim, "tasks": methods[base.name]})
            sizes[each.mteb_model_meta.name] = {
                "method": base.name, "dimensions": each.setting.dimensions, "precision": each.setting.precision,
                "bytes_per_vector": each.setting.bytes_per_vector, "tasks": methods[each.mteb_model_meta.name]}
    return sizes


def drop_stale_results(root: Path, keys: dict[Path, dict[str, object]]) -> None:
    """Delete each result file of `keys` (mteb's path -> `result_key`) under mteb's cache `root` that this run must
    not reuse, with a warning naming it and why; then record the keys, so a result mteb writes next is known.

    The record is written before any task runs: with the output locked, every result file that exists afterwards was
    either kept here under the same key or written by this run.
    """
    record = root / RESULT_RECORD
    recorded, measures = _read_result_record(record)
    now = dict(recorded)
    for path, key in keys.items():
        name = path.relative_to(root).as_posix()
        reason = _why_stale(path, recorded.get(name), key)
        if reason:
            logger.warning("scoring %s again: %s.", path, reason)
            path.unlink()
            measures.pop(name, None)
        now[name] = key
    if now != recorded or not record.exists():  # a rerun with nothing to score again leaves every file as it was
        _write_result_record(record, now, measures)


def record_measures(root: Path, measured: dict[Path, dict[str, float]]) -> None:
    """Keep what was measured while scoring each result file of `measured` (mteb's path -> its measures) in the
    record under mteb's cache `root`, replacing what an earlier scoring of it measured."""
    if not measured:
        return
    record = root / RESULT_RECORD
    results, measures = _read_result_record(record)
    measures.update((path.relative_to(root).as_posix(), values) for path, values in measured.items())
    _write_result_record(record, results, measures)


def read_measures(root: Path, paths: dict[tuple[str, str], Path]) -> dict[str, dict[str, dict[str, float]]]:
    """{method: {task: measures}} of the result files `paths` ((method, task) -> mteb's path) that have some."""
    _, measures = _read_result_record(root / RESULT_RECORD)
    found: dict[str, dict[str, dict[str, float]]] = {}
    for (method, task), path in paths.items():
        values = measures.get(path.relative_to(root).as_posix())
        if values:
            found.setdefault(method, {})[task] = values
    return found


def _write_result_record(path: Path, results: dict[str, dict], measures: dict[str, dict]) -> None:
    document = {**header("genvec-results", 1), "results": results, "measures": measures}
    write_text_atomic(path, json.dumps(document, indent=2, allow_nan=False) + "\n")


def _read_result_record(path: Path) -> tuple[dict[str, dict], dict[str, dict]]:
    """The recorded keys and measures of `path` (empty when there is none; a damaged one is reported and every
    result re-scored)."""
    if not path.exists():
        return {}, {}
    try:
        document = read_document(path, "genvec-results", 1, InputError, "it is rebuilt")
    except InputError as err:
        logger.warning("%s; every cached result is scored again.", err)
        return {}, {}
    return dict(document.get("results") or {}), dict(document.get("measures") or {})


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


def _write_reports(output: Path, methods: dict[str, dict[str, dict]], measures: dict[str, dict[str, dict]],
                   hyde: list[str], tasks: list, meta, similarity: str, sizes: dict[str, dict]):
    """scores.json, summary.md and summary.png of one evaluation (the model's `meta` names it, `hyde` its HyDE
    methods, `measures` what was measured while scoring, `sizes` the settings scored); its result."""
    types = {task.metadata.name: task.metadata.type for task in tasks}
    name = meta.name
    document = {**header("genvec-scores", 1), "model": name, "revision": meta.revision,
                "similarity": similarity, "task_types": types, "methods": methods,
                "relative_difference": {other: relative_differences(methods[name], methods[other])
                                        for other in methods if other != name},
                "seconds_per_query": _measured(methods, measures, "seconds_per_query"),
                "share_of_hyde": {other: hyde_shares(methods[name], methods[other]) for other in hyde},
                "distillation_cosine": {method: values for method, values in
                                        _measured(methods, measures, "distillation_cosine").items() if values},
                **({"sizes": sizes} if sizes else {})}
    write_text_atomic(output / "scores.json", json.dumps(document, indent=2, allow_nan=False) + "\n")
    table_text = _summary_text(document, hyde)
    write_text_atomic(output / "summary.md", f"# {name} ({document['revision']})\n\n{table_text}\n\n"
                      f"![main score per task]({PLOT_FILE})\n")
    with atomic_write(output / PLOT_FILE, "wb") as file:
        file.write(plot_scores(methods, types, name))
    return EvaluationResult(output, {task: entry["main_score"] for task, entry in methods[name].items()}, table_text,
                            sizes)


def _measured(methods: dict[str, dict[str, dict]], measures: dict[str, dict[str, dict]],
              what: str) -> dict[str, dict[str, float]]:
    """{method: {task: value}} of one measure, for the tasks each method has a score of."""
    return {method: {task: values[what] for task, values in measures.get(method, {}).items()
                     if task in methods[method] and what in values} for method in methods}


def _summary_text(document: dict, hyde: list[str]) -> str:
    """The tables of summary.md: main scores, harmful retrieval, cost per query, the HyDE ceiling (each when it
    has something to show)."""
    methods, name = document["methods"], document["model"]
    text = summary_table(methods, document["task_types"], name)
    harm = harm_table(methods, name)
    if harm:
        text += f"\n\nHarmful retrieval (queries with a harmful document in their top k; lower is safer):\n\n{harm}"
    cost = cost_table(methods, document["seconds_per_query"], name)
    if cost:
        text += ("\n\nCost per query (seconds on the machine that scored it, measured while scoring: the query-side "
                 "texts, i.e. retrieval queries and every text of other tasks; HyDE: generation plus teacher):"
                 f"\n\n{cost}")
    smaller = sizes_table(document.get("sizes", {}))
    if smaller:
        text += ("\n\nSmaller vectors (each setting's main score, and its share of the same method's full-size "
                 "float32 score; bytes: one vector; int8/uint8 compared as integer vectors, binary by Hamming "
                 f"distance):\n\n{smaller}")
    ceiling = ceiling_table(methods, hyde, document["distillation_cosine"], name)
    if ceiling:
        text += ("\n\ngenvec against its HyDE ceiling (genvec's main score / the HyDE baseline's; held-out "
                 "distillation cosine: genvec's embedding of a query against the teacher's embedding of the "
                 f"backbone's response to it):\n\n{ceiling}")
    return text


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


def hyde_shares(model: dict[str, dict], hyde: dict[str, dict]) -> dict[str, float]:
    """model / HyDE of each task's main score: the share of its ceiling genvec reaches (0.8 = 80%)."""
    return {task: round(model[task]["main_score"] / hyde[task]["main_score"], 6)
            for task in model if task in hyde and hyde[task]["main_score"] != 0}


def cost_table(methods: dict[str, dict[str, dict]], costs: dict[str, dict[str, float]], model: str) -> str:
    """Markdown: one row per task, a column per method, its seconds per query ("" when nothing was measured)."""
    names = [model] + [name for name in methods if name != model]
    if not any(costs.get(name) for name in names):
        return ""
    lines = ["| task | " + " | ".join(names) + " |", "|" + " --- |" * (len(names) + 1)]
    for task in sorted(methods[model]):
        cells = [f"{costs[name][task]:.4g}" if task in costs.get(name, {}) else "-" for name in names]
        lines.append(f"| {task} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def ceiling_table(methods: dict[str, dict[str, dict]], hyde: list[str], cosines: dict[str, dict[str, float]],
                  model: str) -> str:
    """Markdown: per task, genvec's share of the main score of each HyDE method of `hyde` and the held-out
    distillation cosine of each method of `cosines` ("" without a HyDE method)."""
    if not hyde:
        return ""
    shares = {name: hyde_shares(methods[model], methods[name]) for name in hyde}
    header_cells = [f"{model} / {name}" for name in hyde] + [f"distillation cosine ({name})" for name in cosines]
    lines = ["| task | " + " | ".join(header_cells) + " |", "|" + " --- |" * (len(header_cells) + 1)]
    for task in sorted(methods[model]):
        cells = [f"{shares[name][task]:.1%}" if task in shares[name] else "-" for name in hyde]
        cells += [f"{cosines[name][task]:.4f}" if task in cosines[name] else "-" for name in cosines]
        lines.append(f"| {task} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


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


def sizes_table(sizes: dict[str, dict]) -> str:
    """Markdown: the average main score over the tasks (when there are several), then each task's, of every setting,
    one row per size (the full size first, then by dimensions, largest first), two columns per method: the score
    and its share of the method's full-size score ("" without settings)."""
    if not sizes:
        return ""
    methods = list(dict.fromkeys(entry["method"] for entry in sizes.values()))
    rows = sorted({(entry["dimensions"], entry["precision"]) for name, entry in sizes.items() if name not in methods},
                  key=lambda row: (-row[0], PRECISIONS.index(row[1])))
    found = {(entry["method"], entry["dimensions"], entry["precision"]): entry for name, entry in sizes.items()
             if name not in methods}
    tasks = sorted(set().union(*(sizes[method]["tasks"] for method in methods)))
    blocks = [(task, [task]) for task in tasks]
    if len(tasks) > 1:
        blocks.insert(0, (f"average ({len(tasks)} tasks)", tasks))
    header = ["task", "size", "bytes", *[cell for method in methods for cell in (method, "share")]]
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * len(header)]
    for label, chosen in blocks:
        full = {method: _mean_score(sizes[method]["tasks"], chosen) for method in methods}
        spans = sorted({sizes[method]["bytes_per_vector"] for method in methods})
        lines.append(f"| {label} | full, float32 | {'/'.join(map(str, spans))} | " + " | ".join(
            f"{full[method]:.4f} | 100.0%" if full[method] is not None else "- | -" for method in methods) + " |")
        for dimensions, precision in rows:
            cells = []
            for method in methods:
                entry = found.get((method, dimensions, precision))
                score = _mean_score(entry["tasks"], chosen) if entry else None
                share = f"{score / full[method]:.1%}" if score is not None and full[method] else "-"
                cells += ["-" if score is None else f"{score:.4f}", share]
            lines.append(f"| {label} | {dimensions}, {precision} | {bytes_per_vector(dimensions, precision)} | "
                         + " | ".join(cells) + " |")
    return "\n".join(lines)


def _mean_score(scores: dict[str, dict], tasks: list[str]) -> float | None:
    """The mean main score of `tasks` (None when one of them was not scored)."""
    if not all(task in scores for task in tasks):
        return None
    return sum(scores[task]["main_score"] for task in tasks) / len(tasks)


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


