"""Training runs on tiny backbones: the config, the examples and the metrics reader the tests here share."""

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from genvec.config import GenVecConfig
from genvec.training import TrainingExamples
from genvec.training import loop as training_loop

OVERRIDES = {
    "model.embedding_dim": 16,
    "model.dtype": "fp32",
    "model.device": "cpu",
    "tokens.num_special_tokens": 4,
    "tokens.num_compression_tokens": 2,
    "train.batch_size": 4,
    "train.warmup_steps": 2,
    "train.learning_rate": 1e-2,
    "train.log_every": 1,
    "train.heldout": 3,
}


def make_examples(count: int, dim: int = 16, unit_norm: bool = False, scale: float = 1.0) -> TrainingExamples:
    """`count` seeded short queries and responses with random teacher embeddings (unit-norm ones, as
    all-MiniLM-L6-v2's, with `unit_norm`), times `scale`."""
    rng = np.random.default_rng(0)
    words = ["polar", "bear", "ice", "river", "city", "arctic", "train", "model", "vector"]
    queries = [f"question {i}: " + " ".join(rng.choice(words, rng.integers(2, 6))) + "?" for i in range(count)]
    responses = [" ".join(rng.choice(words, rng.integers(3, 9))) + "." for _ in range(count)]
    teacher = rng.standard_normal((count, dim)).astype(np.float32)
    if unit_norm:
        teacher /= np.linalg.norm(teacher, axis=1, keepdims=True)
    return TrainingExamples(queries, responses, teacher * np.float32(scale))


def make_config(backbone, run_dir, base: dict = OVERRIDES, **overrides) -> GenVecConfig:
    return GenVecConfig().with_overrides({**base, "model.backbone": str(backbone), "train.run_dir": str(run_dir),
                                          **overrides})


def read_metrics(run_dir) -> list[dict]:
    return [json.loads(line) for line in (Path(run_dir) / "metrics.jsonl").read_text().splitlines()]


def killed_at_step(monkeypatch, step: int, run: Callable[[], object]) -> None:
    """`run()` (a training run) killed as its step `step` begins (a KeyboardInterrupt, as Ctrl-C gives), after which
    training steps run normally again."""
    train_step = training_loop.train_step

    def dies(session, *args):
        if session.step == step - 1:
            raise KeyboardInterrupt("killed")
        return train_step(session, *args)

    monkeypatch.setattr(training_loop, "train_step", dies)
    with pytest.raises(KeyboardInterrupt):
        run()
    monkeypatch.setattr(training_loop, "train_step", train_step)
