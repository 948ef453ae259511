"""Train a few steps with the model sharded by FSDP2 (`fully_shard`) over CPU processes, save a checkpoint the way
the trainer does, load it into a freshly sharded model, and write what each step produced (used under torchrun).

    python fsdp_driver.py BACKBONE_DIR RUN_DIR

Accelerate sets up DDP, not FSDP, for CPU processes, so the sharding here is applied with torch's own
`fully_shard`, per decoder layer and then the whole model, as Accelerate's FSDP2 preparation does on GPUs.
"""

import json
import os
import sys
from pathlib import Path

import torch
from accelerate import Accelerator
from torch.distributed.fsdp import fully_shard
from transformers.utils import logging as transformers_logging

from genvec import GenVecModel
from genvec.config import TrainConfig
from genvec.training.checkpoints import full_optimizer_state, full_trainables, load_checkpoint, save_checkpoint
from genvec.training.optim import TrainSession, make_optimizer

QUERIES = ["where do polar bears live?", "what is a river?", "name a city", "how cold is the arctic?"]
RESPONSES = ["on the arctic sea ice.", "water that flows.", "paris.", "very cold in winter."]
STEPS = 3
TRAIN_CONFIG = TrainConfig(learning_rate=1e-2, warmup_steps=1, max_steps=STEPS, keep_last=1)


def build(backbone: str, shard: bool):
    torch.manual_seed(0)
    model = GenVecModel.from_backbone(backbone, num_special_tokens=4, num_compression_tokens=2, embedding_dim=16,
                                      dtype="fp32", device="cpu")
    if shard:
        for layer in model.backbone.base_model.layers:
            fully_shard(layer)
        fully_shard(model)
    optimizer, scheduler = make_optimizer(model, TRAIN_CONFIG)
    return model, optimizer, scheduler


def session(model, optimizer, scheduler, accelerator, run_dir: Path, step: int = 0) -> TrainSession:
    return TrainSession(model, model, optimizer, scheduler, accelerator, TRAIN_CONFIG, run_dir, {}, step)


def main() -> None:
    backbone, run_dir = sys.argv[1], Path(sys.argv[2])
    transformers_logging.disable_progress_bar()
    accelerator = Accelerator()
    shard = accelerator.num_processes > 1
    model, optimizer, scheduler = build(backbone, shard)
    targets = torch.randn(len(QUERIES), 16, generator=torch.Generator().manual_seed(1))
    losses = []
    for _ in range(STEPS):  # every process sees the same batch: the averaged gradient is that batch's gradient
        optimizer.zero_grad(set_to_none=True)
        output = model.loss(QUERIES, RESPONSES, targets)
        output.total.backward()
        optimizer.step()
        scheduler.step()
        losses.append(float(output.total.detach()))
    saved = save_checkpoint(session(model, optimizer, scheduler, accelerator, run_dir, step=STEPS))
    before = full_trainables(model), full_optimizer_state(model, optimizer)
    model, optimizer, scheduler = build(backbone, shard)
    restored = session(model, optimizer, scheduler, accelerator, run_dir)
    load_checkpoint(saved, restored)
    step = restored.step
    after = full_trainables(model), full_optimizer_state(model, optimizer)
    if accelerator.is_main_process:
        same_trainables = all(torch.equal(before[0][name], after[0][name]) for name in before[0])
        same_moments = all(
            torch.equal(before[1]["state"][name][key], after[1]["state"][name][key])
            for name in before[1]["state"]
            for key in ("exp_avg", "exp_avg_sq")
        )
        report = {"losses": losses, "step": step, "sharded": shard, "trainables": sorted(before[0]),
                  "same_trainables_after_load": same_trainables, "same_moments_after_load": same_moments}
        (run_dir / "report.json").write_text(json.dumps(report))
    accelerator.end_training()  # waits for every process and closes the process group
    # Seen here: about one run in eight aborted ("terminate called without an active exception") while the
    # interpreter tore down the FSDP2 CPU process group, after all of the above had finished and been written. The
    # test checks what the processes wrote, so each leaves without that teardown.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
