"""The training loop of LLM2Vec-Gen (paper section 3, published recipe): `train(config) -> TrainResult`.

Only the special vectors and the two projections train; the backbone stays frozen and is never saved. The loop
runs on Accelerate: one process on a CPU or GPU, several with DDP under `accelerate launch` or `torchrun`, FSDP when
Accelerate is configured for it. Each optimizer step takes one *global batch* of `train.batch_size` examples,
chosen by a seeded plan that does not depend on the number of devices; its examples are spread over devices and
micro-batches, and every loss term is normalised by the counts of the whole global batch, so the gradient equals
that of one big batch whatever the split (and a run can resume on another number of devices).

Checkpoints (`run_dir/checkpoints/step-NNNNNNNN/`) hold the trainable tensors (a native checkpoint that
`genvec.load_model` opens), the optimizer and scheduler states, RNG states and the step, which is also the data
position. A checkpoint directory is written under a temporary name and renamed when complete.

What this file does not do: generate responses or compute teacher embeddings (`data/`, `teacher.py`); the data
reaches the loop as `TrainingExamples`.
"""

import dataclasses
import functools
import hashlib
import json
import logging
import math
import os
import random
import shutil
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from genvec.checkpoint.native import check_trainable, read_native_weights, save_native
from genvec.config import GenVecConfig, TrainConfig
from genvec.data.collate import pad_left, pad_right, tokenize_queries, tokenize_responses
from genvec.errors import ConfigError, TrainingError
from genvec.files import atomic_write, write_text_atomic
from genvec.model import GenVecModel

logger = logging.getLogger(__name__)

CHECKPOINTS = "checkpoints"
FINAL = "final"
METRICS = "metrics.jsonl"
RESOLVED_CONFIG = "config.yaml"
TRAINER_STATE = "trainer_state.json"
OPTIMIZER_STATE = "optimizer.pt"
# Examples per length-sorted group when batches are grouped by length (as in transformers' length grouping).
LENGTH_GROUP_BATCHES = 50


@dataclass
class TrainingExamples:
    """What training reads: queries, the backbone's responses to them, and teacher embeddings of the responses."""

    queries: list[str]
    responses: list[str]
    teacher_embeddings: np.ndarray  # (N, D) float32 (may be a memory map)

    def __len__(self) -> int:
        return len(self.queries)


@dataclass
class TrainResult:
    """Where a finished run put its outputs, and its last logged losses."""

    run_dir: Path
    model_dir: Path
    steps: int
    metrics: dict[str, float]


@dataclass
class _LoopState:
    """Where the loop is: the next step to run, what the run is (data and plan), the last checkpoint written."""

    step: int
    identity: dict[str, object]
    last_saved: int | None


@dataclass
class _TokenizedExamples:
    """Token ids of every example (no padding), with the teacher embeddings, kept in host memory."""

    query_ids: list[list[int]]
    response_ids: list[list[int]]
    teacher_embeddings: np.ndarray  # (N, D)

    @functools.cached_property
    def lengths(self) -> np.ndarray:
        """(N,) query plus response tokens of each example; every step's micro-batching reads it."""
        return np.array([len(q) + len(r) for q, r in zip(self.query_ids, self.response_ids)])


