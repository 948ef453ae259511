"""genvec's data stages on Ray (the `ray` extra): embeddings as a Ray Data stage, and the per-shard workers of
`genvec generate-responses`, `compute-targets` and `encode --output DIR` as Ray tasks.

- `GenVecEmbedder`: a callable class for `Dataset.map_batches`; one model per actor, a batch of texts in, the
  batch back with an `embedding` column (a fixed-size list of D float32, Arrow's `FixedSizeList`), equal to
  `model.encode` of the same texts.
- `embed_dataset(source, model, output=DIR)`: Parquet or JSON Lines (or a Ray Dataset) through an actor pool of
  `GenVecEmbedder`s (one GPU each where the cluster has GPUs), written by Ray as Parquet files beside
  `_manifest.json`. A rerun after a kill keeps every file that reads back whole and embeds only the rows whose ids
  are in none of them; at the end every id must be there exactly once.
- `run_shards(work, num_shards)`: `work(num_shards=N, shard_id=i)` for every i as a Ray task (retried by Ray when
  its process or node dies), which is how the CLI's `--launcher ray` runs `generate_responses`, `compute_targets`
  and a share of `encode_corpus`: the same function, the same files as the process-shard path.
- `responses_from_ray(source, output, ...)`: the rows of a `ray.data.llm` generation (query, `generated_text`,
  `num_generated_tokens`) as genvec's response file, which `genvec compute-targets` and `genvec train` read.

Scheduling, retries and data movement are Ray's; nothing here reimplements them. What it does not do: start a
cluster (`ray.init()` joins the one `RAY_ADDRESS` names, or starts a local one), or put genvec on the cluster's
nodes (every node needs it installed, and the paths given must be readable from every node).
"""

import itertools
import json
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

import numpy as np

from genvec.data.dataset import ResponseRecord, metadata_path
from genvec.data.response_file import FORMAT_NAME as RESPONSES_FORMAT
from genvec.data.response_file import FORMAT_VERSION as RESPONSES_VERSION
from genvec.errors import InputError, check_positive_int
from genvec.files import atomic_write, exclusive_lock, lock_file_for, sha256_file, write_text_atomic
from genvec.formats import differences, header, read_document
from genvec.inference import Side
from genvec.integrations.common import resolve_model
from genvec.model import GenVecModel

logger = logging.getLogger(__name__)

FORMAT_NAME = "genvec-ray-embeddings"
FORMAT_VERSION = 1
MANIFEST = "_manifest.json"  # engines reading the directory as a Parquet dataset skip names starting with "_"
ROWS_PER_CALL = 256  # rows Ray hands an actor at once; the model batches them by length (its own batch_size)
ROWS_PER_FILE = 10_000  # at most (Ray's hint): what a rerun after a kill may have to embed again per file
MAX_RETRIES = 3  # a task whose process or node died runs again this many times; an error it raises never does
_JSON_SUFFIXES = (".jsonl", ".ndjson", ".json")
T = TypeVar("T")


class GenVecEmbedder:
    """A genvec model as a Ray Data stage: `dataset.map_batches(GenVecEmbedder, fn_constructor_kwargs={"model":
    "ckpt"}, compute=ray.data.ActorPoolStrategy(size=n), num_gpus=1)`. Ray builds one per actor, so the model is
    loaded once per actor.

    Args:
        model: a checkpoint directory or hub id (loaded in the actor), or a loaded `GenVecModel` (copied to it).
        side: "document" or "query": the model's saved instruction for that side; None with `instruction`.
        instruction: an instruction of your own instead of a side (pass side=None with it).
        dimensions: keep the first d coordinates (a truncatable model for d < D), as in `model.encode`.
        device: where each actor runs the model ("auto": its GPU when Ray gave it one).
        batch_size: texts per forward pass.
        normalize: L2-normalise each embedding (after `dimensions`).
        text_column: the column holding the texts.

    Example:
        >>> ds = ray.data.read_parquet("corpus/").map_batches(GenVecEmbedder, fn_constructor_kwargs={"model": "ckpt"},
        ...     batch_size=256, compute=ray.data.ActorPoolStrategy(size=2))
        >>> ds.write_parquet("vectors/")  # every column of corpus/ and embedding
    """

    def __init__(self, model: str | Path | GenVecModel, side: Side | None = "document", instruction: str | None = None,
                 dimensions: int | None = None, device: str = "auto", batch_size: int = 32, normalize: bool = False,
                 text_column: str = "text") -> None:
        _use_ray_cpus()
        self.model = resolve_model(model, device=device)
        self.side, self.instruction, self.dimensions = side, instruction, dimensions
        self.batch_size, self.normalize, self.text_column = batch_size, normalize, text_column
        self.dim = self.model.embedding_dim if dimensions is None else dimensions

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, object]:
        """`batch` (Ray's numpy format) with an `embedding` column: a fixed-size list of D float32 per row."""
        if self.text_column not in batch:
            raise InputError(f"the dataset has no column {self.text_column!r} (its columns: {', '.join(batch)}); pass "
                             "text_column naming the one that holds the texts.")
        texts = np.asarray(batch[self.text_column]).tolist()  # numpy's str_ as str; anything else refused by encode
        if texts:
            vectors = self.model.encode(texts, side=self.side, instruction=self.instruction, batch_size=self.batch_size,
                                        normalize=self.normalize, dimensions=self.dimensions, show_progress=False)
        else:  # Ray may hand an actor an empty batch; the model refuses no texts
            vectors = np.zeros((0, self.dim), np.float32)
        return {**batch, "embedding": vector_column(vectors)}


