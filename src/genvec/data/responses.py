"""Response generation: the frozen backbone answers unlabeled queries, making its own training data (paper section 4).

Each query becomes one user turn of the backbone tokenizer's chat template with the generation prompt; when the
template reads `enable_thinking` (Qwen3) thinking is turned off, as in the paper. The decision comes from the
template's variables, never from the model name. A tokenizer without a chat template gets the raw query (one
warning). Prompts longer than `prompt_max_length` lose the end of the query, never the template around it.

Generation runs in fixed batches by position in the query list (left padding, KV cache, the backbone's EOS ids).
Decoding follows the backbone's generation config (sampling for Qwen3, as in the paper) unless greedy or sampling is
asked for; with a seed, each batch is seeded from the seed and its position, so a resumed run equals an
uninterrupted one. Every batch is appended to the JSONL output and flushed to disk before the next begins;
rerunning the same command continues after the last complete batch (a torn last line is cut off).

Sharding: shard i of n answers the queries at positions i, i+n, i+2n, ... into `NAME.shard-0000i-of-0000n.jsonl`;
ids are source rows, so `read_responses` or `merge_responses` put the shards back in source order. This module
never reads environment variables: the CLI maps torchrun / accelerate ranks to shard ids.

Prompts are built in `prompts.py`, generation runs in `engines.py`, the file and its metadata are kept by
`response_file.py`. What it does not do: embed responses (`genvec.targets`), or filter multi-turn conversations out
of a source.
"""

import dataclasses
import json
import logging
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from tqdm.auto import tqdm

from genvec import backbone as backbones
from genvec.backbone import LoadedBackbone
from genvec.config import DataConfig, ModelConfig
from genvec.data.dataset import ResponseRecord, find_shards, metadata_path, read_responses, response_files, shard_path
from genvec.data.engines import open_engine
from genvec.data.prompts import PromptBuilder
from genvec.data.response_file import (
    GenerationSummary,
    ResponseRun,
    ResponseShard,
    merged_metadata,
    read_metadata,
    resume_file,
)
from genvec.data.sources import QuerySet, queries_from_texts, read_queries
from genvec.errors import InputError, check_positive_int
from genvec.files import append_synced, atomic_write, exclusive_lock, lock_file_for, write_text_atomic
from genvec.formats import shows_progress

logger = logging.getLogger(__name__)

# Sampling seeds of batch b: seed * SEED_STRIDE + position of its first query (distinct per batch and per seed).
SEED_STRIDE = 1_000_003


def generate_responses(
    queries: str | Path | Sequence[str] | QuerySet,
    output: str | Path,
    backbone: str | ModelConfig | LoadedBackbone,
    config: DataConfig | None = None,
    *,
    num_shards: int = 1,
    shard_id: int = 0,
    show_progress: bool | None = None,
) -> GenerationSummary:
    """Let the backbone answer every query (of one shard) and write the responses as JSONL, resumably.

    Args:
        queries: a query source path (read with `config.query_field`, `split`, `max_queries`), a list of strings,
            or a `QuerySet` from `read_queries`.
        output: the JSONL file to write, e.g. `responses.jsonl`; with several shards, this shard's file is
            `responses.shard-0000i-of-0000n.jsonl` beside it. A metadata sidecar `*.meta.json` goes with it.
        backbone: a hub id or directory, a `ModelConfig` (dtype, device, revision), or a `LoadedBackbone` whose
            model and tokenizer are reused (`GenVecModel.loaded_backbone` gives one).
        config: prompt length, decoding, seed, batch size, engine; None uses the defaults.
        num_shards: how many processes share the queries.
        shard_id: which share this call answers, 0 <= shard_id < num_shards.
        show_progress: progress bar with queries/s and tokens/s; None shows it from
            `formats.PROGRESS_MIN_BATCHES` batches on.

    Returns:
        A `GenerationSummary` (counts for this shard, throughput of this call).

    Raises:
        InputError: bad queries, a bad shard, an output written with other settings or for other queries, a
            backbone that cannot be loaded, or a missing optional engine.

    Example:
        >>> generate_responses("prompts.jsonl", "responses.jsonl", "Qwen/Qwen3-0.6B", DataConfig(max_new_tokens=300))
    """
    config = DataConfig() if config is None else config
    if not isinstance(config, DataConfig):
        raise InputError(f"config must be a DataConfig (or None for the defaults), got {type(config).__name__}; e.g. "
                         "DataConfig(max_new_tokens=300).")
    _check_shard(num_shards, shard_id)
    query_set = _query_set(queries, config)
    backbone = _pinned_backbone(backbone)
    shard = ResponseShard(shard_path(output, shard_id, num_shards), query_set, _backbone_identity(backbone),
                          _requested_settings(config), config, shard_id, num_shards)
    path = shard.path
    with exclusive_lock(lock_file_for(path), f"the response file {path}"):
        run = _prepare_run(shard)
        if run.written == len(shard.positions):
            logger.info("%s already holds all %d responses of shard %d/%d", path, run.written, shard_id, num_shards)
            if not run.previous.get("complete"):  # a finished file is not written again (it may be read-only)
                run.write_metadata(complete=True)
            return run.summary(0.0)
        summary = _generate_rest(run, backbone, show_progress)
    logger.info(
        "shard %d/%d: %d responses generated (%d resumed) in %.1f s, %.2f queries/s, %.1f tokens/s -> %s",
        shard_id, num_shards, summary.generated, summary.resumed, summary.seconds, summary.queries_per_s,
        summary.tokens_per_s, path,
    )
    return summary


