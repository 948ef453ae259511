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

What it does not do: embed responses (`genvec.targets`), or filter multi-turn conversations out of a source.
"""

import contextlib
import copy
import dataclasses
import json
import logging
import re
import time
import types
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from typing import TYPE_CHECKING

import torch
from tqdm.auto import tqdm
from transformers import GenerationConfig, PreTrainedTokenizerBase

from genvec import __version__
from genvec import backbone as backbones
from genvec.config import DataConfig, ModelConfig
from genvec.data.collate import pad_left
from genvec.data.dataset import (
    ResponseRecord,
    find_shards,
    metadata_path,
    read_response_file,
    read_responses,
    response_files,
    shard_path,
)
from genvec.data.sources import QuerySet, queries_from_texts, read_queries
from genvec.errors import InputError
from genvec.files import append_synced, atomic_write, write_text_atomic

if TYPE_CHECKING:
    from genvec.model import GenVecModel  # genvec.model imports genvec.data: a runtime import would be circular

logger = logging.getLogger(__name__)

FORMAT_NAME = "genvec-responses"
FORMAT_VERSION = 1
# A progress bar is shown by default from this many batches on.
PROGRESS_MIN_BATCHES = 4
# Sampling seeds of batch b: seed * SEED_STRIDE + position of its first query (distinct per batch and per seed).
SEED_STRIDE = 1_000_003


@dataclass(frozen=True)
class GenerationSummary:
    """What one `generate_responses` call did, for one shard."""

    output: Path
    shard_id: int
    num_shards: int
    queries: int
    resumed: int
    generated: int
    eos: int
    length: int
    response_tokens: int
    seconds: float
    skipped_empty: int
    skipped_duplicates: int

    @property
    def queries_per_s(self) -> float:
        return self.generated / self.seconds if self.seconds > 0 else 0.0

    @property
    def tokens_per_s(self) -> float:
        return self.response_tokens / self.seconds if self.seconds > 0 else 0.0


def generate_responses(
    queries: str | Path | Sequence[str] | QuerySet,
    output: str | Path,
    backbone: "str | ModelConfig | GenVecModel",
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
        backbone: a hub id or directory, a `ModelConfig` (dtype, device, revision), or a `GenVecModel` whose
            already-loaded backbone and tokenizer are reused.
        config: prompt length, decoding, seed, batch size, engine; None uses the defaults.
        num_shards: how many processes share the queries.
        shard_id: which share this call answers, 0 <= shard_id < num_shards.
        show_progress: progress bar with queries/s and tokens/s; None shows it from PROGRESS_MIN_BATCHES batches.

    Returns:
        A `GenerationSummary` (counts for this shard, throughput of this call).

    Raises:
        InputError: bad queries, a bad shard, an output written with other settings or for other queries, a
            backbone that cannot be loaded, or a missing optional engine.

    Example:
        >>> generate_responses("prompts.jsonl", "responses.jsonl", "Qwen/Qwen3-0.6B", DataConfig(max_new_tokens=300))
    """
    config = config or DataConfig()
    _check_shard(num_shards, shard_id)
    query_set = _query_set(queries, config)
    positions = list(range(shard_id, len(query_set), num_shards))
    path = shard_path(output, shard_id, num_shards)
    backbone = _pinned_backbone(backbone)
    identity = _backbone_identity(backbone)
    requested = _requested_settings(config)
    previous = _read_metadata(path)  # the sidecar of an earlier run into this file, if any
    done = _resume(path, previous, query_set, positions, identity, requested, config.generation_batch_size)
    run = _Run(path, previous, query_set, positions, done, identity, requested, config, shard_id, num_shards)
    if len(done) == len(positions):
        logger.info("%s already holds all %d responses of shard %d/%d", path, len(done), shard_id, num_shards)
        run.write_metadata(complete=True)
        return run.summary(0.0)
    engine, tokenizer = _open_engine(backbone, config)
    prompts = PromptBuilder(tokenizer, config.prompt_max_length)
    run.settings = {**engine.settings, "chat_template": prompts.uses_template, "thinking_disabled": prompts.no_thinking,
                    "batch_size": config.generation_batch_size}
    show = show_progress
    if show is None:
        show = len(positions) - len(done) >= PROGRESS_MIN_BATCHES * config.generation_batch_size
    start = time.perf_counter()
    try:
        run.write_metadata(complete=False)
        with open(path, "a", encoding="utf-8") as file, tqdm(
            total=len(run.positions), initial=run.written, desc="generate", unit="query", disable=not show,
            dynamic_ncols=True,
        ) as bar:
            for batch_positions in _batches(positions, len(done), config.generation_batch_size):
                records = _generate_batch(engine, tokenizer, prompts, query_set, batch_positions, config.seed)
                append_synced(file, "".join(record.to_json() + "\n" for record in records))  # whole lines
                run.add(records)
                _advance(bar, run, records, time.perf_counter() - start)
    finally:
        run.prompts_cut = prompts.cut
        run.write_metadata(complete=run.written == len(positions))
    summary = run.summary(time.perf_counter() - start)
    logger.info(
        "shard %d/%d: %d responses generated (%d resumed) in %.1f s, %.2f queries/s, %.1f tokens/s -> %s",
        shard_id, num_shards, summary.generated, summary.resumed, summary.seconds, summary.queries_per_s,
        summary.tokens_per_s, path,
    )
    return summary


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
    write_text_atomic(metadata_path(output), json.dumps(_merged_metadata(files, records), indent=2) + "\n")
    logger.info("merged %d responses from %d files into %s", len(records), len(files), output)
    return output, len(records)