def vector_column(vectors: np.ndarray):
    """(rows, D) float32 as the Arrow column every engine reads as vectors: a fixed-size list of D float32 a row."""
    import pyarrow as pa

    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    return pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), vectors.shape[1])


def embed_dataset(
    source,
    model: str | Path | GenVecModel,
    *,
    output: str | Path,
    side: Side | None = "document",
    instruction: str | None = None,
    dimensions: int | None = None,
    normalize: bool = False,
    text_column: str = "text",
    id_column: str = "id",
    batch_size: int = 32,
    actors: int | None = None,
) -> Path:
    """Embed every row of `source` on a Ray actor pool and write Parquet files under `output`; returns `output`.

    The files hold every column of `source` and `embedding` (a fixed-size list of D float32), and read back with
    pyarrow, pandas, polars or DuckDB alone (`pyarrow.parquet.read_table(output)`); row order is Ray's. The
    manifest `_manifest.json` records what was embedded and how; a rerun with other settings is refused. A rerun
    after a kill removes files cut by it, keeps the others, and embeds the rows whose ids none of them hold.

    Args:
        source: a Ray Dataset, or a path Ray reads: a Parquet file or directory, a JSON Lines file (.jsonl,
            .ndjson, .json: one object a line).
        model: a checkpoint directory or hub id (each actor loads it), or a loaded `GenVecModel`.
        output: the directory of the Parquet files (on storage every node of the cluster can write).
        side, instruction, dimensions, normalize, text_column, batch_size: as in `GenVecEmbedder`.
        id_column: the column of unique row ids, by which a rerun knows the rows already written.
        actors: actors (model copies) in the pool, each with a GPU where the cluster has them; on CPUs they share
            all CPUs but one (left to Ray's reading and writing), each with a thread per whole CPU it got (at least
            one). None: the cluster's GPUs, else 1.

    Raises:
        InputError: a source Ray cannot read as Parquet or JSON Lines, a missing column, an output written with
            other settings, or ids that repeat (a row would be lost or written twice).
        BusyError: another job writes `output`.

    Example:
        >>> embed_dataset("corpus.parquet", "ckpt", output="vectors", id_column="_id")
        >>> pyarrow.parquet.read_table("vectors").column("embedding")
    """
    ray = _ray()
    dataset = source if isinstance(source, ray.data.Dataset) else _read(ray, source)
    missing = [name for name in (id_column, text_column) if name not in dataset.columns()]
    if missing:  # checked here: an actor's error would come back wrapped in Ray's
        raise InputError(f"{_name(source)} has no column {', '.join(map(repr, missing))} (its columns: "
                         f"{', '.join(dataset.columns())}); pass id_column and text_column naming the columns of "
                         "each row's unique id and text.")
    output = Path(output)
    gpus = _cluster_gpus(ray)
    actors = actors if actors is not None else max(gpus, 1)
    check_positive_int(actors, "actors")
    # On CPUs the actors share every CPU but one: Ray's reading and writing tasks need one, and would wait forever
    # behind actors holding them all. (An actor's torch takes as many threads as whole CPUs it got, at least 1.)
    resources = {"num_gpus": 1} if gpus else {"num_cpus": max(_cluster_cpus(ray) - 1, 1) / actors}
    recorded = {"source": _name(source),
                "model": _model_record(model), "side": side, "instruction": instruction, "dimensions": dimensions,
                "normalize": normalize, "text_column": text_column, "id_column": id_column}
    output.parent.mkdir(parents=True, exist_ok=True)
    with exclusive_lock(lock_file_for(output), f"the embedding directory {output}"):
        output.mkdir(exist_ok=True)
        if _check_or_write_manifest(output, recorded):
            logger.info("%s: every row is embedded already", output)
            return output
        done = _written_ids(output, id_column)
        rows = dataset.count()
        todo = dataset if done is None else dataset.map_batches(_drop_written, batch_format="pyarrow",
                                                            fn_kwargs={"id_column": id_column, "done": done})
        logger.info("%s: %d of %d rows written already; embedding the rest on %d actor(s)", output,
                    0 if done is None else len(done), rows, actors)
        embedder = {"model": model, "side": side, "instruction": instruction, "dimensions": dimensions,
                    "batch_size": batch_size, "normalize": normalize, "text_column": text_column}
        todo = todo.map_batches(GenVecEmbedder, fn_constructor_kwargs=embedder, batch_size=ROWS_PER_CALL,
                                compute=ray.data.ActorPoolStrategy(size=actors), **resources)
        todo.write_parquet(str(output), max_rows_per_file=ROWS_PER_FILE)
        _check_complete(output, id_column, rows)
        _write_manifest(output, {**recorded, "rows": rows, "complete": True})
    return output