def train(config: GenVecConfig, examples: TrainingExamples | None = None) -> TrainResult:
    """Train the special tokens and projections of a model, as `config` says.

    Without `examples` the data comes from `config.data`: the responses file and target store (default paths in
    the run directory); when `data.queries` is set the backbone first answers the queries (resuming or reusing a
    finished file), and when `teacher.name` is set the teacher first embeds every response not yet in the store.

    Args:
        config: every section; `train.run_dir` receives the resolved config, metrics, checkpoints, the final model.
        examples: (query, response, teacher embedding) triples given directly instead of `config.data`.

    Returns:
        A `TrainResult`; `result.model_dir` is a native checkpoint for `genvec.load_model`.

    Raises:
        TrainingError: no or mismatched data, a non-finite loss (the last good checkpoint is kept).
        ConfigError: a batch split that does not fit the number of devices, a run_dir that already holds a run.

    Example:
        >>> config = GenVecConfig.from_file("qwen3.yaml")  # data.queries, teacher.name, model.backbone, ...
        >>> result = genvec.train(config)
        >>> model = genvec.load_model(result.model_dir)
    """
    # Long because it is the table of contents of a run: each line is one stage, each stage one function call.
    from accelerate import Accelerator
    from accelerate.utils import DistributedDataParallelKwargs

    _check_tracker(config.train.report_to)
    unused = config.loss.alignment_weight == 0  # A gets no gradient then; DDP must be told
    accelerator = Accelerator(
        log_with=None if config.train.report_to == "none" else config.train.report_to,
        project_dir=config.train.run_dir,
        kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=unused)],
    )
    _check_launch(accelerator)
    run_dir = Path(config.train.run_dir)
    resume_from = find_resume_checkpoint(run_dir, config.train.resume)
    micro_batch, accumulation = _batch_split(config.train, accelerator.num_processes)
    model = _build_model(config, accelerator)
    if examples is None:
        examples = prepare_examples(config, model, accelerator)
    _check_examples(examples, config.train.batch_size)
    config, model = _fit_embedding_dim(config, model, examples)
    if accelerator.is_main_process:
        config.to_file(run_dir / RESOLVED_CONFIG)
    tokenized = _tokenize(model, examples)
    model.activation_checkpointing = config.train.activation_checkpointing
    if config.train.compile:
        model.compile_layers()  # after response generation, which decodes with a KV cache
    optimizer, scheduler = _make_optimizer(model, config.train)
    wrapped, optimizer = accelerator.prepare(model, optimizer)
    identity = _run_identity(examples, config.train)
    step = 0
    if resume_from is not None:
        step = load_checkpoint(resume_from, model, optimizer, scheduler, accelerator, identity)
        _truncate_metrics(run_dir / METRICS, step)
    _report_start(config.train, accelerator, len(examples), micro_batch, accumulation, step)
    if config.train.report_to != "none":
        accelerator.init_trackers("genvec", config=_flat(config.to_dict()))
    plan = BatchPlan(tokenized.lengths, config.train.batch_size, config.train.seed, config.train.group_by_length)
    state = _LoopState(step=step, identity=identity, last_saved=step or None)
    metrics = _loop(wrapped, model, optimizer, scheduler, tokenized, plan, accelerator, config.train, run_dir, state)
    model_dir = run_dir / FINAL
    trainables = full_trainables(model)  # every process: FSDP gathers the shards
    if accelerator.is_main_process:
        save_native(model, model_dir, tensors=trainables)
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return TrainResult(run_dir, model_dir, config.train.max_steps, metrics)


def prepare_examples(config: GenVecConfig, model: GenVecModel, accelerator) -> TrainingExamples:
    """The training triples from `config.data`, generating responses and teacher embeddings that are missing.

    Each process answers and embeds its own shard; every process then reads the whole dataset. Finished files
    are reused: generation resumes or returns at once, and the teacher embeds only responses not yet stored.
    """
    from genvec.data.dataset import read_responses
    from genvec.data.responses import generate_responses
    from genvec.targets import compute_targets

    run_dir = Path(config.train.run_dir)
    responses_path = Path(config.data.responses or run_dir / "responses.jsonl")
    targets_path = Path(config.data.targets or run_dir / "targets")
    shards = {"num_shards": accelerator.num_processes, "shard_id": accelerator.process_index}
    if config.data.queries:
        generate_responses(config.data.queries, responses_path, model, config.data, **shards)
        accelerator.wait_for_everyone()
    elif not _exists_any(responses_path):
        raise TrainingError(
            f"no responses at {str(responses_path)!r} and no queries to generate them from; set data.responses to "
            "a responses file, or data.queries (and model.backbone) to let the backbone answer them."
        )
    records = read_responses(responses_path)
    texts = [record.response for record in records]
    if config.teacher.name:
        teacher = dataclasses.replace(config.teacher, device=str(accelerator.device))
        compute_targets(texts, teacher, targets_path, batch_size=teacher.batch_size,
                        storage_dtype=teacher.storage_dtype, **shards)
        accelerator.wait_for_everyone()
    store = _open_store(targets_path, len(texts))
    missing = len(texts) - sum(store.contains(texts))
    if missing:
        raise TrainingError(
            f"the target store {str(targets_path)!r} (teacher {store.teacher_name!r}) lacks {missing} of the "
            f"{len(texts)} responses in {str(responses_path)!r}: it was made for other responses. Set teacher.name to "
            "compute the missing ones, or point data.targets at the store made for these responses."
        )
    return TrainingExamples([r.query for r in records], texts, store.lookup(texts))