# ---------------------------------------------------------------------------------------------- prompts


class PromptBuilder:
    """Token ids of the prompt for one query: chat template (one user turn + generation prompt) or raw text.

    Attributes:
        uses_template: the tokenizer has a chat template.
        no_thinking: the template reads `enable_thinking`, and it is set to False.
        cut: how many prompts were cut to `max_length` so far.
    """

    def __init__(self, tokenizer: PreTrainedTokenizerBase, max_length: int) -> None:
        self.tokenizer = tokenizer
        self.max_length = max_length
        self.cut = 0
        template = _chat_template(tokenizer)
        self.uses_template = template is not None
        self.no_thinking = self.uses_template and "enable_thinking" in _template_variables(template)
        if not self.uses_template:
            warnings.warn(
                f"the tokenizer of {tokenizer.name_or_path!r} has no chat template; the backbone reads each raw "
                "query as its prompt. Use an instruction-tuned backbone for chat-style responses.",
                stacklevel=3,
            )

    def __call__(self, query: str) -> list[int]:
        ids = self._render(query)
        if len(ids) <= self.max_length:
            return ids
        if self.cut == 0:
            warnings.warn(
                f"a prompt of {len(ids)} tokens is longer than prompt_max_length={self.max_length}; the end of such "
                "queries is cut (the chat template is kept). The metadata counts them.",
                stacklevel=4,
            )
        self.cut += 1
        return self._cut(query, len(ids))

    def _render(self, text: str) -> list[int]:
        if not self.uses_template:
            return self.tokenizer(text, add_special_tokens=True)["input_ids"]
        extra = {"enable_thinking": False} if self.no_thinking else {}
        prompt = self.tokenizer.apply_chat_template(
            [{"role": "user", "content": text}], add_generation_prompt=True, tokenize=False, **extra
        )
        # The template already holds every special token (a Llama BOS included): adding them again would double it.
        return self.tokenizer(prompt, add_special_tokens=False)["input_ids"]

    def _cut(self, query: str, full_length: int) -> list[int]:
        """Keep the template, shorten the query until the prompt fits (re-tokenising can merge tokens)."""
        query_ids = self.tokenizer(query, add_special_tokens=False)["input_ids"]
        keep = len(query_ids) - (full_length - self.max_length)
        while keep > 0:
            ids = self._render(self.tokenizer.decode(query_ids[:keep]))
            if len(ids) <= self.max_length:
                return ids
            keep -= max(1, len(ids) - self.max_length)
        raise InputError(
            f"prompt_max_length={self.max_length} cannot hold the chat template with any of the query; raise it."
        )