def run_shards(work: Callable[..., T], num_shards: int | None = None) -> list[T]:
    """`work(num_shards=N, shard_id=i)` for i in 0..N-1, each as a Ray task; their results in shard order.

    Each task gets one GPU where the cluster has GPUs (else one CPU), and Ray runs it again (`MAX_RETRIES` times)
    when its process or node dies; an error it raises ends the job with that error. Whatever `work` writes must
    resume (genvec's shard workers do), so a task run again continues where the dead one stopped.

    Args:
        work: a function of `num_shards` and `shard_id` that Ray can send to a worker (a module-level function or a
            `functools.partial` of one), e.g. `partial(generate_responses, "queries.jsonl", "responses.jsonl", cfg)`.
        num_shards: how many shares; None: the cluster's GPUs, else its CPUs.

    Raises:
        whatever a task raised (the first in shard order), as itself.
    """
    ray = _ray()
    gpus = _cluster_gpus(ray)
    count = num_shards if num_shards is not None else gpus or _cluster_cpus(ray)
    check_positive_int(count, "num_shards")
    task = ray.remote(num_gpus=1 if gpus else 0, num_cpus=1, max_retries=MAX_RETRIES)(_call_shard)
    logger.info("running %d shard task(s) on Ray (%s each)", count, "a GPU" if gpus else "a CPU")
    pending = [task.remote(work, count, shard_id) for shard_id in range(count)]
    try:
        return ray.get(pending)
    except ray.exceptions.RayTaskError as err:
        raise err.cause from err  # the worker's own error (a genvec error says what to fix), not Ray's wrapper
    except KeyboardInterrupt:
        for ref in pending:
            ray.cancel(ref, force=True)
        raise