# --------------------------------------------------------------------------------------------------- the loop


def _loop(
    wrapped: torch.nn.Module,
    model: GenVecModel,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    tokenized: _TokenizedExamples,
    plan: "BatchPlan",
    accelerator,
    train_config: TrainConfig,
    run_dir: Path,
    state: "_LoopState",
) -> dict[str, float]:
    """Run optimizer steps from `state.step` to `max_steps`, logging and checkpointing; returns the last metrics."""
    step = state.step
    progress = tqdm(
        total=train_config.max_steps, initial=step, desc="train", unit="step", disable=not accelerator.is_main_process
    )
    metrics: dict[str, float] = {}
    started = time.perf_counter()
    while step < train_config.max_steps:
        step_started = time.perf_counter()
        indices = plan.batch(step)
        metrics = train_step(wrapped, model, optimizer, scheduler, tokenized, indices, accelerator, train_config)
        step += 1
        if not math.isfinite(metrics["loss"]):
            _stop_on_non_finite(step, metrics, run_dir, state.last_saved)
        metrics.update(step=step, tokens_per_s=metrics.pop("tokens") / (time.perf_counter() - step_started))
        metrics["elapsed_s"] = time.perf_counter() - started
        progress.update(1)
        progress.set_postfix(_postfix(metrics), refresh=False)
        if step % train_config.log_every == 0 or step == train_config.max_steps:
            _log_metrics(run_dir / METRICS, metrics, accelerator)
        if step % train_config.save_every == 0 or step == train_config.max_steps:
            save_checkpoint(run_dir, step, model, optimizer, scheduler, accelerator, train_config.keep_last,
                            state.identity)
            state.last_saved = step
    progress.close()
    return metrics


def train_step(
    wrapped: torch.nn.Module,
    model: GenVecModel,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    tokenized: _TokenizedExamples,
    indices: np.ndarray,
    accelerator,
    train_config: TrainConfig,
) -> dict[str, float]:
    """One optimizer step over a global batch: this process's micro-batches, clipping, AdamW, schedule.

    Each micro-batch's loss is normalised by the response tokens and examples of the whole global batch and scaled
    by the number of processes (DDP averages gradients over processes), so the gradients add up to those of the
    global batch. Returns the global batch's losses (summed over processes), learning rate and gradient norm.
    """
    num_tokens = sum(len(tokenized.response_ids[i]) for i in indices)
    micro_batches = _micro_batches(indices, tokenized, accelerator.process_index, accelerator.num_processes,
                                   train_config)
    sums = torch.zeros(3, device=model.device)  # total, reconstruction, alignment of this process's share
    local_tokens = 0
    for position, micro in enumerate(micro_batches):
        queries, responses, targets, tokens = _collate(micro, tokenized, model)
        local_tokens += tokens
        is_last = position == len(micro_batches) - 1
        with _maybe_no_sync(accelerator, wrapped, is_last):
            output = wrapped(queries, responses, targets, num_response_tokens=num_tokens, num_examples=len(indices))
            accelerator.backward(output.total * accelerator.num_processes)
        sums += torch.stack([t.detach() for t in output])
    grad_norm = _clip(accelerator, model, train_config.max_grad_norm)
    learning_rate = scheduler.get_last_lr()[0]
    totals = accelerator.reduce(torch.cat([sums, sums.new_tensor([local_tokens])]), reduction="sum")
    total, reconstruction, alignment, tokens = totals.tolist()
    if math.isfinite(total):  # a non-finite loss must not reach the weights; the caller stops the run
        optimizer.step()
        scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    return {"loss": total, "reconstruction": reconstruction, "alignment": alignment, "learning_rate": learning_rate,
            "grad_norm": grad_norm, "tokens": tokens}