def _chat_template(tokenizer: PreTrainedTokenizerBase) -> str | None:
    if not getattr(tokenizer, "chat_template", None):
        return None
    try:
        return tokenizer.get_chat_template()
    except ValueError:  # several named templates and no default: the raw query is the honest fallback
        return None


def _template_variables(template: str) -> set[str]:
    """Variables a Jinja chat template reads from its caller (e.g. `messages`, `enable_thinking`)."""
    import jinja2
    import jinja2.ext
    import jinja2.meta

    try:
        environment = jinja2.Environment(extensions=[jinja2.ext.loopcontrols])
        return set(jinja2.meta.find_undeclared_variables(environment.parse(template)))
    except jinja2.TemplateSyntaxError:  # templates with custom tags: fall back to a whole-word search
        return set(re.findall(r"\b(enable_thinking)\b", template))


# ---------------------------------------------------------------------------------------------- engines


class _TransformersEngine:
    """Batched `generate` of a loaded causal LM: left padding, KV cache, the backbone's EOS ids."""

    def __init__(self, backbone, tokenizer: PreTrainedTokenizerBase, config: DataConfig) -> None:
        self.backbone = backbone
        self.pad_token_id = backbones.pad_token_id(tokenizer)
        self.eos_token_ids = backbones.end_of_sequence_ids(tokenizer, backbone)
        self.generation_config = _generation_config(
            backbone.generation_config, config, self.eos_token_ids, self.pad_token_id
        )
        self.settings = _resolved_settings(self.generation_config, "transformers")

    def generate(self, prompts: list[list[int]], seeds: list[int] | None) -> list[tuple[list[int], bool]]:
        device = self.backbone.get_input_embeddings().weight.device
        batch = pad_left(prompts, self.pad_token_id).to(device)
        seed = seeds[0] if seeds and self.generation_config.do_sample else None
        with torch.inference_mode(), _seeded(seed, device):
            output = self.backbone.generate(
                input_ids=batch.input_ids, attention_mask=batch.attention_mask, generation_config=self.generation_config
            )  # (B, L + new)
        new_tokens = output[:, batch.input_ids.shape[1] :].tolist()
        return [_cut_at_eos(row, self.eos_token_ids) for row in new_tokens]


class _VLLMEngine:
    """vLLM generation with the same prompts, decoding settings and EOS ids (GPU; the `vllm` extra). Untested here."""

    def __init__(self, model: ModelConfig, tokenizer: PreTrainedTokenizerBase, config: DataConfig) -> None:
        try:
            import vllm
        except ImportError as err:
            raise InputError("engine 'vllm' needs vLLM on a GPU machine; run `pip install genvec[vllm]`.") from err
        try:
            base = GenerationConfig.from_pretrained(model.backbone, revision=model.revision)
        except OSError:
            base = GenerationConfig()
        self.pad_token_id = backbones.pad_token_id(tokenizer)
        self.eos_token_ids = backbones.end_of_sequence_ids(tokenizer, types.SimpleNamespace(generation_config=base))
        self.generation_config = _generation_config(base, config, self.eos_token_ids, self.pad_token_id)
        self.settings = _resolved_settings(self.generation_config, "vllm")
        dtype = {"auto": "auto", "bf16": "bfloat16", "fp16": "float16", "fp32": "float32"}[model.dtype]
        self.vllm = vllm
        self.llm = vllm.LLM(model=model.backbone, revision=model.revision, dtype=dtype, seed=config.seed or 0)

    def generate(self, prompts: list[list[int]], seeds: list[int] | None) -> list[tuple[list[int], bool]]:
        settings = self.generation_config
        params = [
            self.vllm.SamplingParams(
                n=1,
                temperature=(settings.temperature or 1.0) if settings.do_sample else 0.0,
                top_p=settings.top_p if settings.do_sample and settings.top_p else 1.0,
                top_k=settings.top_k if settings.do_sample and settings.top_k else -1,
                min_p=settings.min_p if settings.do_sample and settings.min_p else 0.0,
                repetition_penalty=settings.repetition_penalty or 1.0,
                max_tokens=settings.max_new_tokens,
                min_tokens=settings.min_new_tokens or 0,
                stop_token_ids=self.eos_token_ids,
                seed=seeds[index] if seeds else None,
            )
            for index in range(len(prompts))
        ]
        outputs = self.llm.generate([{"prompt_token_ids": ids} for ids in prompts], params, use_tqdm=False)
        results = []
        for output in outputs:
            completion = output.outputs[0]
            tokens, stopped = _cut_at_eos(list(completion.token_ids), self.eos_token_ids)
            results.append((tokens, stopped or completion.finish_reason == "stop"))
        return results


