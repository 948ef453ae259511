"""The optimizer side of a step: AdamW with its schedule, gradient clipping, and how a batch is split."""

import torch

from genvec.config import TrainConfig
from genvec.errors import ConfigError
from genvec.model import GenVecModel


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