class BatchPlan:
    """The seeded order of global batches, the same for any number of devices; step s -> example indices.

    Each epoch shuffles the examples; with length grouping, groups of LENGTH_GROUP_BATCHES batches are sorted by
    length before being cut into batches, and the batches are shuffled again. A final partial batch is dropped.
    """

    def __init__(self, lengths: np.ndarray, batch_size: int, seed: int, group_by_length: bool) -> None:
        self.lengths, self.batch_size, self.seed, self.group_by_length = lengths, batch_size, seed, group_by_length
        self.batches_per_epoch = len(lengths) // batch_size
        self._epoch, self._batches = -1, []

    def batch(self, step: int) -> np.ndarray:
        epoch, position = divmod(step, self.batches_per_epoch)
        if epoch != self._epoch:
            self._epoch, self._batches = epoch, self._plan_epoch(epoch)
        return self._batches[position]

    def _plan_epoch(self, epoch: int) -> list[np.ndarray]:
        rng = np.random.default_rng([self.seed, epoch])
        order = rng.permutation(len(self.lengths))
        if self.group_by_length:
            group = self.batch_size * LENGTH_GROUP_BATCHES
            order = np.concatenate(
                [chunk[np.argsort(-self.lengths[chunk], kind="stable")] for chunk in np.split(
                    order, range(group, len(order), group))]
            )
        usable = self.batches_per_epoch * self.batch_size
        batches = np.split(order[:usable], self.batches_per_epoch)
        if self.group_by_length:
            batches = [batches[i] for i in rng.permutation(len(batches))]
        return batches


def _micro_batches(
    indices: np.ndarray, tokenized: _TokenizedExamples, rank: int, world: int, train_config: TrainConfig
) -> list[np.ndarray]:
    """This process's share of a global batch, cut into micro-batches of similar length."""
    by_length = indices[np.argsort(-tokenized.lengths[indices], kind="stable")]
    share = by_length[rank::world]  # interleaved, so every process gets long and short examples alike
    micro, _ = _batch_split(train_config, world)
    return [share[start : start + micro] for start in range(0, len(share), micro)]


def _collate(micro: np.ndarray, tokenized: _TokenizedExamples, model: GenVecModel):
    """Padded tensors of a micro-batch on the model's device, and its token count."""
    query_ids = [tokenized.query_ids[i] for i in micro]
    response_ids = [tokenized.response_ids[i] for i in micro]
    queries = pad_left(query_ids, model.pad_token_id).to(model.device)
    responses = pad_right(response_ids, model.pad_token_id).to(model.device)
    targets = torch.from_numpy(np.asarray(tokenized.teacher_embeddings[micro], dtype=np.float32)).to(model.device)
    tokens = sum(map(len, query_ids)) + sum(map(len, response_ids))
    return queries, responses, targets, tokens


# --------------------------------------------------------------------------------------------------- checkpoints


def save_checkpoint(
    run_dir: Path,
    step: int,
    model: GenVecModel,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    accelerator,
    keep_last: int,
    identity: dict[str, object],
) -> Path:
    """Write `checkpoints/step-NNNNNNNN/` atomically (temporary name, then rename) and drop old checkpoints."""
    final = run_dir / CHECKPOINTS / f"step-{step:08d}"
    temporary = final.with_name(final.name + ".tmp")
    if accelerator.is_main_process:
        shutil.rmtree(temporary, ignore_errors=True)
        temporary.mkdir(parents=True)
    accelerator.wait_for_everyone()
    write_text_atomic(temporary / f"rng-{accelerator.process_index}.json", json.dumps(_rng_state()))
    trainables, optimizer_state = full_trainables(model), full_optimizer_state(model, optimizer)  # every process
    if accelerator.is_main_process:
        save_native(model, temporary, tensors=trainables)
        torch.save(optimizer_state, temporary / OPTIMIZER_STATE)
        state = {"step": step, "scheduler": scheduler.state_dict(), "num_processes": accelerator.num_processes,
                 "run": identity}
        write_text_atomic(temporary / TRAINER_STATE, json.dumps(state, indent=2) + "\n")
    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        shutil.rmtree(final, ignore_errors=True)
        temporary.rename(final)
        for old in list_checkpoints(run_dir)[:-keep_last]:
            shutil.rmtree(old)
        logger.info("saved checkpoint %s", final)
    accelerator.wait_for_everyone()
    return final