def responses_from_ray(
    source,
    output: str | Path,
    *,
    backbone: str,
    max_new_tokens: int,
    revision: str | None = None,
    id_column: str = "id",
    query_column: str = "query",
) -> Path:
    """Write the output of a `ray.data.llm` generation as genvec's response file (and its `.meta.json`), in id order;
    returns `output`.

    Each row needs an integer id (the query's position in its source: `genvec.data.sources.read_queries` gives
    them), the query, `generated_text` and `num_generated_tokens` (the vLLM stage's columns). vLLM's output has no
    finish reason: a response of `max_new_tokens` tokens counts as cut ("length"), a shorter one as ended by the
    backbone ("eos"), as genvec's own generation records them.

    Args:
        source: a Ray Dataset, or the Parquet or JSON Lines file or directory Ray wrote (read with pyarrow alone).
        output: the response file to write, e.g. `responses.jsonl`.
        backbone: the model that answered (hub id or directory), recorded in the metadata.
        max_new_tokens: the generation's `max_tokens`.
        revision: the backbone's revision, if pinned.

    Raises:
        InputError: a missing column, an id that is not an integer or repeats, a query or response that is not text.
    """
    check_positive_int(max_new_tokens, "max_new_tokens")
    columns = [id_column, query_column, "generated_text", "num_generated_tokens"]
    table = _ray_rows(source, columns)
    records = sorted((_response_record(row, columns, max_new_tokens) for row in table.to_pylist()),
                     key=lambda record: record.id)
    repeated = next((a.id for a, b in itertools.pairwise(records) if a.id == b.id), None)
    if repeated is not None:
        raise InputError(f"{_name(source)}: the id {repeated} appears more than once; every query needs its own id "
                         "(its position in the query source).")
    if not records:
        raise InputError(f"{_name(source)}: no rows; pass the output of a finished generation.")
    output = Path(output)
    with atomic_write(output) as file:
        file.writelines(record.to_json() + "\n" for record in records)
    eos = sum(record.finish_reason == "eos" for record in records)
    document = {**header(RESPONSES_FORMAT, RESPONSES_VERSION), "complete": True,
                "backbone": {"name_or_path": backbone, "revision": revision},
                "requested": {"max_new_tokens": max_new_tokens, "engine": "ray.data.llm"},
                "generation": {"engine": "ray.data.llm (vLLM)"}, "source": {"source": _name(source)},
                "shard": {"id": 0, "count": 1},
                "counts": {"queries": len(records), "written": len(records), "eos": eos, "length": len(records) - eos,
                           "response_tokens": sum(record.response_tokens for record in records), "prompts_cut": 0}}
    write_text_atomic(metadata_path(output), json.dumps(document, indent=2) + "\n")
    logger.info("wrote %d responses from %s to %s", len(records), _name(source), output)
    return output


# ------------------------------------------------------------------------------------------------- helpers


def _ray():
    """Ray, initialised: the cluster `RAY_ADDRESS` names, else a local one (`ray.init()`'s own rule)."""
    try:
        import ray
        import ray.data
    except ImportError as err:
        raise InputError(f"this needs Ray Data, which is not installed here ({err}); run `pip install "
                         "'genvec[ray]'`.") from err
    if not ray.is_initialized():
        ray.init()
    return ray


def _name(source) -> str:
    """A source for messages and manifests: its path, or "a Ray Dataset" (whose str() would run the Dataset)."""
    return str(source) if isinstance(source, (str, Path)) else "a Ray Dataset"


def _cluster_gpus(ray) -> int:
    return int(ray.cluster_resources().get("GPU", 0))


def _cluster_cpus(ray) -> int:
    return max(1, int(ray.cluster_resources().get("CPU", 1)))


def _call_shard(work: Callable[..., T], num_shards: int, shard_id: int) -> T:
    _use_ray_cpus()
    return work(num_shards=num_shards, shard_id=shard_id)


def _use_ray_cpus() -> None:
    """In a Ray task or actor, torch's CPU threads = the whole CPUs Ray gave it (at least 1). Ray sets
    OMP_NUM_THREADS only where the environment has none, and a local cluster's workers inherit the driver's, which
    `import genvec` sets to every core: workers sharing a machine would each use them all."""
    import ray
    import torch

    if not ray.is_initialized() or ray.get_runtime_context().worker.mode != ray.WORKER_MODE:
        return  # not in a task or actor: the driver keeps its threads
    cpus = ray.get_runtime_context().get_assigned_resources().get("CPU")
    if cpus:
        torch.set_num_threads(max(1, int(cpus)))


def _read(ray, source: str | Path):
    """A Ray Dataset of a Parquet file or directory, or of a JSON Lines file."""
    path = Path(source)
    if path.suffix.lower() in _JSON_SUFFIXES:
        return ray.data.read_json(str(path), lines=True)
    if path.is_dir() or path.suffix.lower() == ".parquet":
        return ray.data.read_parquet(str(path))
    raise InputError(f"{str(source)!r}: embed_dataset reads Parquet (a .parquet file or a directory of them) or JSON "
                     "Lines (.jsonl, .ndjson, .json); for anything else read it with ray.data yourself and pass the "
                     "Dataset.")


def _model_record(model: str | Path | GenVecModel) -> dict[str, object]:
    """What names the model in the manifest: a loaded model's identity, a checkpoint directory's path and the
    SHA-256 of its config (which holds its weights' SHA-256), or a hub id."""
    if isinstance(model, GenVecModel):
        return {"identity": model.identity()}
    config = Path(model) / "genvec_config.json"
    if config.is_file():
        return {"path": str(Path(model).resolve()), "config_sha256": sha256_file(config)}
    return {"id": str(model)}


