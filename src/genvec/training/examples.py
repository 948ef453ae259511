"""What training reads, and in which order: examples, their tokens, the seeded batch plan, micro-batches.

The (query, response, teacher embedding) triples come from the caller or from `genvec.pipeline.prepare_examples`;
`check_examples` refuses bad ones. `BatchPlan` fixes, from the seed alone, which examples make the global batch
of every step, whatever the number of devices; `micro_batches` cuts this process's share of it, and `collate`
pads one micro-batch. `run_identity` is what a checkpoint records so that a resumed run reads the same data.
"""

import functools
import hashlib
import math
from dataclasses import dataclass

import numpy as np
import torch
from tqdm.auto import tqdm

from genvec.config import TrainConfig
from genvec.data.collate import pad_left, pad_right, tokenize_queries, tokenize_responses
from genvec.errors import TrainingError
from genvec.model import GenVecModel
from genvec.pipeline import TrainingExamples
from genvec.training.optim import batch_split

# Examples per length-sorted group when batches are grouped by length (as in transformers' length grouping).
LENGTH_GROUP_BATCHES = 50


@dataclass
class TokenizedExamples:
    """Token ids of every example (no padding), with the teacher embeddings, kept in host memory."""

    query_ids: list[list[int]]
    response_ids: list[list[int]]
    teacher_embeddings: np.ndarray  # (N, D)

    @functools.cached_property
    def lengths(self) -> np.ndarray:
        """(N,) query plus response tokens of each example; every step's micro-batching reads it."""
        return np.array([len(q) + len(r) for q, r in zip(self.query_ids, self.response_ids)])


def check_examples(examples: TrainingExamples, batch_size: int) -> None:
    """Refuse training data that is not strings and a (N, D) array of finite numbers, or smaller than one batch."""
    if not isinstance(examples, TrainingExamples):
        raise TrainingError(f"examples must be TrainingExamples(queries, responses, teacher_embeddings), got "
                            f"{type(examples).__name__}.")
    for name in ("queries", "responses"):
        items = getattr(examples, name)
        bad = next((i for i, item in enumerate(items) if not isinstance(item, str)), None)
        if not isinstance(items, list) or bad is not None:
            raise TrainingError(f"examples.{name} must be a list of strings; item {bad} is "
                                f"{type(items[bad]).__name__ if bad is not None else type(items).__name__}.")
    embeddings = examples.teacher_embeddings
    if not isinstance(embeddings, np.ndarray) or embeddings.ndim != 2 or not np.issubdtype(embeddings.dtype, np.number):
        raise TrainingError(
            "examples.teacher_embeddings must be a 2-D numpy array of numbers (one row per example), got "
            f"{type(embeddings).__name__} of shape {getattr(embeddings, 'shape', '?')}."
        )
    non_finite = int((~np.isfinite(embeddings).all(1)).sum())
    if non_finite:
        raise TrainingError(
            f"{non_finite} teacher embeddings hold NaN or infinite values (a damaged target store, or a teacher that "
            "overflowed in fp16); recompute them (compute-targets into a new store) before training."
        )
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


def run_identity(examples: TrainingExamples, train_config: TrainConfig, heldout: int = 0) -> dict[str, object]:
    """What must not change between a checkpoint and its resumption: the data, the batch plan, and how many examples
    are set aside (`heldout`)."""
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
        "heldout": heldout,
        "target_scale": train_config.target_scale,
    }


def target_scale(teacher_embeddings: np.ndarray, indices: np.ndarray, mode: str) -> float:
    """The constant the teacher embeddings of a run are multiplied by in training (`train.target_scale`): 1 for
    "none"; for "unit_rms", 1 / the root-mean-square coordinate of the embeddings of `indices` (the training examples;
    read in chunks, so a memory-mapped store is never loaded whole)."""
    if mode == "none":
        return 1.0
    squares, chunk = 0.0, 65536
    for start in range(0, len(indices), chunk):
        rows = np.asarray(teacher_embeddings[np.sort(indices[start : start + chunk])], dtype=np.float64)
        squares += float(np.square(rows).sum())
    rms = math.sqrt(squares / (len(indices) * teacher_embeddings.shape[1]))
    if not rms > 0:
        raise TrainingError("train.target_scale unit_rms: every teacher embedding of the training examples is zero; "
                            "check the target store, or set train.target_scale to none.")
    return 1.0 / rms


def tokenize_examples(model: GenVecModel, examples: TrainingExamples) -> TokenizedExamples:
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
    return TokenizedExamples(query_ids, response_ids, examples.teacher_embeddings)


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


def micro_batches(
    indices: np.ndarray, tokenized: TokenizedExamples, rank: int, world: int, train_config: TrainConfig
) -> list[np.ndarray]:
    """This process's share of a global batch, cut into micro-batches of similar length."""
    by_length = indices[np.argsort(-tokenized.lengths[indices], kind="stable")]
    share = by_length[rank::world]  # interleaved, so every process gets long and short examples alike
    micro, _ = batch_split(train_config, world)
    return [share[start : start + micro] for start in range(0, len(share), micro)]


def collate(micro: np.ndarray, tokenized: TokenizedExamples, model: GenVecModel, scale: float = 1.0):
    """Padded tensors of a micro-batch on the model's device (the teacher embeddings times `scale`), and its token
    count."""
    query_ids = [tokenized.query_ids[i] for i in micro]
    response_ids = [tokenized.response_ids[i] for i in micro]
    queries = pad_left(query_ids, model.pad_token_id).to(model.device)
    responses = pad_right(response_ids, model.pad_token_id).to(model.device)
    targets = torch.from_numpy(np.asarray(tokenized.teacher_embeddings[micro], dtype=np.float32) * np.float32(scale))
    targets = targets.to(model.device)
    tokens = sum(map(len, query_ids)) + sum(map(len, response_ids))
    return queries, responses, targets, tokens
