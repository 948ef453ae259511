"""The training loop of LLM2Vec-Gen (paper section 3, published recipe): `train(config) -> TrainResult`.

Only the special vectors and the two projections train; the backbone stays frozen and is never saved. The loop
runs on Accelerate: one process on a CPU or GPU, several with DDP under `accelerate launch` or `torchrun`, FSDP when
Accelerate is configured for it. Each optimizer step takes one *global batch* of `train.batch_size` examples,
chosen by a seeded plan that does not depend on the number of devices (`examples.py`); its examples are spread over
devices and micro-batches, and every loss term is normalised by the counts of the whole global batch, so the
gradient equals that of one big batch whatever the split (and a run can resume on another number of devices).
Every step and checkpoint works on one `TrainSession` (model, optimizer, schedule, Accelerator, step; `optim.py`).
The examples come from `genvec.pipeline`, checkpoints and resumption are in `checkpoints.py`. A few examples, chosen
by the seed, are set aside and never trained on: every `train.eval_every` steps the objective is measured on them
(`heldout.py`) and logged beside the losses, and `training.png` plots both at every checkpoint (`plot.py`).
"""

import contextlib
import dataclasses
import json
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from genvec.config import GenVecConfig, TrainConfig
from genvec.device import check_launch
from genvec.errors import ConfigError, TrainingError
from genvec.files import atomic_write, exclusive_lock, lock_file_for
from genvec.model import GenVecModel
from genvec.pipeline import TrainingExamples, prepare_examples
from genvec.training.checkpoints import (
    CHECKPOINTS,
    elastic_job,
    find_resume_checkpoint,
    full_trainables,
    last_metrics,
    load_checkpoint,
    read_metrics,
    read_trainer_state,
    recorded_run,
    save_checkpoint,
    save_model,
    to_teacher_scale,
    truncate_metrics,
)
from genvec.training.examples import (
    BatchPlan,
    TokenizedExamples,
    check_examples,
    collate,
    micro_batches,
    run_identity,
    target_scale,
    tokenize_examples,
)
from genvec.training.heldout import ExampleSplit, distillation_cosine, heldout_size, split_examples
from genvec.training.optim import TrainSession, batch_split, clip_gradients, make_optimizer
from genvec.training.plot import PLOT_FILE, plot_training

logger = logging.getLogger(__name__)

FINAL = "final"
METRICS = "metrics.jsonl"
RESOLVED_CONFIG = "config.yaml"


