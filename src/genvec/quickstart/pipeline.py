"""`genvec quickstart`: the LLM2Vec-Gen recipe end to end, offline on a CPU, and the paper's central claim measured.

Stages (each with its own progress bar), all through genvec's public functions and one `GenVecConfig`, as a user
would run them on Qwen3-8B:
1. world: a seeded synthetic world whose inputs mislead input-centric encoders (`world.py`);
2. world LM: a small causal LM that really knows the world's answers, trained once and cached (`world_lm.py`);
3. responses: the LM answers the training queries itself (`generate_responses`, greedy);
4. targets: all-MiniLM-L6-v2 embeds every distinct response once (`compute_targets`);
5. train: the special tokens and projections learn, the LM frozen (`genvec.train`);
6. evaluate: on held-out phrasings never seen in any training step, genvec against two input-centric encoders, and
   decoding (`evaluate.py`); report: a terminal table, `report.md`, `metrics.json`, a plot (`report.py`).

With `backbone` and `queries` the same stages run on a real LLM and real queries, without the world: a share of the
queries is held out, and genvec is scored on retrieving each held-out query's own response and on decoding.

The training queries are the world's question phrasings plus one request per corpus passage in the form the
document side is encoded with ("Summarize the following passage: ..."), as real instruction data (Tulu) holds
summarisation requests; the LM answers all of them itself. The passage requests are weighted DOCUMENT_WEIGHT times
in training (there are 25 times fewer of them than questions). Nothing of the world's ground truth reaches training.

What it does not do: download anything (the world mode needs no hub), or tune itself on the held-out phrasings.
"""

import json
import logging
import random
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from genvec.config import DEFAULT_INSTRUCTIONS, DataConfig, GenVecConfig, ModelConfig, TeacherConfig, TrainConfig
from genvec.data.collate import join_instruction
from genvec.errors import InputError
from genvec.evaluate.metrics import decoded_match_share, normalize_rows, retrieval_scores
from genvec.files import exclusive_lock, lock_file_for, write_text_atomic

logger = logging.getLogger(__name__)

MARKER_FILE = "quickstart.json"
TEACHER_DIM = 384  # all-MiniLM-L6-v2
HELDOUT_SHARE = 0.1  # real-backbone mode: queries held out for evaluation
# World mode: each passage request counts this many times in training. Without it the document side learns too
# little in 1,000 steps: at weight 1, 46% of held-out harmful requests still found a harmful document in their top 5
# (against 92-100% for the baselines); at weight 3 the document embeddings follow the teacher closely enough.
DOCUMENT_WEIGHT = 3


@dataclass(frozen=True)
class QuickstartOptions:
    """What `run_quickstart` runs: the size of the world, where outputs go, and optionally a real backbone."""

    run_dir: Path = Path("runs/quickstart")
    """Output directory (recreated on every run; only a directory an earlier quickstart wrote is ever replaced)."""
    size: Literal["full", "small"] = "full"
    """full: the README's world; small: a reduced world and LM (the CI test, about a minute)."""
    steps: int | None = None
    """genvec training steps; None: 1000 (full), 250 (small), 1000 (real backbone)."""
    cache_dir: Path | None = None
    """Where trained world LMs are kept and reused; None: `~/.cache/genvec` (the CLI passes `$GENVEC_CACHE`)."""
    device: str = "auto"
    """Device of every model: auto, cpu, cuda, cuda:N or mps."""
    backbone: str | None = None
    """A real causal LM (hub id or directory) instead of the world LM; needs `queries`."""
    queries: str | None = None
    """Real queries (any source `genvec.data.sources.read_queries` reads), with `backbone`."""
    teacher: str | None = None
    """Teacher (sentence-transformers id or directory); None: all-MiniLM-L6-v2 of the `quickstart` extra."""
    show_progress: bool = True
    """Progress bars for every stage."""