def _open_engine(backbone: "GenVecModel | ModelConfig", config: DataConfig):
    """The engine and the tokenizer for `backbone` (from `_pinned_backbone`)."""
    from genvec.model import GenVecModel

    if isinstance(backbone, GenVecModel):
        if config.engine == "vllm":
            raise InputError("engine 'vllm' loads its own copy of the backbone; pass the backbone id, not a model.")
        return _TransformersEngine(backbone.backbone, backbone.tokenizer, config), backbone.tokenizer
    if config.engine == "vllm":
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(backbone.backbone, revision=backbone.revision)
        return _VLLMEngine(backbone, tokenizer, config), tokenizer
    loaded, tokenizer = backbones.load_configured(backbone)
    return _TransformersEngine(loaded, tokenizer, config), tokenizer


def _generation_config(
    base: GenerationConfig, config: DataConfig, eos_token_ids: list[int], pad_token_id: int
) -> GenerationConfig:
    """The backbone's generation config with our length, EOS and decoding choices applied."""
    generation = copy.deepcopy(base)
    if config.decoding == "greedy":
        generation.do_sample = False
        # Sampling knobs left set would only trigger "not used in greedy mode" warnings.
        generation.temperature = generation.top_p = generation.top_k = generation.min_p = None
    elif config.decoding == "sample":
        generation.do_sample = True
    generation.max_new_tokens = config.max_new_tokens
    generation.max_length = None
    generation.eos_token_id = list(eos_token_ids)
    generation.pad_token_id = pad_token_id
    generation.num_return_sequences = 1
    generation.use_cache = True
    return generation


def _resolved_settings(generation: GenerationConfig, engine: str) -> dict[str, object]:
    return {
        "engine": engine,
        "do_sample": bool(generation.do_sample),
        "temperature": generation.temperature if generation.do_sample else None,
        "top_p": generation.top_p if generation.do_sample else None,
        "top_k": generation.top_k if generation.do_sample else None,
        "min_p": generation.min_p if generation.do_sample else None,
        "repetition_penalty": generation.repetition_penalty,
        "num_beams": generation.num_beams,
        "min_new_tokens": generation.min_new_tokens,
        "max_new_tokens": generation.max_new_tokens,
        "eos_token_ids": list(generation.eos_token_id),
        "pad_token_id": generation.pad_token_id,
    }


@contextlib.contextmanager
def _seeded(seed: int | None, device: torch.device) -> Iterator[None]:
    """Seed torch's RNG for one batch without changing the caller's RNG state."""
    if seed is None:
        yield
        return
    # fork_rng restores the CPU state and, on CUDA, the state of the batch's device.
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        yield


def _cut_at_eos(tokens: list[int], eos_token_ids: list[int]) -> tuple[list[int], bool]:
    """The tokens before the first EOS id, and whether one was found (the backbone ended its answer)."""
    for index, token in enumerate(tokens):
        if token in eos_token_ids:
            return tokens[:index], True
    return tokens, False


# ---------------------------------------------------------------------------------------------- the run


