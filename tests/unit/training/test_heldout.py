"""Held-out distillation during training: the slice set aside is never trained on, the logged cosine is the one a
user computes with the saved model, resumed runs log each measure once, and old checkpoints still resume."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from transformers import AutoTokenizer

import genvec
from genvec.config import GenVecConfig
from genvec.data.collate import tokenize_queries
from genvec.errors import ConfigError, TrainingError
from genvec.training import TrainingExamples, train
from genvec.training import loop as training_loop
from genvec.training.heldout import HELDOUT_SHARE, heldout_size, split_examples
from tests.unit import training as tiny
from tests.unit.training import make_config, read_metrics

COUNT = 3 * HELDOUT_SHARE  # three examples may be set aside
def make_examples(count: int = COUNT, dim: int = 16) -> TrainingExamples:
    return tiny.make_examples(count, dim)


def measured(lines: list[dict]) -> list[tuple[int, float, float]]:
    return [(line["step"], line["heldout_cosine"], line["train_cosine"]) for line in lines if "heldout_cosine" in line]


def test_the_split_is_seeded_disjoint_and_bounded():
    queries = [f"query {i}" for i in range(200)]
    split = split_examples(queries, 4, seed=7)
    assert len(split.heldout) == len(split.train_probe) == 4 and len(split.training) == 196
    assert not set(split.heldout) & set(split.training)
    assert set(split.heldout) | set(split.training) == set(range(200))
    assert set(split.train_probe) <= set(split.training)
    again, other = split_examples(queries, 4, seed=7), split_examples(queries, 4, seed=8)
    assert np.array_equal(again.heldout, split.heldout) and not np.array_equal(other.heldout, split.heldout)
    assert np.array_equal(split_examples(queries, 0, seed=7).training, np.arange(200))  # nothing aside
    # Copies of a query (examples repeated to weight them) fall on one side: all held out, or all trained on.
    weighted = queries + queries[:100]
    split = split_examples(weighted, 20, seed=7)
    heldout = {weighted[i] for i in split.heldout}
    assert len(heldout) == 20 and not heldout & {weighted[i] for i in split.training}
    assert len(split.heldout) == 20 + sum(int(query.split()[1]) < 100 for query in heldout)
    assert heldout_size(200, 64, batch_size=4) == 200 // HELDOUT_SHARE
    assert heldout_size(200, 1, batch_size=4) == 1
    assert heldout_size(HELDOUT_SHARE - 1, 64, batch_size=4) == 0
    assert heldout_size(HELDOUT_SHARE * 10, 64, batch_size=HELDOUT_SHARE * 10 - 2) == 2  # one batch must remain


def test_a_resume_that_would_set_aside_other_examples_is_refused(backbone_dirs, tmp_path):
    config = make_config(backbone_dirs["qwen3"], tmp_path / "run", **{"train.max_steps": 2})
    train(config, make_examples())
    with pytest.raises(TrainingError, match="belongs to another run .*heldout: recorded 3, now 2"):
        train(config.with_overrides({"train.resume": "latest", "train.max_steps": 4, "train.heldout": 2}),
              make_examples())


def test_heldout_and_eval_every_are_checked():
    with pytest.raises(ConfigError, match=r"train.heldout: must be >= 0 .* got -1") as error:
        GenVecConfig().with_overrides({"train.heldout": -1, "train.eval_every": 0})
    assert "train.eval_every: must be >= 1 or None" in str(error.value)


def test_heldout_examples_never_reach_a_training_step(backbone_dirs, tmp_path, monkeypatch):
    examples = make_examples()
    tokenizer = AutoTokenizer.from_pretrained(backbone_dirs["qwen3"])
    ids = [tuple(row) for row in tokenize_queries(tokenizer, [q.strip() for q in examples.queries], 512, 4)]
    assert len(set(ids)) == COUNT  # each example's query is recognisable by its tokens
    trained, measures = set(), []
    forward, cosine = genvec.GenVecModel.forward, training_loop.distillation_cosine

    def recording_forward(self, queries, *args, **kwargs):
        for row, mask in zip(queries.input_ids.tolist(), queries.attention_mask.tolist()):
            trained.add(tuple(token for token, real in zip(row, mask) if real))
        return forward(self, queries, *args, **kwargs)

    def recording_cosine(model, tokenized, indices, batch_size):
        measures.append(sorted(indices.tolist()))
        return cosine(model, tokenized, indices, batch_size)

    monkeypatch.setattr(genvec.GenVecModel, "forward", recording_forward)
    monkeypatch.setattr(training_loop, "distillation_cosine", recording_cosine)
    # 72 steps of 4: two epochs of the 147 training examples (each epoch drops a last partial batch of 3).
    train(make_config(backbone_dirs["qwen3"], tmp_path / "run", **{"train.max_steps": 72, "train.eval_every": 36}),
          examples)
    heldout, probe = measures[0], measures[1]
    assert len(heldout) == len(probe) == 3 and measures == [heldout, probe] * 3  # steps 0, 36, 72
    assert not {ids[i] for i in heldout} & trained
    assert {ids[i] for i in probe} <= trained
    assert len(trained) >= COUNT - 3 - 3  # the rest was trained on
    assert [step for step, _, _ in measured(read_metrics(tmp_path / "run"))] == [0, 36, 72]


def test_the_logged_cosine_is_the_saved_models_on_the_heldout_slice(backbone_dirs, tmp_path):
    examples = make_examples()
    config = make_config(backbone_dirs["qwen3"], tmp_path / "run", **{
        "train.max_steps": 6, "train.save_every": 3, "train.keep_last": 5, "train.eval_every": 3})
    train(config, examples)
    lines = {line["step"]: line for line in read_metrics(tmp_path / "run")}
    split = split_examples(examples.queries, 3, config.train.seed)
    teacher = examples.teacher_embeddings

    def by_hand(model, indices) -> float:
        embeddings = model.encode([examples.queries[i] for i in indices])  # the query alone, as training reads it
        targets = teacher[indices]
        cosines = (embeddings * targets).sum(1) / np.linalg.norm(embeddings, axis=1) / np.linalg.norm(targets, axis=1)
        return float(cosines.mean())

    untrained = genvec.GenVecModel.from_config(config)  # the seeded initial tensors of the run
    checkpoints = tmp_path / "run" / "checkpoints"
    for step, model in [(0, untrained), (3, genvec.load_model(checkpoints / "step-00000003", device="cpu")),
                        (6, genvec.load_model(tmp_path / "run" / "final", device="cpu"))]:
        assert lines[step]["heldout_cosine"] == pytest.approx(by_hand(model, split.heldout), abs=1e-5), step
        assert lines[step]["train_cosine"] == pytest.approx(by_hand(model, split.train_probe), abs=1e-5), step
    assert lines[3]["heldout_cosine"] != lines[6]["heldout_cosine"]  # training moved it
    assert "loss" in lines[3] and "loss" not in lines[0]  # a measured step keeps its losses; step 0 has none
    assert (tmp_path / "run" / "training.png").read_bytes().startswith(b"\x89PNG")


def test_a_resumed_run_logs_each_measure_once_and_as_an_uninterrupted_run(backbone_dirs, tmp_path, monkeypatch):
    examples = make_examples()
    common = {"train.max_steps": 12, "train.save_every": 4, "train.keep_last": 5, "train.eval_every": 3}
    train(make_config(backbone_dirs["qwen3"], tmp_path / "straight", **common), examples)

    step = training_loop.train_step

    def dies_at_step_7(session, *args):  # after the step-4 checkpoint and the step-6 measure were written
        if session.step == 6:
            raise KeyboardInterrupt("killed")
        return step(session, *args)

    monkeypatch.setattr(training_loop, "train_step", dies_at_step_7)
    with pytest.raises(KeyboardInterrupt):
        train(make_config(backbone_dirs["qwen3"], tmp_path / "killed", **common), examples)
    assert [s for s, _, _ in measured(read_metrics(tmp_path / "killed"))] == [0, 3, 6]
    monkeypatch.setattr(training_loop, "train_step", step)
    train(make_config(backbone_dirs["qwen3"], tmp_path / "killed", **common, **{"train.resume": "latest"}), examples)
    straight, resumed = read_metrics(tmp_path / "straight"), read_metrics(tmp_path / "killed")
    assert [line["step"] for line in resumed] == list(range(13))  # no line twice, none lost
    assert [s for s, _, _ in measured(resumed)] == [0, 3, 6, 9, 12]
    for (step_a, *a), (step_b, *b) in zip(measured(straight), measured(resumed), strict=True):
        assert step_a == step_b and np.allclose(a, b, atol=1e-6), (step_a, a, b)


def test_a_run_whose_checkpoint_set_nothing_aside_resumes_on_every_example(backbone_dirs, tmp_path, caplog):
    examples = make_examples()
    common = {"train.max_steps": 6, "train.save_every": 3}
    train(make_config(backbone_dirs["qwen3"], tmp_path / "old", **common, **{"train.heldout": 0}), examples)
    state_file = tmp_path / "old" / "checkpoints" / "step-00000003" / "trainer_state.json"
    state = json.loads(state_file.read_text())
    assert state["run"].pop("heldout") == 0
    state_file.write_text(json.dumps(state))  # as written before runs set examples aside
    (tmp_path / "old" / "checkpoints" / "step-00000006").rename(tmp_path / "step-6")  # resume from step 3
    train(make_config(backbone_dirs["qwen3"], tmp_path / "old", **common, **{"train.resume": "latest"}), examples)
    assert "set no examples aside" in caplog.text
    lines = read_metrics(tmp_path / "old")
    assert [line["step"] for line in lines] == [1, 2, 3, 4, 5, 6] and not measured(lines)
    # and it trained as the uninterrupted run did: the same final tensors
    again = genvec.load_model(tmp_path / "old" / "final", device="cpu").trainable_state_dict()
    straight = genvec.load_model(tmp_path / "step-6", device="cpu").trainable_state_dict()
    assert all(torch.allclose(again[name], straight[name], atol=1e-6) for name in again)


def _torchrun(script: Path, port: int, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port",
                           str(port), str(script), *args], env=env, capture_output=True, text=True, timeout=300,
                          check=False)


def test_two_ddp_processes_log_the_measures_of_one(backbone_dirs, tmp_path):
    examples = make_examples()
    np.savez(tmp_path / "data.npz", queries=examples.queries, responses=examples.responses,
             targets=examples.teacher_embeddings)
    common = {"train.max_steps": 4, "train.save_every": 4, "train.eval_every": 2}
    words = [f"{key}={value}" for key, value in {**tiny.OVERRIDES, **common}.items()]
    driver = Path(__file__).parents[2] / "integration" / "train_driver.py"
    completed = _torchrun(driver, 29543, str(tmp_path / "data.npz"), str(backbone_dirs["qwen3"]), str(tmp_path / "two"),
                          *words)
    assert completed.returncode == 0, completed.stderr[-3000:]
    train(make_config(backbone_dirs["qwen3"], tmp_path / "one", **common), examples)
    one, two = measured(read_metrics(tmp_path / "one")), measured(read_metrics(tmp_path / "two"))
    assert [step for step, _, _ in two] == [0, 2, 4]
    for (step, *a), (_, *b) in zip(one, two, strict=True):  # only float summation order differs
        assert np.allclose(a, b, atol=1e-5), (step, a, b)


def test_the_measure_of_an_fsdp2_sharded_model_is_the_unsharded_ones(backbone_dirs, tmp_path):
    driver = Path(__file__).with_name("fsdp_heldout_driver.py")
    completed = _torchrun(driver, 29544, str(backbone_dirs["qwen3"]), str(tmp_path / "two.json"))
    assert completed.returncode == 0, completed.stderr[-3000:]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
    completed = subprocess.run([sys.executable, str(driver), str(backbone_dirs["qwen3"]), str(tmp_path / "one.json")],
                               env=env, capture_output=True, text=True, timeout=300, check=False)
    assert completed.returncode == 0, completed.stderr[-3000:]
    two, one = (json.loads((tmp_path / name).read_text()) for name in ("two.json", "one.json"))
    assert two["sharded"] and not one["sharded"]
    assert two["before"] == pytest.approx(one["before"], abs=1e-5)  # before any forward: step 0 of a run
    assert two["after"] == pytest.approx(one["after"], abs=1e-5) and one["after"] != one["before"]