def _prepare_run(shard: ResponseShard) -> ResponseRun:
    """The shard's run, after checking and trimming what an earlier run left in its file (held under its lock)."""
    previous = read_metadata(shard.path)  # the sidecar of an earlier run into this file, if any
    return ResponseRun(shard, previous, resume_file(shard, previous))


def _generate_rest(run: ResponseRun, backbone: LoadedBackbone | ModelConfig, show_progress: bool | None):
    """Answer the shard's remaining queries batch by batch, each batch appended and synced before the next."""
    shard = run.shard
    config, positions = shard.config, shard.positions
    engine, tokenizer = open_engine(backbone, config)
    prompts = PromptBuilder(tokenizer, config.prompt_max_length)
    run.settings = {**engine.settings, "chat_template": prompts.uses_template, "thinking_disabled": prompts.no_thinking,
                    "batch_size": config.generation_batch_size}
    show = shows_progress(show_progress, len(positions) - run.written, config.generation_batch_size)
    start = time.perf_counter()
    try:
        run.write_metadata(complete=False)
        with open(shard.path, "a", encoding="utf-8") as file, tqdm(
            total=len(positions), initial=run.written, desc="generate", unit="query", disable=not show,
            dynamic_ncols=True,
        ) as bar:
            for batch_positions in _batches(positions, run.written, config.generation_batch_size):
                records = _generate_batch(engine, tokenizer, prompts, shard.query_set, batch_positions, config.seed)
                append_synced(file, "".join(record.to_json() + "\n" for record in records))  # whole lines
                run.add(records)
                _advance(bar, run, records, time.perf_counter() - start)
    finally:
        run.prompts_cut = prompts.cut
        run.write_metadata(complete=run.written == len(positions))
    return run.summary(time.perf_counter() - start)


def merge_responses(path: str | Path, output: str | Path | None = None) -> tuple[Path, int]:
    """Write the shards (or files) at `path` as one JSONL file in source order, with a merged metadata sidecar.

    Args:
        path: what `read_responses` accepts; usually the output name given to the sharded generation.
        output: the merged file; None means `path` itself when only its shards exist.

    Returns:
        (the merged file, the number of records).

    Raises:
        InputError: nothing to merge, an incomplete shard set, or an output that is one of the inputs.
    """
    files = response_files(path)
    if output is None:
        if Path(path).exists() or not find_shards(path):
            raise InputError(f"pass an output file to merge {str(path)!r} into (it is not a set of shards).")
        output = path
    output = Path(output)
    if any(output.resolve() == file.resolve() for file in files):
        raise InputError(f"output {str(output)!r} is one of the files being merged; choose another name.")
    records = read_responses(path)
    with atomic_write(output) as file:
        for record in records:
            file.write(record.to_json() + "\n")
    write_text_atomic(metadata_path(output), json.dumps(merged_metadata(files, records), indent=2) + "\n")
    logger.info("merged %d responses from %d files into %s", len(records), len(files), output)
    return output, len(records)