class _Run:
    """Counts and metadata of one shard's output file."""

    def __init__(self, path, previous, query_set, positions, done, identity, requested, config, shard_id, num_shards):
        self.path, self.query_set, self.positions = path, query_set, positions
        self.identity, self.requested, self.config = identity, requested, config
        self.shard_id, self.num_shards = shard_id, num_shards
        self.settings: dict[str, object] = {}
        self.resumed = len(done)
        self.written = len(done)
        self.eos = sum(record.finish_reason == "eos" for record in done)
        self.new_tokens = 0
        self.total_tokens = sum(record.response_tokens for record in done)
        self.previous = previous or {}
        # Prompts cut earlier in this file (informational: a dropped partial batch may be counted twice).
        self.prompts_cut_before = self.previous.get("counts", {}).get("prompts_cut", 0) if done else 0
        self.prompts_cut = 0

    def add(self, records: list[ResponseRecord]) -> None:
        self.written += len(records)
        self.eos += sum(record.finish_reason == "eos" for record in records)
        tokens = sum(record.response_tokens for record in records)
        self.new_tokens += tokens
        self.total_tokens += tokens

    def write_metadata(self, complete: bool) -> None:
        summary = self.query_set.summary
        document = {
            "format": FORMAT_NAME,
            "format_version": FORMAT_VERSION,
            "genvec_version": __version__,
            "complete": complete,
            "backbone": self.identity,
            "requested": self.requested,
            "generation": self.settings or self.previous.get("generation", {}),
            "source": {**dataclasses.asdict(summary), "field": self.config.query_field, "split": self.config.split},
            "shard": {"id": self.shard_id, "count": self.num_shards},
            "counts": {
                "queries": len(self.positions),
                "written": self.written,
                "eos": self.eos,
                "length": self.written - self.eos,
                "response_tokens": self.total_tokens,
                "prompts_cut": self.prompts_cut_before + self.prompts_cut,
            },
        }
        write_text_atomic(metadata_path(self.path), json.dumps(document, indent=2) + "\n")

    def summary(self, seconds: float) -> GenerationSummary:
        return GenerationSummary(
            output=self.path, shard_id=self.shard_id, num_shards=self.num_shards, queries=len(self.positions),
            resumed=self.resumed, generated=self.written - self.resumed, eos=self.eos, length=self.written - self.eos,
            response_tokens=self.new_tokens, seconds=seconds,
            skipped_empty=self.query_set.summary.empty, skipped_duplicates=self.query_set.summary.duplicates,
        )


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


def _advance(bar, run: _Run, records: list[ResponseRecord], seconds: float) -> None:
    bar.update(len(records))
    if seconds > 0:
        bar.set_postfix(tokens_per_s=f"{run.new_tokens / seconds:.1f}", refresh=False)


# ---------------------------------------------------------------------------------------------- resume


def _resume(path: Path, previous: dict | None, query_set: QuerySet, positions: list[int], identity: dict,
            requested: dict, batch_size: int) -> list[ResponseRecord]:
    """The complete batches already in `path` (after checking they answer these queries with these settings).

    A torn last line and a partly written last batch are removed from the file, so the run goes on at a batch
    boundary and batches exactly like an uninterrupted run.
    """
    if not path.exists():
        return []
    if previous is not None:
        _check_compatible(path, previous, identity, requested)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a torn line is expected here, and is repaired below
        records, complete_bytes = read_response_file(path)
    if len(records) > len(positions):
        raise InputError(f"{path} holds {len(records)} responses but this shard has {len(positions)} queries; it "
                         "was written for another query source. Delete it or choose another output.")
    for record, position in zip(records, positions):
        if record.id != query_set.ids[position] or record.query != query_set.queries[position]:
            raise InputError(
                f"{path} was written for other queries (record id {record.id} holds {record.query!r:.60}, expected id "
                f"{query_set.ids[position]}: {query_set.queries[position]!r:.60}). Delete it or choose another output."
            )
    keep = len(records) if len(records) == len(positions) else len(records) - len(records) % batch_size
    if keep < len(records) or complete_bytes < path.stat().st_size:
        with atomic_write(path) as file:
            file.write("".join(record.to_json() + "\n" for record in records[:keep]))
        logger.info("resuming %s: kept %d complete responses, dropped %d", path, keep, len(records) - keep)
    return records[:keep]


