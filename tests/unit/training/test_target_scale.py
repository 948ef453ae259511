"""`train.target_scale`: training on teacher embeddings times one constant is training on targets scaled by hand,
saved models keep the teacher's scale, and a resumed run puts A back in the training scale."""


import numpy as np
import pytest
import torch

import genvec
from genvec.config import GenVecConfig
from genvec.errors import TrainingError
from genvec.training import TrainingExamples, train
from genvec.training.examples import target_scale
from genvec.training.heldout import split_examples
from tests.unit import training as tiny
from tests.unit.training import killed_at_step, read_metrics

COUNT = 150
OVERRIDES = {**tiny.OVERRIDES, "train.max_steps": 6, "train.save_every": 3, "train.keep_last": 5}


def make_examples(scale: float = 1.0) -> TrainingExamples:
    return tiny.make_examples(COUNT, unit_norm=True, scale=scale)


def make_config(backbone, run_dir, **overrides) -> GenVecConfig:
    return tiny.make_config(backbone, run_dir, OVERRIDES, **overrides)


def trainables(path) -> dict[str, torch.Tensor]:
    return genvec.load_model(path, device="cpu").trainable_state_dict()


def test_unit_rms_scales_a_unit_norm_teacher_by_the_root_of_its_dimension():
    teacher = make_examples().teacher_embeddings
    every = np.arange(COUNT)
    assert target_scale(teacher, every, "unit_rms") == pytest.approx(4.0)  # sqrt(16)
    assert target_scale(teacher * 3, every, "unit_rms") == pytest.approx(4.0 / 3)
    assert target_scale(teacher, every, "none") == 1.0
    with pytest.raises(TrainingError, match="every teacher embedding of the training examples is zero"):
        target_scale(np.zeros((4, 16), np.float32), np.arange(4), "unit_rms")


def test_unit_rms_trains_as_targets_scaled_by_hand_and_saves_in_the_teachers_scale(backbone_dirs, tmp_path):
    examples = make_examples()
    training = split_examples(examples.queries, 3, seed=42).training
    scale = 1 / np.sqrt(np.square(examples.teacher_embeddings[training].astype(np.float64)).mean())
    by_hand = TrainingExamples(examples.queries, examples.responses, examples.teacher_embeddings * np.float32(scale))
    train(make_config(backbone_dirs["qwen3"], tmp_path / "hand"), by_hand)
    train(make_config(backbone_dirs["qwen3"], tmp_path / "option", **{"train.target_scale": "unit_rms"}), examples)
    for hand, option in zip(read_metrics(tmp_path / "hand"), read_metrics(tmp_path / "option"), strict=True):
        for key in ("loss", "reconstruction", "alignment", "heldout_cosine", "train_cosine"):
            if key in hand:
                assert option[key] == pytest.approx(hand[key], rel=1e-5, abs=1e-6), (hand["step"], key)
    for directory in ("checkpoints/step-00000003", "final"):
        hand, option = trainables(tmp_path / "hand" / directory), trainables(tmp_path / "option" / directory)
        for name in hand:
            expected = hand[name] / scale if name.startswith("alignment.") else hand[name]
            assert torch.allclose(option[name], expected.float(), rtol=1e-5, atol=1e-6), (directory, name)
    # so the saved model's embeddings are near the unit-norm teacher's scale, not sqrt(D) times it
    vectors = genvec.load_model(tmp_path / "option" / "final", device="cpu").encode(examples.queries[:8])
    hand_vectors = genvec.load_model(tmp_path / "hand" / "final", device="cpu").encode(examples.queries[:8])
    assert np.allclose(vectors * scale, hand_vectors, rtol=1e-4, atol=1e-5)


def test_a_resumed_unit_rms_run_ends_where_an_uninterrupted_one_does(backbone_dirs, tmp_path, monkeypatch):
    examples, option = make_examples(), {"train.target_scale": "unit_rms"}
    train(make_config(backbone_dirs["qwen3"], tmp_path / "straight", **option), examples)
    killed_at_step(monkeypatch, 5, lambda: train(make_config(backbone_dirs["qwen3"], tmp_path / "killed", **option),
                                                 examples))
    with pytest.raises(TrainingError, match="belongs to another run .*target_scale: recorded 'unit_rms', now 'none'"):
        train(make_config(backbone_dirs["qwen3"], tmp_path / "killed", **{"train.resume": "latest"}), examples)
    train(make_config(backbone_dirs["qwen3"], tmp_path / "killed", **option, **{"train.resume": "latest"}), examples)
    straight, resumed = trainables(tmp_path / "straight" / "final"), trainables(tmp_path / "killed" / "final")
    assert all(torch.allclose(straight[name], resumed[name], atol=1e-6) for name in straight)
    assert [line["step"] for line in read_metrics(tmp_path / "killed")] == list(range(7))