@dataclass
class TrainResult:
    """Where a finished run put its outputs, and its last logged losses."""

    run_dir: Path
    model_dir: Path
    steps: int
    metrics: dict[str, float]


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
    if not isinstance(config, GenVecConfig):
        raise ConfigError(f"train() takes a GenVecConfig, got {type(config).__name__} ({config!r:.60}); read a file "
                          "with GenVecConfig.from_file(path).")
    from accelerate import Accelerator
    from accelerate.utils import DistributedDataParallelKwargs

    _check_tracker(config.train.report_to)
    unused = config.loss.alignment_weight == 0  # A gets no gradient then; DDP must be told
    accelerator = Accelerator(
        log_with=None if config.train.report_to == "none" else config.train.report_to,
        project_dir=config.train.run_dir,
        kwargs_handlers=[DistributedDataParallelKwargs(find_unused_parameters=unused)],
    )
    check_launch(accelerator, "train alone and write the same run directory")
    run_dir = Path(config.train.run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise ConfigError(f"train.run_dir {str(run_dir)!r} is a file; choose a directory for the run.")
    # The main process owns the run directory: a second run into it is refused while this one lives.
    owner = exclusive_lock(lock_file_for(run_dir), f"the run directory {run_dir}")
    with owner if accelerator.is_main_process else contextlib.nullcontext():
        return _train(config, examples, accelerator, run_dir)


def _train(config: GenVecConfig, examples: TrainingExamples | None, accelerator, run_dir: Path) -> TrainResult:
    """The stages of a run, one call each, with the run directory held (see `train`)."""
    job = elastic_job()  # a worker restarted by an elastic launch continues from its job's newest checkpoint
    resume_from = find_resume_checkpoint(run_dir, config.train.resume, job)
    micro_batch, accumulation = batch_split(config.train, accelerator.num_processes)
    model = _build_model(config, accelerator)
    if examples is None:
        examples = prepare_examples(config, model.loaded_backbone, accelerator)
    check_examples(examples, config.train.batch_size)
    config, model = _fit_embedding_dim(config, model, examples)
    if accelerator.is_main_process:
        config.to_file(run_dir / RESOLVED_CONFIG)
    tokenized = tokenize_examples(model, examples)
    heldout = _heldout_count(config.train, len(set(examples.queries)), resume_from, accelerator)
    split = split_examples(examples.queries, heldout, config.train.seed)
    scale = target_scale(examples.teacher_embeddings, split.training, config.train.target_scale)
    session = _start_session(config, model, accelerator, run_dir, run_identity(examples, config.train, heldout), scale)
    session.elastic_job = job
    if resume_from is not None:
        load_checkpoint(resume_from, session)
    if accelerator.is_main_process:
        # Lines after the checkpoint are logged again; a new run drops the lines of a run killed before its first
        # checkpoint, so metrics.jsonl never holds two runs.
        truncate_metrics(run_dir / METRICS, session.step)
    _report_start(config.train, accelerator, split, micro_batch, accumulation, session.step)
    if config.train.report_to != "none":
        accelerator.init_trackers("genvec", config=_flat(config.to_dict()))
    lengths = tokenized.lengths[split.training]
    plan = BatchPlan(lengths, config.train.batch_size, config.train.seed, config.train.group_by_length)
    metrics = _loop(session, tokenized, plan, split)
    if not metrics:  # resumed from the last checkpoint: no step ran, the last logged line holds the final losses
        metrics = last_metrics(run_dir / METRICS)
    model_dir = run_dir / FINAL
    trainables = to_teacher_scale(full_trainables(model), session.target_scale)  # every process: FSDP gathers
    if accelerator.is_main_process:
        save_model(model, model_dir, trainables)
    accelerator.wait_for_everyone()
    accelerator.end_training()
    return TrainResult(run_dir, model_dir, config.train.max_steps, metrics)


def _start_session(
    config: GenVecConfig, model: GenVecModel, accelerator, run_dir: Path, identity: dict[str, object], scale: float
) -> TrainSession:
    """The model switched for training, its optimizer and schedule, all prepared by Accelerate, at step 0; `scale`
    multiplies the teacher embeddings in training (`train.target_scale`)."""
    if scale != 1.0:
        logger.info("train.target_scale %s: teacher embeddings are multiplied by %.6g in training, and saved models' "
                    "alignment projection divided by it", config.train.target_scale, scale)
    model.activation_checkpointing = config.train.activation_checkpointing
    if config.train.compile:
        model.compile_layers()  # after response generation, which decodes with a KV cache
    optimizer, scheduler = make_optimizer(model, config.train)
    wrapped, optimizer = accelerator.prepare(model, optimizer)
    return TrainSession(model, wrapped, optimizer, scheduler, accelerator, config.train, run_dir, identity,
                        target_scale=scale)


def _loop(
    session: TrainSession, tokenized: TokenizedExamples, plan: BatchPlan, split: ExampleSplit
) -> dict[str, float]:
    """Run optimizer steps from `session.step` to `max_steps`, logging, measuring and checkpointing; returns the last
    metrics. The plan's batches index `split.training`: held-out examples never reach a step."""
    train_config, accelerator = session.train_config, session.accelerator
    metrics_path = session.run_dir / METRICS
    eval_every = train_config.eval_every or train_config.save_every
    progress = tqdm(total=train_config.max_steps, initial=session.step, desc="train", unit="step",
                    disable=not accelerator.is_main_process)
    metrics: dict[str, float] = {}
    measured: dict[str, float] = {}  # the latest held-out measure, shown in the progress bar until the next
    if len(split.heldout) and session.step == 0:  # where training starts from; a resumed run has this line
        measured = _measure(session, tokenized, split)
        _log_metrics(metrics_path, {"step": 0, **measured}, accelerator)
    started = time.perf_counter()
    while session.step < train_config.max_steps:
        step_started = time.perf_counter()
        metrics = train_step(session, tokenized, split.training[plan.batch(session.step)])
        session.step += 1
        step = session.step
        if not math.isfinite(metrics["loss"]):
            _stop_on_non_finite(session, metrics)
        step_seconds = time.perf_counter() - step_started
        metrics.update(step=step, step_s=step_seconds, tokens_per_s=metrics.pop("tokens") / step_seconds)
        evaluates = len(split.heldout) > 0 and (step % eval_every == 0 or step == train_config.max_steps)
        if evaluates:  # after the step's timing: step_s and tokens_per_s stay the step's own
            measured = _measure(session, tokenized, split)
            metrics.update(measured)
        metrics["elapsed_s"] = time.perf_counter() - started
        progress.update(1)
        progress.set_postfix(_postfix({**measured, **metrics}), refresh=False)
        if evaluates or step % train_config.log_every == 0 or step == train_config.max_steps:
            _log_metrics(metrics_path, metrics, accelerator)
        if step % train_config.save_every == 0 or step == train_config.max_steps:
            save_checkpoint(session)
            if accelerator.is_main_process:
                _write_plot(session.run_dir)
    progress.close()
    return metrics


def train_step(session: TrainSession, tokenized: TokenizedExamples, indices: np.ndarray) -> dict[str, float]:
    """One optimizer step over a global batch (`indices`): this process's micro-batches, clipping, AdamW, schedule.

    Each micro-batch's loss is normalised by the response tokens and examples of the whole global batch and scaled
    by the number of processes (DDP averages gradients over processes), so the gradients add up to those of the
    global batch. Returns the global batch's losses (summed over processes), learning rate and gradient norm.
    The caller advances `session.step`.
    """
    model, accelerator, train_config = session.model, session.accelerator, session.train_config
    reconstruct = session.step % model.config.loss.reconstruction_every == 0  # else an alignment-only step
    num_tokens = sum(len(tokenized.response_ids[i]) for i in indices)
    micros = micro_batches(indices, tokenized, accelerator.process_index, accelerator.num_processes, train_config)
    sums = torch.zeros(3, device=model.device)  # total, reconstruction, alignment of this process's share
    local_tokens = padded_queries = padded_responses = 0
    for position, micro in enumerate(micros):
        queries, responses, targets, tokens = collate(micro, tokenized, model, session.target_scale)
        padded_queries += queries.input_ids.numel()
        if reconstruct:  # an alignment-only step reads no response
            local_tokens += tokens
            padded_responses += responses.input_ids.numel()
        is_last = position == len(micros) - 1
        with _maybe_no_sync(accelerator, session.wrapped, is_last):
            output = session.wrapped(queries, responses, targets, num_response_tokens=num_tokens,
                                     num_examples=len(indices), reconstruct=reconstruct)
            accelerator.backward(output.total * accelerator.num_processes)
        sums += torch.stack([t.detach() for t in output])
    grad_norm = clip_gradients(accelerator, model, train_config.max_grad_norm)
    learning_rate = session.scheduler.get_last_lr()[0]
    totals = accelerator.reduce(
        torch.cat([sums, sums.new_tensor([local_tokens, padded_queries, padded_responses])]), reduction="sum")
    total, reconstruction, alignment, tokens, padded_queries, padded_responses = totals.tolist()
    if math.isfinite(total):  # a non-finite loss must not reach the weights; the caller stops the run
        session.optimizer.step()
        session.scheduler.step()
    session.optimizer.zero_grad(set_to_none=True)
    return {"loss": total, "reconstruction": reconstruction, "alignment": alignment, "learning_rate": learning_rate,
            "grad_norm": grad_norm, "tokens": tokens,
            # what the step computed over, pads included: with `tokens`, how much length grouping saves
            "padded_query_tokens": int(padded_queries), "padded_response_tokens": int(padded_responses)}


def _measure(session: TrainSession, tokenized: TokenizedExamples, split: ExampleSplit) -> dict[str, float]:
    """The held-out distillation cosine and the same on as many training examples; every process computes it (FSDP
    gathers collectively), in micro-batches of the training split's size."""
    micro, _ = batch_split(session.train_config, session.accelerator.num_processes)
    heldout = distillation_cosine(session.model, tokenized, split.heldout, micro)
    seen = distillation_cosine(session.model, tokenized, split.train_probe, micro)
    if session.accelerator.is_main_process:
        logger.info("step %d: distillation cosine %.4f on %d held-out examples, %.4f on as many training examples",
                    session.step, heldout, len(split.heldout), seen)
    return {"heldout_cosine": heldout, "train_cosine": seen}


def _heldout_count(train_config: TrainConfig, count: int, resume_from: Path | None, accelerator) -> int:
    """How many of `count` distinct queries this run sets aside: `train.heldout` within the share `heldout_size`
    allows; none when
    resuming a run whose checkpoint set none aside (it trained on all of them: written before runs set examples
    aside, or with none to spare), and none under FSDP1. A resumed run that set some aside must set as many."""
    size = heldout_size(count, train_config.heldout, train_config.batch_size)
    if size and resume_from is not None and not recorded_run(read_trainer_state(resume_from))["heldout"]:
        logger.warning("the run of %s set no examples aside (written before held-out evaluation, or with "
                       "train.heldout 0): it goes on training on all %d queries and measures no held-out cosine; "
                       "start a new run_dir to measure one", resume_from, count)
        return 0
    from accelerate.utils import DistributedType

    if size and accelerator.distributed_type == DistributedType.FSDP and not accelerator.is_fsdp2:
        logger.warning("held-out evaluation needs FSDP2 (accelerate launch --fsdp_version 2) or DDP; under FSDP1 no "
                       "examples are set aside and no held-out cosine is measured")
        return 0
    return size


def _write_plot(run_dir: Path) -> None:
    """`training.png` from every line of metrics.jsonl, written atomically; nothing without matplotlib (an extra)."""
    import importlib.util

    if importlib.util.find_spec("matplotlib") is None:
        logger.debug("matplotlib is not installed: no %s", PLOT_FILE)
        return
    with atomic_write(run_dir / PLOT_FILE, "wb") as file:
        file.write(plot_training(read_metrics(run_dir / METRICS), run_dir.name))


def _check_tracker(report_to: str) -> None:
    """Accelerate ignores a tracker that is not installed; a run asked to report somewhere must say so instead."""
    import importlib.util

    packages = {"tensorboard": ("tensorboard", "tensorboardX"), "wandb": ("wandb",)}.get(report_to, ())
    if packages and not any(importlib.util.find_spec(name) for name in packages):
        raise ConfigError(
            f"train.report_to: {report_to!r} needs the {packages[0]} package, which is not installed; "
            f"run `pip install {packages[0]}` or set train.report_to to 'none'."
        )


def _build_model(config: GenVecConfig, accelerator) -> GenVecModel:
    """The model on this process's device (Accelerate picks it), its backbone frozen."""
    model_config = dataclasses.replace(config.model, device=str(accelerator.device))
    return GenVecModel.from_config(dataclasses.replace(config, model=model_config))


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


def _maybe_no_sync(accelerator, wrapped: torch.nn.Module, is_last: bool):
    """Skip the DDP gradient all-reduce on every micro-batch but the last of a step."""
    return contextlib.nullcontext() if is_last else accelerator.no_sync(wrapped)


def _stop_on_non_finite(session: TrainSession, metrics: dict[str, float]) -> None:
    last_saved = session.last_saved
    kept = f"the last good checkpoint is step {last_saved} in {session.run_dir / CHECKPOINTS}" if last_saved else (
        "no checkpoint was saved yet")
    raise TrainingError(
        f"non-finite loss at step {session.step} (loss {metrics['loss']}, reconstruction "
        f"{metrics['reconstruction']}, alignment {metrics['alignment']}); training stopped and the weights were not "
        f"updated; {kept}. Lower train.learning_rate, or check the data and the teacher embeddings for NaN."
    )


def _log_metrics(path: Path, metrics: dict[str, float], accelerator) -> None:
    if accelerator.is_main_process:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "a", encoding="utf-8") as file:
            file.write(json.dumps({k: round(v, 8) if isinstance(v, float) else v for k, v in metrics.items()}) + "\n")
    if accelerator.trackers:
        accelerator.log({k: v for k, v in metrics.items() if k != "step"}, step=int(metrics["step"]))