@dataclass
class QuickstartResult:
    """The measured scores and where the run put its files."""

    run_dir: Path
    table: str
    scores: dict[str, dict[str, float]]
    wins: dict[str, bool]
    paths: dict[str, Path]
    timings: dict[str, float] = field(default_factory=dict)


def run_quickstart(options: QuickstartOptions = QuickstartOptions()) -> QuickstartResult:
    """Run every stage and write the report; see the module docstring.

    Raises:
        InputError: a run_dir that holds something other than an earlier quickstart, `backbone` without
            `queries` (or the reverse), or a missing `quickstart` extra.
    """
    if (options.backbone is None) != (options.queries is None):
        raise InputError("quickstart on a real backbone needs both --backbone and --queries (or neither).")
    if options.steps is not None and (not isinstance(options.steps, int) or options.steps < 1):
        raise InputError(f"steps must be a positive integer (or None for the default), got {options.steps!r}.")
    with exclusive_lock(lock_file_for(Path(options.run_dir)), f"the quickstart run directory {options.run_dir}"):
        run_dir = _fresh_run_dir(Path(options.run_dir))
        clock = _Clock()
        if options.backbone is not None:
            return _run_real(options, run_dir, clock)
        return _run_world(options, run_dir, clock)


# ------------------------------------------------------------------------------------------------ world mode


def _run_world(options: QuickstartOptions, run_dir: Path, clock: "_Clock") -> QuickstartResult:
    """The world stages, one line each (see the module docstring)."""
    from genvec.quickstart import evaluate, report
    from genvec.quickstart.world import FULL_WORLD, SMALL_WORLD, build_world
    from genvec.quickstart.world_lm import FULL_LM, SMALL_LM, load_or_train_world_lm

    full = options.size == "full"
    world = clock.time("world", lambda: build_world(FULL_WORLD if full else SMALL_WORLD))
    cache_dir = Path(options.cache_dir) / "world_lm" if options.cache_dir else None  # None: default_cache_dir()
    lm = clock.time("world LM", lambda: load_or_train_world_lm(
        world, FULL_LM if full else SMALL_LM, cache_dir, show_progress=options.show_progress))
    steps = options.steps or (1000 if full else 250)
    config = _world_config(options, run_dir, str(lm.path), steps)
    requests = join_instruction(world.documents, DEFAULT_INSTRUCTIONS["document"])  # what encode_document reads
    queries = [query.text for query in world.train_queries] + requests
    weights = {request: DOCUMENT_WEIGHT for request in requests}
    model = _train_stages(config, queries, clock, options.show_progress, weights)
    methods = _methods(model, _minilm(options.device))
    results = clock.time("evaluate", lambda: evaluate.evaluate_world(world, methods,
                                                                     show_progress=options.show_progress))
    heldout = [query.text for query in world.heldout_queries]
    decoded, references = clock.time("decode", lambda: _decode_and_answer(
        model, heldout, config.data, run_dir / "heldout_responses.jsonl", options.show_progress))
    results[0].scores["decoded_match"] = decoded_match_share(decoded, references)
    summary = {
        "world": world.stats(),
        "world LM": f"{lm.num_parameters:,} parameters, answers {lm.heldout_accuracy:.1%} of held-out phrasings "
                    f"exactly ({lm.train_accuracy:.1%} of a sample of training phrasings; "
                    f"{'reused from the cache' if lm.reused else f'trained in {lm.train_seconds:.0f} s'})",
        "genvec": f"{config.tokens.num_special_tokens} special tokens, {steps} steps of batch "
                  f"{config.train.batch_size}, teacher all-MiniLM-L6-v2 ({TEACHER_DIM} dims)",
        "training queries": f"{len(world.train_queries)} phrasings + {len(world.documents)} summarisation requests",
        "decoding examples": _examples(heldout, decoded, references),
        "time": clock.describe(),
    }
    labels = world.response_ids(world.heldout_queries)
    paths = report.write_run(run_dir, results, labels, summary, highlight=world.refusal_id)
    return _finish(run_dir, results, paths, clock)


