"""Held-out distillation: the examples a run sets aside and never trains on, and the training objective measured on
them (issue 26).

The measure is the mean cosine between genvec's embedding of a query, built from the input a training step builds
(the query's tokens alone: training reads no instruction), and the teacher embedding of the backbone's response to
it. On held-out examples it says how much of the teacher's view of the response the model reaches for queries it
never saw; on an equally sized slice of training examples (`train_probe`) it shows the gap to what it was fitted on.

`split_examples` chooses the slices from `train.seed` and the number of examples alone, so a resumed run sets aside
the same ones. What it does not do: train, log, or decide when to measure (`loop.py`).
"""

import contextlib
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from genvec.data.collate import pad_left
from genvec.model import GenVecModel
from genvec.training.examples import TokenizedExamples

# The split's random stream: apart from the batch plan's `[seed, epoch]` streams (no epoch reaches this number).
HELDOUT_STREAM = 0x68656C64
# At most one example in this many is set aside: a small data set cannot spare more, and a cosine over a handful of
# examples would say little.
HELDOUT_SHARE = 50


@dataclass(frozen=True)
class ExampleSplit:
    """Indices into a run's examples: those the batch plan draws from, those it never draws, and a fixed slice of the
    former measured like the latter. All ascending."""

    training: np.ndarray  # (N - h,)
    heldout: np.ndarray  # (h,)
    train_probe: np.ndarray  # (h,), a subset of `training`


def heldout_size(count: int, requested: int, batch_size: int) -> int:
    """How many of `count` queries are set aside for `requested` (`train.heldout`): at most one in HELDOUT_SHARE,
    and never so many that fewer than one batch would remain."""
    return max(0, min(requested, count // HELDOUT_SHARE, count - batch_size))


def split_examples(queries: list[str], size: int, seed: int) -> ExampleSplit:
    """Set aside the examples of `size` queries, chosen by `seed` alone; `size` 0 keeps every example for training.

    Every copy of a held-out query is set aside with it (a caller may repeat examples to weight them), so none of
    them reaches a step; the training probe is as many training examples as there are held-out ones.
    """
    order = np.random.default_rng([seed, HELDOUT_STREAM]).permutation(len(queries))
    chosen: set[str] = set()
    for index in order:
        if len(chosen) == size:
            break
        chosen.add(queries[index])
    is_heldout = np.array([query in chosen for query in queries], dtype=bool)
    heldout = np.flatnonzero(is_heldout)
    probe = order[~is_heldout[order]][: len(heldout)]
    return ExampleSplit(training=np.flatnonzero(~is_heldout), heldout=heldout, train_probe=np.sort(probe))


@torch.no_grad()
def distillation_cosine(
    model: GenVecModel, tokenized: TokenizedExamples, indices: np.ndarray, batch_size: int
) -> float:
    """Mean cosine between the embeddings of the queries of `indices` and their teacher embeddings.

    Every process of a multi-process run calls it with the same arguments (FSDP gathers tensors collectively) and
    gets the same value. Queries go in batches of `batch_size`, without autograd.
    """
    assert len(indices) > 0, "no examples to measure"
    total = 0.0
    with _gathered(model):
        for start in range(0, len(indices), batch_size):
            chunk = indices[start : start + batch_size]
            queries = pad_left([tokenized.query_ids[i] for i in chunk], model.pad_token_id).to(model.device)
            embeddings = model.embed(model.compression_states(model.special_states(queries)))  # (B, D)
            teacher = torch.from_numpy(np.asarray(tokenized.teacher_embeddings[chunk], dtype=np.float32))  # (B, D)
            cosines = F.cosine_similarity(embeddings.float(), teacher.to(embeddings.device), dim=1)  # (B,)
            total += float(cosines.double().sum())
    return total / len(indices)


@contextlib.contextmanager
def _gathered(model: GenVecModel):
    """The model's own tensors (special vectors, projections), whole in every process while the block runs.

    FSDP keeps only a shard of them outside the model's forward, and the measure calls the model's methods, not its
    forward: FSDP2 (`fully_shard`) gathers them with `unshard`; the backbone's layers gather their own weights when
    called, as in training. Without FSDP there is nothing to do.
    """
    from torch.distributed.fsdp import FSDPModule

    if not isinstance(model, FSDPModule):
        yield
        return
    # FSDP2 names the root at the first forward it sees; the step-0 measure comes before any, and a layer called
    # first would take the root's place. Torch's own pre-forward makes this call (a no-op once done).
    model._get_fsdp_state()._lazy_init()
    model.unshard()
    try:
        yield
    finally:
        model.reshard()