def load_checkpoint(
    path: Path,
    model: GenVecModel,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    accelerator,
    identity: dict[str, object],
) -> int:
    """Restore trainables, optimizer, scheduler and RNG states from a checkpoint; returns its step.

    Refuses a checkpoint of another run: other data, batch size, seed or length grouping would make its step
    point at other examples.
    """
    state = json.loads((path / TRAINER_STATE).read_text(encoding="utf-8"))
    differences = [
        f"{key}: checkpoint {state['run'].get(key)!r}, now {value!r}"
        for key, value in identity.items()
        if state.get("run", {}).get(key) != value
    ]
    if differences:
        raise TrainingError(
            f"cannot resume from {str(path)!r}: it belongs to another run (" + "; ".join(differences) + "). Resume "
            "with the same data and train settings, or start a new run_dir."
        )
    load_full_state(model, optimizer, path)
    scheduler.load_state_dict(state["scheduler"])
    rng_file = path / f"rng-{accelerator.process_index}.json"
    if rng_file.is_file():
        _set_rng_state(json.loads(rng_file.read_text(encoding="utf-8")))
    logger.info("resumed from %s at step %d", path, state["step"])
    return int(state["step"])


def full_trainables(model: GenVecModel) -> dict[str, torch.Tensor]:
    """The trainable tensors, whole and on the CPU, in the main process (others get {}); every process must call it.

    Under FSDP each process holds a shard of every parameter; torch's state-dict helpers gather them. Without
    FSDP they return the tensors as they are.
    """
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_model_state_dict

    options = StateDictOptions(full_state_dict=True, cpu_offload=True, ignore_frozen_params=True)
    state = get_model_state_dict(model, options=options)
    # Frozen weights tied to another module can still appear; a checkpoint holds the trainables only.
    return {name: state[name] for name in model.trainable_state_dict() if name in state}


