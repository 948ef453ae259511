"""`genvec quickstart`: the LLM2Vec-Gen recipe end to end, offline on a CPU, and the paper's central claim measured.

Stages (each with its own progress bar), all through genvec's public functions and one `GenVecConfig`, as a user
would run them on Qwen3-8B:
1. world: a seeded synthetic world whose inputs mislead input-centric encoders (`world.py`);
2. world LM: a small causal LM that really knows the world's answers, trained once and cached (`world_lm.py`);
3. responses: the LM answers the training queries itself (`generate_responses`, greedy);
4. targets: all-MiniLM-L6-v2 embeds every distinct response once (`compute_targets`);
5. train: the special tokens and projections learn, the LM frozen (`genvec.train`);
6. evaluate: on held-out phrasings never seen in any training step, genvec against two input-centric encoders
   (`evaluate.py`);
7. decode: held-out phrasings' embeddings decoded, beside the LM's own responses;
report: a terminal table, `report.md`, `metrics.json`, a plot (`report.py`). Stages 3-5 and 7 are the ones every
recipe shares (`stages.py`); the run directory's record is `quickstart.json`.

With `seeds` N, stages 5-7 run once per training seed 0..N-1 (stages 1-4 are shared), seed 0 in the run directory as
a one-seed run, seed S in `seed-S/`; the baselines, which train nothing, are evaluated once, and every genvec score
(and margin, and decoding measure) is reported as its mean over the seeds with its spread (`report.spreads`).

With `backbone` and `queries` the same stages run on a real LLM and real queries, without the world: a share of the
queries is held out, and genvec is scored on retrieving each held-out query's own response and on decoding.

The training queries are the world's question phrasings plus one request per corpus passage in the form the
document side is encoded with ("Summarize the following passage: ..."), as real instruction data (Tulu) holds
summarisation requests; the LM answers all of them itself. The passage requests are weighted DOCUMENT_WEIGHT times
in training (there are 25 times fewer of them than questions). Nothing of the world's ground truth reaches training.

What it does not do: download anything (the world mode needs no hub), or tune itself on the held-out phrasings.
"""

import functools
import logging
import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np

from genvec.config import DEFAULT_INSTRUCTIONS, DataConfig, GenVecConfig, ModelConfig, TeacherConfig, TrainConfig
from genvec.data.collate import join_instruction
from genvec.errors import InputError, check_positive_int
from genvec.files import atomic_write
from genvec.quickstart import evaluate, report, stages
from genvec.quickstart.stages import RunRecord

logger = logging.getLogger(__name__)

RUN_NAME = "quickstart"  # the record is quickstart.json
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
    seeds: int = 1
    """Models trained, with training seeds 0..seeds-1 on the same data; scores are reported as mean and spread."""
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
    seeds: dict = field(default_factory=dict)
    """`count`, `training_seeds`, and the spread over seeds of genvec's `scores`, `margins` and `decoding`."""


def run_quickstart(options: QuickstartOptions = QuickstartOptions()) -> QuickstartResult:
    """Run every stage and write the report; see the module docstring.

    Raises:
        InputError: a run_dir that holds something other than an earlier quickstart, `backbone` without
            `queries` (or the reverse), `steps` or `seeds` not a whole number >= 1, or a missing `quickstart` extra.
    """
    if (options.backbone is None) != (options.queries is None):
        raise InputError(f"quickstart on a real backbone needs both backbone and queries (or neither, for the world); "
                         f"got backbone={options.backbone!r}, queries={options.queries!r}.")
    if options.steps is not None:
        check_positive_int(options.steps, "steps")
    check_positive_int(options.seeds, "seeds")
    with stages.open_run(options.run_dir, RUN_NAME, stages.recorded_options(options), fresh=True) as run:
        results, paths, seeds = (_run_world if options.backbone is None else _run_backbone)(options, run)
    table = report.format_table(results)
    if seeds["count"] > 1:
        rows = {evaluate.METRICS[name].label if name in evaluate.METRICS else name: value
                for name, value in seeds["scores"].items()}
        table += (f"\n\ngenvec's scores above are means over {seeds['count']} training seeds; their spread:\n"
                  + report.spread_table(rows, "metric"))
    return QuickstartResult(
        run_dir=run.path.parent,
        table=table,
        scores={result.name: result.scores for result in results},
        wins=report.wins(results),
        paths=paths,
        timings={**run.timings, "total": run.total},
        seeds=seeds,
    )