def _world_config(options: QuickstartOptions, run_dir: Path, backbone: str, steps: int) -> GenVecConfig:
    """The config a user would write for this run: the world LM, MiniLM, and a short, fast schedule.

    The learning rates are higher than the paper's (3e-4 for billions of parameters over 5,000 steps): a 2M
    parameter LM and 1,000 steps. The alignment projection gets its own, larger rate because MiniLM's unit-norm
    targets make the MSE small (see `train.alignment_learning_rate`).
    """
    return GenVecConfig(
        model=ModelConfig(backbone=backbone, embedding_dim=TEACHER_DIM, dtype="fp32", device=options.device,
                          max_length=256),
        data=DataConfig(responses=str(run_dir / "responses.jsonl"), targets=str(run_dir / "targets"),
                        decoding="greedy", max_new_tokens=48, generation_batch_size=64, prompt_max_length=256),
        teacher=TeacherConfig(name=_teacher_path(options.teacher), device=options.device, batch_size=128),
        train=TrainConfig(run_dir=str(run_dir / "train"), max_steps=steps, batch_size=32, learning_rate=5e-3,
                          alignment_learning_rate=2e-2, warmup_steps=20, log_every=max(1, steps // 20),
                          save_every=steps, keep_last=1, seed=0),
    )


# ------------------------------------------------------------------------------------------------- real mode


def _run_real(options: QuickstartOptions, run_dir: Path, clock: "_Clock") -> QuickstartResult:
    """The same stages on a real backbone and real queries; evaluation on held-out queries' own responses."""
    from genvec.data.dataset import read_responses
    from genvec.data.responses import generate_responses
    from genvec.data.sources import read_queries
    from genvec.quickstart import report

    query_set = read_queries(options.queries)
    if len(query_set) < 20:
        raise InputError(f"{options.queries!r} holds {len(query_set)} usable queries; the quickstart needs >= 20.")
    heldout_positions = _heldout_positions(len(query_set))
    steps = options.steps or 1000
    # Counted before any response is generated: the batch must fit the training queries that remain.
    config = _real_config(options, run_dir, steps, len(query_set) - len(heldout_positions))
    all_responses = run_dir / "all_responses.jsonl"
    clock.time("responses", lambda: generate_responses(query_set, all_responses, config.model, config.data,
                                                         show_progress=options.show_progress))
    records = read_responses(all_responses)
    heldout = [records[i] for i in heldout_positions]
    held_out = set(heldout_positions)
    training = [record for i, record in enumerate(records) if i not in held_out]
    _write_records(Path(config.data.responses), training)
    model = _train_stages(config, None, clock, options.show_progress)
    corpus = [record.response for record in records]
    relevant = list(heldout_positions)
    minilm = _minilm(options.device)
    methods = _methods(model, minilm)
    results = clock.time("evaluate", lambda: [
        _retrieval_result(method, [r.query for r in heldout], corpus, relevant) for method in methods])
    decoded = clock.time("decode", lambda: model.decode([r.query for r in heldout], max_new_tokens=128))
    # Measured in MiniLM's space only when MiniLM is the teacher (otherwise the teacher's space is not at hand).
    teacher = minilm if options.teacher is None else None
    results[0].scores["decoded_similarity"] = _decoded_similarity(decoded, [r.response for r in heldout], teacher)
    summary = {
        "backbone": options.backbone,
        "queries": f"{len(records)} ({len(training)} for training, {len(heldout)} held out)",
        "genvec": f"{config.tokens.num_special_tokens} special tokens, {steps} steps of batch {config.train.batch_size}",
        "not measured": "(b) clustering and (c) harmful retrieval need the world's labels",
        "decoding examples": _examples([r.query for r in heldout], decoded, [r.response for r in heldout]),
        "time": clock.describe(),
    }
    paths = report.write_run(run_dir, results, np.zeros(len(heldout), dtype=int), summary)  # no response groups
    return _finish(run_dir, results, paths, clock)


def _real_config(options: QuickstartOptions, run_dir: Path, steps: int, training_queries: int) -> GenVecConfig:
    """The published recipe (Qwen3 learning rate, N = K = 10, batch 32, or every training query when there are
    fewer) for `steps` steps, MiniLM as the teacher."""
    return GenVecConfig(
        model=ModelConfig(backbone=options.backbone, embedding_dim=TEACHER_DIM, device=options.device),
        data=DataConfig(responses=str(run_dir / "responses.jsonl"), targets=str(run_dir / "targets"),
                        max_new_tokens=300, generation_batch_size=32),
        teacher=TeacherConfig(name=_teacher_path(options.teacher), device=options.device),
        train=TrainConfig(run_dir=str(run_dir / "train"), max_steps=steps, batch_size=min(32, training_queries),
                          alignment_learning_rate=1e-2, log_every=max(1, steps // 50), save_every=max(1, steps // 4),
                          keep_last=1),
    )


# ------------------------------------------------------------------------------------------------- stages


def _train_stages(
    config: GenVecConfig,
    queries: list[str] | None,
    clock: "_Clock",
    show_progress: bool,
    weights: dict[str, int] | None = None,
):
    """Responses (unless written already), targets and training; returns the trained model, loaded as a user would.

    `weights` repeats the examples of some queries in training (see DOCUMENT_WEIGHT); without it training reads the
    data files itself, exactly as `genvec train` does.
    """
    from genvec.data.responses import generate_responses
    from genvec.loading import load_model
    from genvec.targets import compute_targets
    from genvec.training import train

    if queries is not None:
        clock.time("responses", lambda: generate_responses(
            queries, config.data.responses, config.model, config.data, show_progress=show_progress))
    clock.time("targets", lambda: compute_targets(
        config.data.responses, config.teacher, config.data.targets, batch_size=config.teacher.batch_size,
        show_progress=show_progress))
    examples = _weighted_examples(config, weights) if weights else None
    result = clock.time("train", lambda: train(config, examples))
    return load_model(result.model_dir, device=config.model.device)


def _weighted_examples(config: GenVecConfig, weights: dict[str, int]):
    """The training triples of the data files, each repeated as often as its query's weight says (default 1)."""
    from genvec.data.dataset import read_responses
    from genvec.targets import TargetStore
    from genvec.training import TrainingExamples

    records = [r for r in read_responses(config.data.responses) for _ in range(weights.get(r.query, 1))]
    responses = [record.response for record in records]
    embeddings = TargetStore.open(config.data.targets).lookup(responses)
    return TrainingExamples([record.query for record in records], responses, embeddings)


def _methods(model, minilm) -> list:
    """genvec beside the two input-centric baselines: the same LM mean-pooled, and MiniLM (an encoder) on the raw
    text."""
    from genvec.evaluate.baselines import mean_pooled_encoder
    from genvec.quickstart import evaluate

    mean_pooled = mean_pooled_encoder(model.backbone, model.tokenizer)
    return [
        evaluate.Method("genvec", lambda texts: model.encode(texts, normalize=True, show_progress=False),
                        lambda texts: model.encode_document(texts, normalize=True, show_progress=False)),
        evaluate.Method("LM mean-pool", mean_pooled, mean_pooled),
        evaluate.Method("MiniLM", minilm, minilm),
    ]


def _minilm(device: str):
    """The MiniLM baseline encoder (normalising), on the CPU unless a device is named."""
    from genvec.evaluate.baselines import load_minilm, sentence_transformer_encoder

    return sentence_transformer_encoder(load_minilm("cpu" if device == "auto" else device))


def _decode_and_answer(
    model, texts: list[str], data: DataConfig, output: Path, show_progress: bool
) -> tuple[list[str], list[str]]:
    """What each held-out query's embedding decodes to, and the LM's own response to the query, generated (into
    `output`) exactly as the training responses were."""
    from tqdm.auto import tqdm

    from genvec.data.dataset import read_responses
    from genvec.data.responses import generate_responses

    decoded = []
    for start in tqdm(range(0, len(texts), 64), desc="decode", unit="batch", disable=not show_progress):
        decoded += model.decode(texts[start : start + 64], max_new_tokens=data.max_new_tokens, batch_size=64)
    generate_responses(texts, output, model.loaded_backbone, data, show_progress=show_progress)
    answers = {record.query: record.response for record in read_responses(output)}  # one per distinct query
    references = [answers[text.strip()] for text in texts]
    return [text.strip() for text in decoded], references


def _retrieval_result(method, queries: list[str], corpus: list[str], relevant: list[int]):
    from genvec.quickstart import evaluate

    query_vectors = method.encode_queries(queries)
    accuracy, mrr = retrieval_scores(query_vectors, method.encode_documents(corpus), relevant)
    scores = {"retrieval_accuracy": accuracy, "retrieval_mrr": mrr}
    return evaluate.MethodResult(method.name, scores, normalize_rows(query_vectors))


def _decoded_similarity(decoded: list[str], responses: list[str], teacher) -> float:
    """Mean cosine between each decoded text and the LM's own response, in the space of `teacher` (a normalising
    encoder; None: not measured)."""
    if teacher is None:
        return float("nan")
    return float(np.mean(np.sum(teacher(decoded) * teacher(responses), axis=1)))


def _finish(run_dir: Path, results, paths: dict[str, Path], clock: "_Clock") -> QuickstartResult:
    from genvec.quickstart import report

    write_text_atomic(run_dir / MARKER_FILE, json.dumps({"seconds": clock.seconds}, indent=2) + "\n")
    return QuickstartResult(
        run_dir=run_dir,
        table=report.format_table(results),
        scores={result.name: result.scores for result in results},
        wins=report.wins(results),
        paths=paths,
        timings=dict(clock.seconds),
    )


# ------------------------------------------------------------------------------------------------- helpers


class _Clock:
    """Wall-clock seconds of each stage, for the report."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._start = time.perf_counter()

    def time(self, stage: str, work: Callable):
        logger.info("quickstart: %s", stage)
        start = time.perf_counter()
        result = work()
        self.seconds[stage] = round(time.perf_counter() - start, 1)
        self.seconds["total"] = round(time.perf_counter() - self._start, 1)
        return result

    def describe(self) -> str:
        stages = ", ".join(f"{stage} {seconds:.0f} s" for stage, seconds in self.seconds.items() if stage != "total")
        return f"{self.seconds.get('total', 0):.0f} s ({stages})"


def _fresh_run_dir(run_dir: Path) -> Path:
    """An empty run directory; an earlier quickstart's is replaced, anything else is refused."""
    if run_dir.exists():
        if not run_dir.is_dir() or (any(run_dir.iterdir()) and not (run_dir / MARKER_FILE).is_file()):
            raise InputError(
                f"{str(run_dir)!r} exists and is not an earlier quickstart run; pass another --run-dir (the "
                "quickstart replaces only directories it wrote)."
            )
        shutil.rmtree(run_dir)
    run_dir.mkdir(parents=True)
    write_text_atomic(run_dir / MARKER_FILE, "{}\n")
    return run_dir


def _teacher_path(teacher: str | None) -> str:
    from genvec.evaluate.baselines import minilm_path

    return teacher if teacher is not None else minilm_path()


def _heldout_positions(count: int) -> list[int]:
    size = min(500, max(8, round(count * HELDOUT_SHARE)))
    return sorted(random.Random(0).sample(range(count), size))


def _write_records(path: Path, records) -> None:
    from genvec.files import atomic_write

    with atomic_write(path) as file:
        file.writelines(record.to_json() + "\n" for record in records)


def _examples(queries: list[str], decoded: list[str], references: list[str], count: int = 3) -> list[dict[str, str]]:
    return [{"query": q, "decoded": d, "response": r} for q, d, r in list(zip(queries, decoded, references))[:count]]