def full_optimizer_state(model: GenVecModel, optimizer: torch.optim.Optimizer) -> dict:
    """The optimizer state keyed by parameter name, whole and on the CPU, in the main process; every process calls it."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

    options = StateDictOptions(full_state_dict=True, cpu_offload=True)
    return get_optimizer_state_dict(model, optimizer, options=options)


def load_full_state(model: GenVecModel, optimizer: torch.optim.Optimizer, path: Path) -> None:
    """Put a checkpoint's whole trainable tensors and optimizer state into the model and optimizer; every process
    calls it. Under FSDP each process keeps its own shard of them."""
    from torch.distributed.checkpoint.state_dict import (
        StateDictOptions,
        set_model_state_dict,
        set_optimizer_state_dict,
    )

    weights = read_native_weights(path)
    check_trainable(model, weights, source=str(path))
    options = StateDictOptions(full_state_dict=True, strict=False)  # strict=False: the frozen backbone is not there
    set_model_state_dict(model, weights, options=options)
    # weights_only: the optimizer state is tensors and numbers; nothing else is unpickled.
    optimizer_state = torch.load(path / OPTIMIZER_STATE, map_location="cpu", weights_only=True)
    set_optimizer_state_dict(model, optimizer, optimizer_state, options=options)


def list_checkpoints(run_dir: Path) -> list[Path]:
    """Complete checkpoints of a run, oldest first (temporary directories are ignored)."""
    directory = Path(run_dir) / CHECKPOINTS
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir() if p.is_dir() and p.name.startswith("step-") and "." not in p.name)


def find_resume_checkpoint(run_dir: Path, resume: str | None) -> Path | None:
    """The checkpoint to continue from, by `train.resume`; a new run refuses a run_dir that has checkpoints."""
    existing = list_checkpoints(run_dir)
    if resume is None:
        if existing:
            raise ConfigError(
                f"train.run_dir {str(run_dir)!r} already holds {len(existing)} checkpoint(s) (newest "
                f"{existing[-1].name}); pass --resume to continue it, or choose another run_dir."
            )
        return None
    if resume == "latest":
        if not existing:
            logger.warning("no checkpoint in %s to resume from; starting a new run", run_dir)
            return None
        return existing[-1]
    path = Path(resume)
    if not (path / TRAINER_STATE).is_file():
        raise ConfigError(f"train.resume: {resume!r} is not a training checkpoint (no {TRAINER_STATE} in it).")
    return path


# --------------------------------------------------------------------------------------------------- helpers


def _check_launch(accelerator) -> None:
    """A launcher started several processes but Accelerate set up one: each would train alone into one run_dir.

    Accelerate does this for CPU processes under torchrun unless told they are CPU processes.
    """
    world_size = int(os.environ.get("WORLD_SIZE", "1"))
    if world_size > 1 and accelerator.num_processes == 1:
        raise ConfigError(
            f"this process is one of {world_size} (WORLD_SIZE={world_size}), but Accelerate set up a single process "
            f"(distributed type {accelerator.distributed_type.value}), so each process would train alone and write "
            "the same run directory. For CPU processes set ACCELERATE_USE_CPU=1 (or use `accelerate launch --cpu`); "
            "for GPUs check that every process sees CUDA."
        )


def _check_tracker(report_to: str) -> None:
    """Accelerate ignores a tracker that is not installed; a run asked to report somewhere must say so instead."""
    import importlib.util

    packages = {"tensorboard": ("tensorboard", "tensorboardX"), "wandb": ("wandb",)}.get(report_to, ())
    if packages and not any(importlib.util.find_spec(name) for name in packages):
        raise ConfigError(
            f"train.report_to: {report_to!r} needs the {packages[0]} package, which is not installed; "
            f"run `pip install {packages[0]}` or set train.report_to to 'none'."
        )


def _exists_any(responses_path: Path) -> bool:
    from genvec.data.dataset import find_shards

    return responses_path.exists() or bool(find_shards(responses_path))


def _open_store(targets_path: Path, count: int):
    from genvec.targets import TargetStore

    if not (targets_path / "store.json").is_file():
        raise TrainingError(
            f"no target store at {str(targets_path)!r} for the {count} responses; set teacher.name so that training "
            "computes it, or data.targets to an existing store (`genvec compute-targets`)."
        )
    return TargetStore.open(targets_path)


def _build_model(config: GenVecConfig, accelerator) -> GenVecModel:
    """The model on this process's device (Accelerate picks it), its backbone frozen."""
    model_config = dataclasses.replace(config.model, device=str(accelerator.device))
    return GenVecModel.from_config(dataclasses.replace(config, model=model_config))


def _batch_split(train_config: TrainConfig, num_processes: int) -> tuple[int, int]:
    """(micro-batch size, accumulation steps) so that micro x processes x accumulation = batch_size."""
    per_process, remainder = divmod(train_config.batch_size, num_processes)
    micro = train_config.micro_batch_size or per_process
    if remainder or micro == 0 or per_process % micro:
        raise ConfigError(
            f"train.batch_size {train_config.batch_size} cannot be split over {num_processes} process(es) in "
            f"micro-batches of {micro}: batch_size must equal micro_batch_size x processes x accumulation steps."
        )
    return micro, per_process // micro


