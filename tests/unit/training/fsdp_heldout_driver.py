"""Measure the distillation cosine with the model sharded by FSDP2 (`fully_shard`, per decoder layer and then whole)
over CPU processes under torchrun: before any forward (a run's step-0 measure) and after one optimizer step. Writes
both values; the test compares them with one unsharded process.

    python fsdp_heldout_driver.py BACKBONE_DIR OUT.json
"""

import json
import os
import sys

import numpy as np
import torch
from accelerate import Accelerator
from torch.distributed.fsdp import fully_shard
from transformers.utils import logging as transformers_logging

from genvec import GenVecModel
from genvec.training.examples import TokenizedExamples
from genvec.training.heldout import distillation_cosine

QUERIES = ["where do polar bears live?", "what is a river?", "name a city", "how cold is the arctic?", "why ice?"]
RESPONSES = ["on the arctic sea ice.", "water that flows.", "paris.", "very cold in winter.", "it is cold."]


def main() -> None:
    backbone, out = sys.argv[1], sys.argv[2]
    transformers_logging.disable_progress_bar()
    accelerator = Accelerator()
    model = GenVecModel.from_backbone(backbone, num_special_tokens=4, num_compression_tokens=2, embedding_dim=16,
                                      dtype="fp32", device="cpu")
    teacher = np.random.default_rng(1).standard_normal((len(QUERIES), 16)).astype(np.float32)
    ids = [model.tokenizer(text)["input_ids"] for text in QUERIES]
    tokenized = TokenizedExamples(ids, [model.tokenizer(text)["input_ids"] for text in RESPONSES], teacher)
    if accelerator.num_processes > 1:
        for layer in model.backbone.base_model.layers:
            fully_shard(layer)
        fully_shard(model)
    indices = np.arange(len(QUERIES))
    before = distillation_cosine(model, tokenized, indices, batch_size=2)
    optimizer = torch.optim.SGD(model.trainable_parameters(), lr=0.5)
    model.loss(QUERIES, RESPONSES, torch.from_numpy(teacher)).total.backward()
    optimizer.step()
    after = distillation_cosine(model, tokenized, indices, batch_size=2)
    if accelerator.is_main_process:
        with open(out, "w", encoding="utf-8") as file:
            json.dump({"before": before, "after": after, "sharded": accelerator.num_processes > 1}, file)
    accelerator.wait_for_everyone()
    # As in tests/integration/fsdp_driver.py: leave without the FSDP2 CPU process group's teardown, which sometimes
    # aborts after everything was written.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


if __name__ == "__main__":
    main()