def _generate_batch(engine, tokenizer, prompts: PromptBuilder, query_set: QuerySet, positions: list[int],
                    seed: int | None) -> list[ResponseRecord]:
    prompt_ids = [prompts(query_set.queries[position]) for position in positions]
    seeds = None if seed is None else [seed * SEED_STRIDE + position for position in positions]
    generated = engine.generate(prompt_ids, seeds)
    texts = tokenizer.batch_decode([tokens for tokens, _ in generated], skip_special_tokens=True)
    return [
        ResponseRecord(
            id=query_set.ids[position],
            query=query_set.queries[position],
            response=text.strip(),
            response_tokens=len(tokens),
            finish_reason="eos" if stopped else "length",
        )
        for position, text, (tokens, stopped) in zip(positions, texts, generated)
    ]


def _batches(positions: list[int], start: int, batch_size: int) -> Iterator[list[int]]:
    """Fixed batches by position in the shard (so a resumed run batches exactly as an uninterrupted one)."""
    for first in range(start, len(positions), batch_size):
        yield positions[first : first + batch_size]


def _advance(bar, run: ResponseRun, records: list[ResponseRecord], seconds: float) -> None:
    bar.update(len(records))
    if seconds > 0:
        bar.set_postfix(tokens_per_s=f"{run.new_tokens / seconds:.1f}", refresh=False)


def _check_shard(num_shards: int, shard_id: int) -> None:
    check_positive_int(num_shards, "num_shards")
    if not isinstance(shard_id, int) or isinstance(shard_id, bool) or not 0 <= shard_id < num_shards:
        raise InputError(f"shard_id must be in 0..{num_shards - 1} for num_shards={num_shards}, got {shard_id!r}.")


def _query_set(queries, config: DataConfig) -> QuerySet:
    if isinstance(queries, QuerySet):
        query_set = queries
    elif isinstance(queries, (str, Path)):
        query_set = read_queries(queries, field=config.query_field, split=config.split, limit=config.max_queries)
    else:
        query_set = queries_from_texts(queries)
    if not len(query_set):
        raise InputError(f"no queries to answer in {query_set.summary.source} ({query_set.summary.rows} rows, "
                         f"{query_set.summary.empty} empty, {query_set.summary.duplicates} duplicate).")
    return query_set


def _pinned_backbone(backbone: str | ModelConfig | LoadedBackbone) -> LoadedBackbone | ModelConfig:
    """`backbone` with its revision replaced by the commit it points to now (hub ids; local directories keep theirs),
    resolved before anything is loaded; a `LoadedBackbone` keeps its loaded model and tokenizer.

    Every kind of `backbone` goes through the same resolution and names its weights the same way, so a run resumed
    from another entry point (the CLI after `genvec train`) is recognised, and one resumed after the hub repository
    moved on is refused instead of mixing two models' responses.
    """
    if isinstance(backbone, LoadedBackbone):
        model = backbone.config
    elif isinstance(backbone, ModelConfig):
        model = backbone
    elif isinstance(backbone, str) and backbone:
        model = ModelConfig(backbone=backbone)
    else:
        raise InputError(
            f"backbone must be a hub id, a directory, a ModelConfig or a LoadedBackbone (model.loaded_backbone), got "
            f"{backbone!r}."
        )
    if not model.backbone:
        raise InputError("no backbone given; set model.backbone to a hub id or a local model directory.")
    pinned = dataclasses.replace(model, backbone=backbones.local_path(model.backbone),
                                 revision=backbones.resolve_revision(model.backbone, model.revision))
    return dataclasses.replace(backbone, config=pinned) if isinstance(backbone, LoadedBackbone) else pinned


def _backbone_identity(backbone: LoadedBackbone | ModelConfig) -> dict[str, object]:
    """Which weights answer: the id or directory and its pinned revision (see `_pinned_backbone`)."""
    model = backbone if isinstance(backbone, ModelConfig) else backbone.config
    return {"name_or_path": model.backbone, "revision": model.revision}


def _requested_settings(config: DataConfig) -> dict[str, object]:
    """The settings a resumed run must share with the run it continues (batch size may change)."""
    return {
        "decoding": config.decoding,
        "seed": config.seed,
        "max_new_tokens": config.max_new_tokens,
        "prompt_max_length": config.prompt_max_length,
        "engine": config.engine,
    }