def _run_identity(examples: TrainingExamples, train_config: TrainConfig) -> dict[str, object]:
    """What must not change between a checkpoint and its resumption: the data and the batch plan."""
    digest = hashlib.sha256()
    for query, response in zip(examples.queries, examples.responses):
        digest.update(query.encode("utf-8") + b"\x00" + response.encode("utf-8") + b"\x01")
    digest.update(np.ascontiguousarray(examples.teacher_embeddings, dtype=np.float32).tobytes())
    return {
        "examples": len(examples),
        "data_sha256": digest.hexdigest(),
        "batch_size": train_config.batch_size,
        "seed": train_config.seed,
        "group_by_length": train_config.group_by_length,
    }


def _check_examples(examples: TrainingExamples, batch_size: int) -> None:
    count = len(examples)
    if count == 0:
        raise TrainingError("the training data is empty: there is no (query, response, teacher embedding) example.")
    if not len(examples.responses) == count == len(examples.teacher_embeddings):
        raise TrainingError(
            f"training data does not line up: {count} queries, {len(examples.responses)} responses, "
            f"{len(examples.teacher_embeddings)} teacher embeddings; they must be equal."
        )
    if count < batch_size:
        raise TrainingError(
            f"the training data has {count} examples, fewer than one batch (train.batch_size {batch_size}); "
            "lower train.batch_size or add data."
        )


def _fit_embedding_dim(
    config: GenVecConfig, model: GenVecModel, examples: TrainingExamples
) -> tuple[GenVecConfig, GenVecModel]:
    """Match the embedding size to the teacher's: taken from the teacher when `model.embedding_dim` is None (the
    new, untrained projections are rebuilt around the same backbone), refused when it was set to another size."""
    dim = examples.teacher_embeddings.shape[1]
    if dim == model.embedding_dim:
        return config, model
    if config.model.embedding_dim is not None:
        raise TrainingError(
            f"teacher embeddings have dimension {dim}, but the model's embedding_dim is {model.embedding_dim}; "
            f"set model.embedding_dim to {dim} (the teacher's size), or leave it unset, or use targets of the "
            "right teacher."
        )
    logger.info("model.embedding_dim: %d, the teacher's dimension", dim)
    config = dataclasses.replace(config, model=dataclasses.replace(config.model, embedding_dim=dim))
    resolved = dataclasses.replace(model.config, model=dataclasses.replace(model.config.model, embedding_dim=dim))
    return config, GenVecModel(model.backbone, model.tokenizer, resolved)


def _tokenize(model: GenVecModel, examples: TrainingExamples) -> _TokenizedExamples:
    """Tokenise every example once, in chunks, with a progress bar."""
    max_length = model.config.model.max_length
    query_ids: list[list[int]] = []
    response_ids: list[list[int]] = []
    chunk = 4096
    for start in tqdm(range(0, len(examples), chunk), desc="tokenize", unit="chunk", disable=len(examples) <= chunk):
        queries = [q.strip() for q in examples.queries[start : start + chunk]]
        query_ids += tokenize_queries(model.tokenizer, queries, max_length, model.num_special_tokens)
        responses = examples.responses[start : start + chunk]
        response_ids += tokenize_responses(model.tokenizer, responses, max_length, model.eos_token_id)
    return _TokenizedExamples(query_ids, response_ids, examples.teacher_embeddings)


def _make_optimizer(model: GenVecModel, train_config: TrainConfig):
    from transformers import get_scheduler

    alignment = list(model.alignment.parameters())
    others = [p for p in model.trainable_parameters() if all(p is not q for q in alignment)]
    groups = [{"params": others}, {"params": alignment, "lr": train_config.alignment_learning_rate or
                                   train_config.learning_rate}]
    optimizer = torch.optim.AdamW(
        groups,
        lr=train_config.learning_rate,
        betas=train_config.adam_betas,
        eps=train_config.adam_epsilon,
        weight_decay=train_config.weight_decay,
    )
    scheduler = get_scheduler(
        train_config.schedule if train_config.schedule != "constant" else "constant_with_warmup",
        optimizer,
        num_warmup_steps=train_config.warmup_steps,
        num_training_steps=train_config.schedule_steps or train_config.max_steps,
    )
    return optimizer, scheduler


