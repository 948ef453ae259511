"""The optimizer side of a step: the session a run's steps share, AdamW with its schedule, gradient clipping, and
how a batch is split."""

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from genvec.config import TrainConfig
from genvec.errors import ConfigError
from genvec.model import GenVecModel

if TYPE_CHECKING:
    from accelerate import Accelerator


@dataclass
class TrainSession:
    """What every step and checkpoint of one run works with, built once by `train`; `step` and `last_saved` move."""

    model: GenVecModel  # its trainables are what a checkpoint holds
    wrapped: torch.nn.Module  # the same model as Accelerate prepared it (DDP, FSDP); steps run through it
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler
    accelerator: "Accelerator"
    train_config: TrainConfig
    run_dir: Path
    identity: dict[str, object]  # the run's data and batch plan (`examples.run_identity`), kept in every checkpoint
    step: int = 0  # optimizer steps done
    last_saved: int | None = None  # the step of the newest checkpoint of this run
    target_scale: float = 1.0  # teacher embeddings are multiplied by it in training; saved A is divided by it
    elastic_job: str | None = None  # the elastic launch's job id (`checkpoints.elastic_job`), kept in every checkpoint


def make_optimizer(model: GenVecModel, train_config: TrainConfig):
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


def batch_split(train_config: TrainConfig, num_processes: int) -> tuple[int, int]:
    """(micro-batch size, accumulation steps) so that micro x processes x accumulation = batch_size."""
    per_process, remainder = divmod(train_config.batch_size, num_processes)
    micro = train_config.micro_batch_size or per_process
    if remainder or micro == 0 or per_process % micro:
        raise ConfigError(
            f"train.batch_size {train_config.batch_size} cannot be split over {num_processes} process(es) in "
            f"micro-batches of {micro}: batch_size must equal micro_batch_size x processes x accumulation steps."
        )
    return micro, per_process // micro


def clip_gradients(accelerator, model: GenVecModel, max_norm: float) -> float:
    parameters = model.trainable_parameters()
    if max_norm > 0:
        return float(accelerator.clip_grad_norm_(parameters, max_norm))
    grads = [p.grad.detach().norm() for p in parameters if p.grad is not None]
    return float(torch.stack(grads).norm()) if grads else 0.0