# ------------------------------------------------------------------------------------------------ world mode


def _run_world(options: QuickstartOptions, run: RunRecord) -> tuple[list, dict[str, Path], dict]:
    """The world recipe, one line a stage (see the module docstring); returns the results (genvec's: means over the
    seeds), the report's files and the seeds' spreads."""
    from genvec.quickstart.world import FULL_WORLD, SMALL_WORLD, build_world
    from genvec.quickstart.world_lm import FULL_LM, SMALL_LM, load_or_train_world_lm

    full, run_dir, progress = options.size == "full", run.path.parent, options.show_progress
    world = run.stage("world", lambda: build_world(FULL_WORLD if full else SMALL_WORLD))
    cache_dir = Path(options.cache_dir) / "world_lm" if options.cache_dir else None  # None: default_cache_dir()
    lm = run.stage("world LM", lambda: load_or_train_world_lm(world, FULL_LM if full else SMALL_LM, cache_dir,
                                                              show_progress=progress))
    steps = options.steps or (1000 if full else 250)
    config = _world_config(options, run_dir, str(lm.path), steps)
    requests = join_instruction(world.documents, DEFAULT_INSTRUCTIONS["document"])  # what encode_document reads
    queries = [query.text for query in world.train_queries] + requests
    stages.respond(run, config, queries, progress)
    weights = {request: DOCUMENT_WEIGHT for request in requests}
    heldout = [query.text for query in world.heldout_queries]
    per_seed = []
    for seed in range(options.seeds):
        model, seed_config = stages.train_seed(run, config, seed, options.seeds, weights)
        methods = _methods(model, options.device, baselines=seed == 0)  # the baselines train nothing: once
        results = run.stage(stages.seed_stage("evaluate", seed, options.seeds), functools.partial(
            evaluate.evaluate_world, world, methods, show_progress=progress))
        decoded = run.stage(stages.seed_stage("decode", seed, options.seeds), functools.partial(
            _decode, model, heldout, seed_config, run_dir, seed, None, progress))
        decoding = stages.decoding_scores(decoded)
        results[0].scores["decoded_match"] = decoding["exact_match"]
        per_seed.append((results, decoding, decoded))
    results, decoding, decoded, seeds = _over_seeds(per_seed)
    summary = {
        "world": world.stats(),
        "world LM": f"{lm.num_parameters:,} parameters, answers {lm.heldout_accuracy:.1%} of held-out phrasings "
                    f"exactly ({lm.train_accuracy:.1%} of a sample of training phrasings; "
                    f"{'reused from the cache' if lm.reused else f'trained in {lm.train_seconds:.0f} s'})",
        "genvec": f"{config.tokens.num_special_tokens} special tokens, {steps} steps of batch "
                  f"{config.train.batch_size}, teacher all-MiniLM-L6-v2 ({TEACHER_DIM} dims)",
        "training queries": f"{len(world.train_queries)} phrasings + {len(world.documents)} summarisation requests",
        "seeds": _seeds_line(options.seeds),
        "decoding": report.decoding_paragraph(decoding, "the world LM"),
        "decoding examples": decoded[:3],
        "time": run.describe(),
    }
    labels = world.response_ids(world.heldout_queries)
    paths = report.write_run(run_dir, results, labels, summary, highlight=world.refusal_id, seeds=seeds)
    return results, paths, seeds


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
        teacher=TeacherConfig(name=_teacher(options), device=options.device, batch_size=128),
        train=TrainConfig(run_dir=str(run_dir / "train"), max_steps=steps, batch_size=32, learning_rate=5e-3,
                          alignment_learning_rate=2e-2, warmup_steps=20, log_every=max(1, steps // 20),
                          save_every=steps, keep_last=1, seed=0),
    )