def _maybe_no_sync(accelerator, wrapped: torch.nn.Module, is_last: bool):
    """Skip the DDP gradient all-reduce on every micro-batch but the last of a step."""
    import contextlib

    return contextlib.nullcontext() if is_last else accelerator.no_sync(wrapped)


def _clip(accelerator, model: GenVecModel, max_norm: float) -> float:
    parameters = model.trainable_parameters()
    if max_norm > 0:
        return float(accelerator.clip_grad_norm_(parameters, max_norm))
    grads = [p.grad.detach().norm() for p in parameters if p.grad is not None]
    return float(torch.stack(grads).norm()) if grads else 0.0


def _stop_on_non_finite(step: int, metrics: dict[str, float], run_dir: Path, last_saved: int | None) -> None:
    kept = f"the last good checkpoint is step {last_saved} in {run_dir / CHECKPOINTS}" if last_saved else (
        "no checkpoint was saved yet")
    raise TrainingError(
        f"non-finite loss at step {step} (loss {metrics['loss']}, reconstruction {metrics['reconstruction']}, "
        f"alignment {metrics['alignment']}); training stopped and the weights were not updated; {kept}. "
        "Lower train.learning_rate, or check the data and the teacher embeddings for NaN."
    )


def _log_metrics(path: Path, metrics: dict[str, float], accelerator) -> None:
    if accelerator.is_main_process:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8") as file:
            file.write(json.dumps({k: round(v, 8) if isinstance(v, float) else v for k, v in metrics.items()}) + "\n")
    if accelerator.trackers:
        accelerator.log({k: v for k, v in metrics.items() if k != "step"}, step=int(metrics["step"]))


def _truncate_metrics(path: Path, step: int) -> None:
    """On resume, drop metric lines logged after the checkpoint (they will be logged again)."""
    if not path.is_file():
        return
    lines = [line for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    kept = [line for line in lines if json.loads(line).get("step", 0) <= step]
    with atomic_write(path) as file:
        file.writelines(line + "\n" for line in kept)


def _report_start(train_config: TrainConfig, accelerator, count: int, micro: int, accumulation: int, step: int):
    if accelerator.is_main_process:
        logger.info(
            "training on %d examples: effective batch %d = %d per device x %d device(s) x %d accumulation step(s); "
            "%s steps from step %d; run directory %s",
            count, train_config.batch_size, micro, accelerator.num_processes, accumulation,
            train_config.max_steps, step, train_config.run_dir,
        )


def _postfix(metrics: dict[str, float]) -> dict[str, str]:
    return {
        "loss": f"{metrics['loss']:.4f}",
        "rec": f"{metrics['reconstruction']:.4f}",
        "align": f"{metrics['alignment']:.5f}",
        "lr": f"{metrics['learning_rate']:.2e}",
        "tok/s": f"{metrics['tokens_per_s']:.0f}",
    }


def _flat(tree: dict, prefix: str = "") -> dict[str, object]:
    flat: dict[str, object] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(_flat(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value if isinstance(value, (int, float, str, bool)) else str(value)
    return flat


def _rng_state() -> dict:
    """Every RNG state as JSON-safe lists (no pickle is written or read)."""
    version, internal, gauss = random.getstate()
    kind, keys, position, has_gauss, cached = np.random.get_state()
    state = {
        "python": [version, list(internal), gauss],
        "numpy": [kind, keys.tolist(), position, has_gauss, cached],
        "torch": torch.get_rng_state().tolist(),
    }
    if torch.cuda.is_available():
        state["cuda"] = [s.tolist() for s in torch.cuda.get_rng_state_all()]
    return state


def _set_rng_state(state: dict) -> None:
    version, internal, gauss = state["python"]
    random.setstate((version, tuple(internal), gauss))
    kind, keys, position, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, np.array(keys, dtype=np.uint32), position, has_gauss, cached))
    torch.set_rng_state(torch.tensor(state["torch"], dtype=torch.uint8))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([torch.tensor(s, dtype=torch.uint8) for s in state["cuda"]])