def _report_start(train_config: TrainConfig, accelerator, split: ExampleSplit, micro: int, accumulation: int,
                  step: int):
    if accelerator.is_main_process:
        logger.info(
            "training on %d examples (%d held out): effective batch %d = %d per device x %d device(s) x %d "
            "accumulation step(s); %s steps from step %d; run directory %s",
            len(split.training), len(split.heldout), train_config.batch_size, micro, accelerator.num_processes,
            accumulation, train_config.max_steps, step, train_config.run_dir,
        )


def _postfix(metrics: dict[str, float]) -> dict[str, str]:
    postfix = {
        "loss": f"{metrics['loss']:.4f}",
        "rec": f"{metrics['reconstruction']:.4f}",
        "align": f"{metrics['alignment']:.5f}",
        "lr": f"{metrics['learning_rate']:.2e}",
        "tok/s": f"{metrics['tokens_per_s']:.0f}",
    }
    if "heldout_cosine" in metrics:  # the latest measure, until the next
        postfix.update({"cos held-out": f"{metrics['heldout_cosine']:.3f}",
                        "cos train": f"{metrics['train_cosine']:.3f}"})
    return postfix


def _flat(tree: dict, prefix: str = "") -> dict[str, object]:
    flat: dict[str, object] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            flat.update(_flat(value, f"{prefix}{key}."))
        else:
            flat[f"{prefix}{key}"] = value if isinstance(value, (int, float, str, bool)) else str(value)
    return flat