def _check_or_write_manifest(output: Path, recorded: dict) -> bool:
    """Whether `output` is complete already; refuses a manifest of other settings, writes a new one."""
    path = output / MANIFEST
    if not path.is_file():
        if any(output.glob("*.parquet")):
            raise InputError(f"{output} holds Parquet files but no {MANIFEST}; pass another output.")
        _write_manifest(output, {**recorded, "complete": False})
        return False
    document = read_document(path, FORMAT_NAME, FORMAT_VERSION, InputError, "pass another output")
    found = differences({key: document.get(key) for key in recorded}, recorded)
    if found:
        raise InputError(f"{output} holds embeddings of another job ({'; '.join(found)}); pass another output or "
                         "remove it.")
    return bool(document.get("complete"))


def _write_manifest(output: Path, document: dict) -> None:
    write_text_atomic(output / MANIFEST, json.dumps({**header(FORMAT_NAME, FORMAT_VERSION), **document}, indent=2)
                      + "\n")


def _written_ids(output: Path, id_column: str):
    """The ids in the files a killed run wrote whole (as an Arrow array); a file it cut is removed."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    parts = []
    for file in sorted(output.glob("*.parquet")):
        try:
            parts.append(pq.read_table(file, columns=[id_column]).column(id_column))
        except (OSError, pa.ArrowException) as err:  # cut by the kill: its rows are embedded again
            logger.warning("%s: removing %s, cut by an earlier run (%s)", output, file.name, err)
            file.unlink()
    return pa.chunked_array(parts).combine_chunks() if parts else None


def _drop_written(table, *, id_column: str, done):
    """The rows of `table` (a pyarrow Table) whose ids are not in `done`."""
    import pyarrow.compute as pc

    return table.filter(pc.invert(pc.is_in(table.column(id_column), value_set=done)))


def _check_complete(output: Path, id_column: str, rows: int) -> None:
    """Every row of the source in the output exactly once (counted by id)."""
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    ids = pq.read_table(output, columns=[id_column]).column(id_column)
    unique = len(pc.unique(ids))
    if len(ids) != rows or unique != rows:
        raise InputError(f"{output}: {len(ids)} rows written ({unique} distinct ids) for {rows} source rows; the ids "
                         f"in {id_column!r} must be unique, one a row. Fix the source and write to another output.")


def _ray_rows(source, columns: Sequence[str]):
    """`columns` of a Ray Dataset or of the files Ray wrote, as one pyarrow Table."""
    import pyarrow as pa
    import pyarrow.dataset as pds

    if isinstance(source, (str, Path)):
        path = Path(source)
        files = [file for file in (sorted(path.iterdir()) if path.is_dir() else [path])
                 if not file.name.startswith(("_", "."))]
        json_lines = all(file.suffix.lower() in _JSON_SUFFIXES for file in files)
        dataset = pds.dataset(str(path), format="json" if json_lines else "parquet")
        missing = [name for name in columns if name not in dataset.schema.names]
        table = None if missing else dataset.to_table(columns=list(columns))
    else:
        ray = _ray()
        missing = [name for name in columns if name not in source.columns()]
        table = None if missing else pa.concat_tables(ray.get(source.select_columns(list(columns)).to_arrow_refs()))
    if missing:
        raise InputError(f"{_name(source)}: no column {', '.join(map(repr, missing))}; a ray.data.llm generation's "
                         f"rows need {', '.join(columns)} (keep the id and query columns in its postprocess).")
    return table


def _response_record(row: dict, columns: Sequence[str], max_new_tokens: int) -> ResponseRecord:
    row_id, query, text, tokens = (row[name] for name in columns)
    if isinstance(row_id, bool) or not isinstance(row_id, int):
        raise InputError(f"the id {row_id!r} is not an integer; a response's id is its query's position in the query "
                         "source (genvec.data.sources.read_queries gives it).")
    if not isinstance(query, str) or not isinstance(text, str) or not isinstance(tokens, int) or tokens < 0:
        raise InputError(f"row {row_id}: the query and generated_text must be text and num_generated_tokens a count, "
                         f"got {type(query).__name__}, {type(text).__name__} and {tokens!r}.")
    return ResponseRecord(id=row_id, query=query, response=text.strip(), response_tokens=tokens,
                          finish_reason="length" if tokens >= max_new_tokens else "eos")