def _check_compatible(path: Path, previous: dict, identity: dict, requested: dict) -> None:
    differences = []
    for key in ("name_or_path", "revision"):
        if previous.get("backbone", {}).get(key) != identity[key]:
            differences.append(f"backbone {key} {previous.get('backbone', {}).get(key)!r} -> {identity[key]!r}")
    for key, value in requested.items():
        if previous.get("requested", {}).get(key) != value:
            differences.append(f"{key} {previous.get('requested', {}).get(key)!r} -> {value!r}")
    if differences:
        raise InputError(
            f"{path} was generated with other settings ({'; '.join(differences)}); resuming would mix them. "
            "Delete it (and its .meta.json) or choose another output."
        )


def _read_metadata(path: Path) -> dict | None:
    meta = metadata_path(path)
    if not meta.is_file():
        return None
    try:
        document = json.loads(meta.read_text(encoding="utf-8"))
    except ValueError as err:
        raise InputError(f"{meta}: not valid JSON ({err}); delete it to start over.") from err
    if not isinstance(document, dict) or document.get("format") != FORMAT_NAME:
        raise InputError(f"{meta} is not a genvec responses metadata file; delete it or choose another output.")
    return document


# ---------------------------------------------------------------------------------------------- inputs


def _check_shard(num_shards: int, shard_id: int) -> None:
    if not isinstance(num_shards, int) or num_shards < 1:
        raise InputError(f"num_shards must be a positive integer, got {num_shards!r}.")
    if not isinstance(shard_id, int) or not 0 <= shard_id < num_shards:
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


def _pinned_backbone(backbone) -> "GenVecModel | ModelConfig":
    """A loaded `GenVecModel` as it is (`from_config` pinned it); an id or a `ModelConfig` as a `ModelConfig` whose
    revision is the commit it points to now, resolved before anything is loaded.

    Every kind of `backbone` thus names its weights the same way, so a run resumed from another entry point (the
    CLI after `genvec train`) is recognised, and one resumed after the hub repository moved on is refused instead of
    mixing two models' responses.
    """
    from genvec.model import GenVecModel

    if isinstance(backbone, GenVecModel):
        return backbone
    if isinstance(backbone, ModelConfig):
        if not backbone.backbone:
            raise InputError("no backbone given; set model.backbone to a hub id or a local model directory.")
        model = backbone
    elif isinstance(backbone, str) and backbone:
        model = ModelConfig(backbone=backbone)
    else:
        raise InputError(f"backbone must be a hub id, a directory, a ModelConfig or a GenVecModel, got {backbone!r}.")
    return dataclasses.replace(model, revision=backbones.resolve_revision(model.backbone, model.revision))


def _backbone_identity(backbone: "GenVecModel | ModelConfig") -> dict[str, object]:
    """Which weights answer: the id or directory and its pinned revision (see `_pinned_backbone`)."""
    model = backbone if isinstance(backbone, ModelConfig) else backbone.config.model
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


def _merged_metadata(files: list[Path], records: list[ResponseRecord]) -> dict[str, object]:
    parts = [_read_metadata(file) for file in files]
    known = [part for part in parts if part is not None]
    document = dict(known[0]) if known else {"format": FORMAT_NAME, "format_version": FORMAT_VERSION}
    eos = sum(record.finish_reason == "eos" for record in records)
    document.update(
        complete=bool(known) and len(known) == len(parts) and all(part.get("complete") for part in known),
        shard={"id": 0, "count": 1, "merged_from": [file.name for file in files]},
        counts={
            "queries": sum(part.get("counts", {}).get("queries", 0) for part in known) or len(records),
            "written": len(records),
            "eos": eos,
            "length": len(records) - eos,
            "response_tokens": sum(record.response_tokens for record in records),
            "prompts_cut": sum(part.get("counts", {}).get("prompts_cut", 0) for part in known),
        },
    )
    return document