# ------------------------------------------------------------------------------------------------- real mode


def _run_backbone(options: QuickstartOptions, run: RunRecord) -> tuple[list, dict[str, Path], dict]:
    """The same stages on a real backbone and real queries; evaluation on held-out queries' own responses."""
    from genvec.data.dataset import read_responses
    from genvec.data.responses import generate_responses
    from genvec.data.sources import read_queries

    query_set = read_queries(options.queries)
    if len(query_set) < 20:
        raise InputError(f"queries={options.queries!r} holds {len(query_set)} usable queries; the quickstart needs "
                         ">= 20.")
    run_dir, progress = run.path.parent, options.show_progress
    heldout_positions = _heldout_positions(len(query_set))
    steps = options.steps or 1000
    # Counted before any response is generated: the batch must fit the training queries that remain.
    config = _backbone_config(options, run_dir, steps, len(query_set) - len(heldout_positions))
    all_responses = run_dir / "all_responses.jsonl"
    run.stage("responses", lambda: generate_responses(query_set, all_responses, config.model, config.data,
                                                      show_progress=progress))
    records = read_responses(all_responses)
    heldout = [records[i] for i in heldout_positions]
    held_out = set(heldout_positions)
    training = [record for i, record in enumerate(records) if i not in held_out]
    with atomic_write(config.data.responses) as file:
        file.writelines(record.to_json() + "\n" for record in training)
    stages.respond(run, config, None, progress)
    queries, responses = [r.query for r in heldout], [r.response for r in heldout]
    corpus = [record.response for record in records]
    # MiniLM's cosines only when MiniLM is the teacher (it encodes in the teacher's space)
    minilm = stages.minilm_encoder(_baseline_device(options.device)) if options.teacher is None else None
    per_seed = []
    for seed in range(options.seeds):
        model, seed_config = stages.train_seed(run, config, seed, options.seeds)
        methods = _methods(model, options.device, baselines=seed == 0)  # the baselines train nothing: once
        results = run.stage(stages.seed_stage("evaluate", seed, options.seeds), functools.partial(
            evaluate.evaluate_retrieval, methods, queries, corpus, heldout_positions))
        decoded = run.stage(stages.seed_stage("decode", seed, options.seeds), functools.partial(
            _decode, model, queries, seed_config, run_dir, seed, responses, progress))
        decoding = stages.decoding_scores(decoded, minilm)
        if minilm is not None:
            results[0].scores["decoded_similarity"] = decoding["cosine_to_own_response"]
        per_seed.append((results, decoding, decoded))
    results, decoding, decoded, seeds = _over_seeds(per_seed)
    summary = {
        "backbone": options.backbone,
        "queries": f"{len(records)} ({len(training)} for training, {len(heldout)} held out)",
        "genvec": f"{config.tokens.num_special_tokens} special tokens, {steps} steps of batch "
                  f"{config.train.batch_size}",
        "not measured": "(b) clustering and (c) harmful retrieval need the world's labels",
        "seeds": _seeds_line(options.seeds),
        "decoding": report.decoding_paragraph(decoding, options.backbone),
        "decoding examples": decoded[:3],
        "time": run.describe(),
    }
    labels = np.zeros(len(heldout), dtype=int)  # no groups
    return results, report.write_run(run_dir, results, labels, summary, seeds=seeds), seeds


def _backbone_config(options: QuickstartOptions, run_dir: Path, steps: int, training_queries: int) -> GenVecConfig:
    """The published recipe (Qwen3 learning rate, N = K = 10, batch 32, or every training query when there are
    fewer) for `steps` steps, MiniLM as the teacher."""
    return GenVecConfig(
        model=ModelConfig(backbone=options.backbone, embedding_dim=TEACHER_DIM, device=options.device),
        data=DataConfig(responses=str(run_dir / "responses.jsonl"), targets=str(run_dir / "targets"),
                        max_new_tokens=300, generation_batch_size=32),
        teacher=TeacherConfig(name=_teacher(options), device=options.device),
        train=TrainConfig(run_dir=str(run_dir / "train"), max_steps=steps, batch_size=min(32, training_queries),
                          alignment_learning_rate=1e-2, log_every=max(1, steps // 50), save_every=max(1, steps // 4),
                          keep_last=1),
    )


# ------------------------------------------------------------------------------------------------- helpers


def _methods(model, device: str, baselines: bool = True) -> list:
    """genvec, and (with `baselines`) beside it the two input-centric baselines: the same LM mean-pooled (the LM is
    frozen: every seed's model gives the same), and MiniLM (an encoder) on the raw text, on the CPU unless a device
    is named."""
    from genvec.evaluate.baselines import mean_pooled_encoder

    genvec = evaluate.Method("genvec", lambda texts: model.encode(texts, normalize=True, show_progress=False),
                             lambda texts: model.encode_document(texts, normalize=True, show_progress=False))
    if not baselines:
        return [genvec]
    mean_pooled = mean_pooled_encoder(model.backbone, model.tokenizer)
    minilm = stages.minilm_encoder(_baseline_device(device))
    return [genvec, evaluate.Method("LM mean-pool", mean_pooled, mean_pooled),
            evaluate.Method("MiniLM", minilm, minilm)]


def _baseline_device(device: str) -> str:
    return "cpu" if device == "auto" else device


def _decode(model, queries: list[str], config: GenVecConfig, run_dir: Path, seed: int,
            references: list[str] | None, show_progress: bool) -> list[dict]:
    """One seed's decoded held-out queries (in its `stages.seed_dir`), beside `references` or the LM's own responses
    (generated once, in `run_dir`, for every seed: the LM is frozen)."""
    if references is None:
        references = stages.heldout_references(model, queries, config, run_dir, show_progress)
    return stages.decode_heldout(model, queries, config, stages.seed_dir(run_dir, seed), references, show_progress)


def _over_seeds(per_seed: list[tuple[list, dict, list]]) -> tuple[list, dict, list, dict]:
    """The seeds' (results, decoding scores, decoded records), the baselines in the first seed's results only, as the
    report shows them: the results with genvec's scores the means over the seeds (its plot: seed 0's embeddings), the
    decoding scores' means, seed 0's decoded records, and the spreads (`count`, `training_seeds`, and the `spread`
    of genvec's `scores`, its `margins` over the best baseline and the `decoding` scores)."""
    first = per_seed[0][0]
    genvec = [results[0] for results, _, _ in per_seed]
    scores = report.spreads([result.scores for result in genvec])
    margins = report.spreads([evaluate.margins([result, *first[1:]]) for result in genvec])
    decodings = [decoding for _, decoding, _ in per_seed]
    decoding = report.spreads(decodings)
    mean = evaluate.MethodResult(genvec[0].name, {name: value["mean"] for name, value in scores.items()},
                                 genvec[0].query_embeddings)
    seeds = {"count": len(per_seed), "training_seeds": list(range(len(per_seed))), "scores": scores,
             "margins": margins, "decoding": decoding}
    decoding_means = {**decodings[0], **{name: value["mean"] for name, value in decoding.items()}}
    return [mean, *first[1:]], decoding_means, per_seed[0][2], seeds


def _seeds_line(seeds: int) -> str:
    if seeds == 1:
        return "1 training seed (seed 0)"
    return (f"{seeds} training seeds (0-{seeds - 1}; seed 0 in the run directory, seed S in seed-S/); genvec's scores "
            "are means, with their spread below")


def _teacher(options: QuickstartOptions) -> str:
    return options.teacher if options.teacher is not None else stages.minilm_path()


def _heldout_positions(count: int) -> list[int]:
    size = min(500, max(8, round(count * HELDOUT_SHARE)))
    return sorted(random.Random(0).sample(range(count), size))
