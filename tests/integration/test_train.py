"""The training loop: resume equals an uninterrupted run, two processes (DDP or FSDP) equal one, guards stop bad
runs."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch

import genvec
from genvec.config import GenVecConfig
from genvec.errors import ConfigError, TrainingError
from genvec.training import TrainingExamples, list_checkpoints, train
from genvec.training.examples import BatchPlan, tokenize_examples

DRIVER = Path(__file__).with_name("train_driver.py")

OVERRIDES = {
    "model.embedding_dim": 16,
    "model.dtype": "fp32",
    "tokens.num_special_tokens": 4,
    "tokens.num_compression_tokens": 2,
    "train.batch_size": 4,
    "train.warmup_steps": 2,
    "train.learning_rate": 1e-2,
    "train.log_every": 1,
}


def make_examples(count: int = 24, dim: int = 16, seed: int = 0) -> TrainingExamples:
    rng = np.random.default_rng(seed)
    words = ["polar", "bear", "ice", "river", "city", "question", "answer", "arctic", "train", "model", "vector", "the",
             "a", "of", "is"]
    queries = [" ".join(rng.choice(words, rng.integers(3, 10))) + "?" for _ in range(count)]
    responses = [" ".join(rng.choice(words, rng.integers(4, 16))) + "." for _ in range(count)]
    return TrainingExamples(queries, responses, rng.standard_normal((count, dim)).astype(np.float32))


def make_config(backbone, run_dir, **overrides) -> GenVecConfig:
    values = {**OVERRIDES, "model.backbone": str(backbone), "train.run_dir": str(run_dir), **overrides}
    return GenVecConfig().with_overrides(values)


def read_metrics(run_dir) -> list[dict]:
    return [json.loads(line) for line in (Path(run_dir) / "metrics.jsonl").read_text().splitlines()]


def test_training_lowers_the_loss_and_saves_a_loadable_model(backbone_dirs, tmp_path):
    examples = make_examples()
    result = train(make_config(backbone_dirs["qwen3"], tmp_path / "run", **{"train.max_steps": 30}), examples)
    metrics = read_metrics(tmp_path / "run")
    assert [m["step"] for m in metrics] == list(range(1, 31))
    first, last = np.mean([m["loss"] for m in metrics[:3]]), np.mean([m["loss"] for m in metrics[-3:]])
    assert last < 0.9 * first, (first, last)
    model = genvec.load_model(result.model_dir, device="cpu")
    assert model.encode(["polar bear?"]).shape == (1, 16)
    assert (tmp_path / "run" / "config.yaml").is_file()
    assert GenVecConfig.from_file(tmp_path / "run" / "config.yaml").train.max_steps == 30
    assert [p.name for p in list_checkpoints(tmp_path / "run")] == ["step-00000030"]


def test_each_logged_step_records_the_padded_widths_it_computed_over(backbone_dirs, tmp_path):
    examples = make_examples()
    config = make_config(backbone_dirs["qwen3"], tmp_path / "run", **{"train.max_steps": 5})
    result = train(config, examples)
    tokenized = tokenize_examples(genvec.load_model(result.model_dir, device="cpu"), examples)
    plan = BatchPlan(tokenized.lengths, config.train.batch_size, config.train.seed, config.train.group_by_length)
    for step, line in enumerate(read_metrics(tmp_path / "run")):
        batch = plan.batch(step)
        queries = [len(tokenized.query_ids[i]) for i in batch]
        responses = [len(tokenized.response_ids[i]) for i in batch]
        assert line["padded_query_tokens"] == len(batch) * max(queries)
        assert line["padded_response_tokens"] == len(batch) * max(responses)
        assert line["tokens_per_s"] * line["step_s"] == pytest.approx(sum(queries) + sum(responses), rel=1e-5)


def test_resume_after_a_kill_repeats_the_uninterrupted_losses(backbone_dirs, tmp_path):
    examples = make_examples()
    np.savez(tmp_path / "data.npz", queries=examples.queries, responses=examples.responses,
             targets=examples.teacher_embeddings)
    common = {"train.max_steps": 20, "train.save_every": 5, "train.keep_last": 5, "model.device": "cpu"}
    train(make_config(backbone_dirs["qwen3"], tmp_path / "straight", **common), examples)

    # Kill a real training process once it has logged step 12 (its newest checkpoint is step 10).
    run_dir = tmp_path / "killed"
    words = [f"{key}={value}" for key, value in {**OVERRIDES, **common}.items()]
    process = subprocess.Popen(
        [sys.executable, str(DRIVER), str(tmp_path / "data.npz"), str(backbone_dirs["qwen3"]), str(run_dir), *words],
        env={**os.environ, "HF_HUB_OFFLINE": "1"}, stderr=subprocess.DEVNULL,
    )
    deadline = time.time() + 120
    while time.time() < deadline and process.poll() is None:
        if (run_dir / "metrics.jsonl").is_file() and len(read_metrics(run_dir)) >= 12:
            break
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    steps_logged = len(read_metrics(run_dir))
    assert 12 <= steps_logged < 20, steps_logged
    newest = list_checkpoints(run_dir)[-1].name
    assert newest in ("step-00000010", "step-00000015"), newest

    train(make_config(backbone_dirs["qwen3"], run_dir, **common, **{"train.resume": "latest"}), examples)
    straight, resumed = read_metrics(tmp_path / "straight"), read_metrics(run_dir)
    assert [m["step"] for m in resumed] == list(range(1, 21))
    for a, b in zip(straight, resumed):
        for key in ("loss", "reconstruction", "alignment", "learning_rate"):
            assert abs(a[key] - b[key]) < 1e-6, (a["step"], key, a[key], b[key])


def test_two_processes_reach_the_same_weights_as_one(backbone_dirs, tmp_path):
    examples = make_examples()
    np.savez(tmp_path / "data.npz", queries=examples.queries, responses=examples.responses,
             targets=examples.teacher_embeddings)
    common = {"train.max_steps": 4, "train.save_every": 4, "model.device": "cpu"}
    words = [f"{key}={value}" for key, value in {**OVERRIDES, **common}.items()]
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": "1"}
    completed = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29533",
         str(DRIVER), str(tmp_path / "data.npz"), str(backbone_dirs["qwen3"]), str(tmp_path / "two"), *words],
        env=env, capture_output=True, text=True, timeout=300, check=False,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    train(make_config(backbone_dirs["qwen3"], tmp_path / "one", **common), examples)
    one = genvec.load_model(tmp_path / "one" / "final", device="cpu").trainable_state_dict()
    two = genvec.load_model(tmp_path / "two" / "final", device="cpu").trainable_state_dict()
    for name in one:
        # Same global batches, another split over processes: only float summation order differs (seen: <= 2e-7).
        assert torch.allclose(one[name], two[name], atol=1e-5, rtol=1e-4), (name, (one[name] - two[name]).abs().max())
    assert json.loads((tmp_path / "two" / "checkpoints" / "step-00000004" / "trainer_state.json").read_text())[
        "num_processes"] == 2


def test_fsdp_sharded_training_saves_and_resumes_whole_tensors(backbone_dirs, tmp_path):
    # FSDP2 shards every parameter over the processes; the trainer's checkpoints must gather whole tensors, and a
    # resumed run must put its shards back. Two sharded CPU processes against one unsharded process, same batches.
    driver = Path(__file__).with_name("fsdp_driver.py")
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "ACCELERATE_USE_CPU": "1", "OMP_NUM_THREADS": "1"}
    backbone = str(backbone_dirs["qwen3"])
    completed = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29535",
         str(driver), backbone, str(tmp_path / "sharded")],
        env=env, capture_output=True, text=True, timeout=300, check=False,
    )
    assert completed.returncode == 0, completed.stderr[-3000:]
    completed = subprocess.run([sys.executable, str(driver), backbone, str(tmp_path / "one")], env=env,
                               capture_output=True, text=True, timeout=300, check=False)
    assert completed.returncode == 0, completed.stderr[-3000:]
    sharded, one = (json.loads((tmp_path / name / "report.json").read_text()) for name in ("sharded", "one"))
    assert sharded["sharded"] and not one["sharded"]
    assert np.allclose(sharded["losses"], one["losses"], atol=1e-5)
    assert sharded["same_trainables_after_load"] and sharded["same_moments_after_load"]
    checkpoints = [tmp_path / name / "checkpoints" / "step-00000003" for name in ("sharded", "one")]
    tensors = [genvec.load_model(path, device="cpu").trainable_state_dict() for path in checkpoints]
    assert sorted(tensors[0]) == sharded["trainables"]
    for name in tensors[0]:
        assert tensors[0][name].shape == tensors[1][name].shape
        assert torch.allclose(tensors[0][name], tensors[1][name], atol=1e-5), name


def test_cpu_processes_not_marked_as_cpu_are_refused(backbone_dirs, tmp_path):
    # Without ACCELERATE_USE_CPU, Accelerate sets up one process in each of torchrun's two: two lone runs in one
    # directory. The run must stop before it writes anything.
    examples = make_examples()
    np.savez(tmp_path / "data.npz", queries=examples.queries, responses=examples.responses,
             targets=examples.teacher_embeddings)
    words = [f"{key}={value}" for key, value in {**OVERRIDES, "train.max_steps": 2, "model.device": "cpu"}.items()]
    env = {key: value for key, value in os.environ.items() if key != "ACCELERATE_USE_CPU"}
    completed = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_port", "29534",
         str(DRIVER), str(tmp_path / "data.npz"), str(backbone_dirs["qwen3"]), str(tmp_path / "run"), *words],
        env={**env, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}, capture_output=True, text=True, timeout=300,
        check=False,
    )
    assert completed.returncode != 0
    assert "WORLD_SIZE=2" in completed.stderr and "ACCELERATE_USE_CPU=1" in completed.stderr
    assert not (tmp_path / "run" / "metrics.jsonl").exists()


def test_micro_batches_give_the_same_step_as_one_batch(backbone_dirs, tmp_path):
    examples = make_examples()
    whole = train(make_config(backbone_dirs["llama"], tmp_path / "whole", **{"train.max_steps": 2}), examples)
    split = train(make_config(backbone_dirs["llama"], tmp_path / "split", **{"train.max_steps": 2,
                                                                              "train.micro_batch_size": 1}), examples)
    assert abs(whole.metrics["loss"] - split.metrics["loss"]) < 1e-5
    a = genvec.load_model(whole.model_dir, device="cpu").trainable_state_dict()
    b = genvec.load_model(split.model_dir, device="cpu").trainable_state_dict()
    assert all(torch.allclose(a[name], b[name], atol=1e-6) for name in a)


def test_an_unset_embedding_dim_becomes_the_teachers(backbone_dirs, tmp_path):
    config = make_config(backbone_dirs["qwen3"], tmp_path / "run",
                         **{"train.max_steps": 1, "model.embedding_dim": None})
    result = train(config, make_examples(dim=24))
    assert genvec.load_model(result.model_dir, device="cpu").embedding_dim == 24
    assert GenVecConfig.from_file(tmp_path / "run" / "config.yaml").model.embedding_dim == 24


def test_guards_refuse_bad_data_before_the_first_step(backbone_dirs, tmp_path):
    config = make_config(backbone_dirs["qwen3"], tmp_path / "run", **{"train.max_steps": 2})
    with pytest.raises(TrainingError, match="the training data is empty"):
        train(config, TrainingExamples([], [], np.zeros((0, 16), np.float32)))
    with pytest.raises(TrainingError, match="teacher embeddings have dimension 8, but the model's embedding_dim is 16"):
        train(config, make_examples(dim=8))
    with pytest.raises(TrainingError, match="3 examples, fewer than one batch"):
        train(config, make_examples(count=3))
    with pytest.raises(ConfigError, match="batch_size 4 cannot be split"):
        train(make_config(backbone_dirs["qwen3"], tmp_path / "r", **{"train.micro_batch_size": 3}), make_examples())
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_a_tracker_that_is_not_installed_is_refused(backbone_dirs, tmp_path):
    import importlib.util

    missing = [name for name in ("tensorboard", "wandb") if importlib.util.find_spec(name) is None]
    assert missing, "both trackers are installed; this test needs one that is not"
    config = make_config(backbone_dirs["qwen3"], tmp_path / "run", **{"train.report_to": missing[0]})
    with pytest.raises(ConfigError, match=f"needs the {missing[0]} package, which is not installed"):
        train(config, make_examples())


def test_a_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(backbone_dirs, tmp_path, monkeypatch):
    examples = make_examples()
    original = genvec.GenVecModel.forward
    calls = {"count": 0}

    def poisoned(self, *args, **kwargs):
        calls["count"] += 1
        output = original(self, *args, **kwargs)
        if calls["count"] >= 7:  # steps 1-6 are fine (one micro-batch per step)
            return output._replace(total=output.total * float("nan"))
        return output

    monkeypatch.setattr(genvec.GenVecModel, "forward", poisoned)
    config = make_config(backbone_dirs["qwen3"], tmp_path / "run", **{"train.max_steps": 10, "train.save_every": 5})
    with pytest.raises(TrainingError, match=r"non-finite loss at step 7 .* last good checkpoint is step 5"):
        train(config, examples)
    assert [p.name for p in list_checkpoints(tmp_path / "run")] == ["step-00000005"]
    assert not (tmp_path / "run" / "final").exists()


def test_resume_is_refused_for_other_data_and_a_new_run_is_refused_over_checkpoints(backbone_dirs, tmp_path):
    config = make_config(backbone_dirs["qwen3"], tmp_path / "run", **{"train.max_steps": 2})
    train(config, make_examples())
    with pytest.raises(ConfigError, match="already holds 1 checkpoint"):
        train(config, make_examples())
    resumed = make_config(backbone_dirs["qwen3"], tmp_path / "run", **{"train.max_steps": 4, "train.resume": "latest"})
    with pytest.raises(TrainingError, match="belongs to another run .*data_sha256"):
        train(resumed, make_examples(seed=1))


def test_compiled_layers_and_bf16_trainables_train(backbone_dirs, tmp_path, fast_compile):
    examples = make_examples()
    steps = {"train.max_steps": 3}
    train(make_config(backbone_dirs["qwen3"], tmp_path / "plain", **steps), examples)
    train(make_config(backbone_dirs["qwen3"], tmp_path / "compiled", **steps, **{"train.compile": True}), examples)
    assert fast_compile["stats"]["unique_graphs"] >= 1  # the layers were compiled ...
    plain, compiled = read_metrics(tmp_path / "plain"), read_metrics(tmp_path / "compiled")
    for expected, actual in zip(plain, compiled):  # ... and gave the same losses
        assert actual["loss"] == pytest.approx(expected["loss"], abs=1e-5)
    result = train(make_config(backbone_dirs["qwen3"], tmp_path / "bf16", **steps,
                               **{"tokens.trainable_dtype": "bf16"}), examples)
    assert all(np.isfinite(m["loss"]) for m in read_metrics(tmp_path / "bf16"))
    assert genvec.load_model(result.model_dir, device="cpu").trainable_dtype == torch.bfloat16


def test_alignment_projection_can_have_its_own_learning_rate(qwen3_model):
    from genvec.training.optim import make_optimizer

    train_config = GenVecConfig().with_overrides({"train.learning_rate": 1e-3, "train.alignment_learning_rate": 2e-2,
                                                  "train.warmup_steps": 0}).train
    optimizer, scheduler = make_optimizer(qwen3_model, train_config)
    others, alignment = optimizer.param_groups
    assert {id(p) for p in alignment["params"]} == {id(p) for p in qwen3_model.alignment.parameters()}
    assert len(others["params"]) + len(alignment["params"]) == len(qwen3_model.trainable_parameters())
    assert scheduler.get_last_lr() == [1e-3, 2e-2]
    default, _ = make_optimizer(qwen3_model, GenVecConfig().train)
    assert [group["lr"] for group in default.param_groups] == [0.0, 0.0]  # warm-up starts at 0 for both
    assert [group["initial_lr"] for group in default.param_groups] == [3e-4, 3e-4]


def test_resuming_a_finished_run_returns_its_final_losses(backbone_dirs, tmp_path):
    config = make_config(backbone_dirs["qwen3"], tmp_path / "run", **{"train.max_steps": 3})
    first = train(config, make_examples())
    again = train(config.with_overrides({"train.resume": "latest"}), make_examples())
    assert again.metrics["loss"] == pytest.approx(first.metrics["loss"], rel=1e-6)
    assert [m["step"] for m in read_metrics(tmp_path / "run")] == [1, 2, 3]


def test_a_torn_metrics_line_and_stale_temporary_files_do_not_block_a_resume(backbone_dirs, tmp_path):
    config = make_config(backbone_dirs["qwen3"], tmp_path / "run", **{"train.max_steps": 4, "train.save_every": 2})
    train(config, make_examples())
    metrics = tmp_path / "run" / "metrics.jsonl"
    lines = metrics.read_text().splitlines(keepends=True)
    metrics.write_text("".join(lines[:2]) + lines[2][:15])  # killed while writing the step-3 line
    (tmp_path / "run" / "final" / ".trainable.safetensors.abc123.tmp").write_bytes(b"half a file")  # killed save
    result = train(config.with_overrides({"train.resume": str(tmp_path / "run" / "checkpoints" / "step-00000002")}),
                   make_examples())
    assert [m["step"] for m in read_metrics(tmp_path / "run")] == [1, 2, 3, 4]
    assert sorted(p.name for p in (tmp_path / "run" / "final").iterdir()) == ["genvec_config.json",
                                                                              "trainable.safetensors"]
    assert genvec.load_model(result.model_dir, device="cpu").encode(["ice?"]).shape == (1, 16)


def test_a_new_run_over_a_run_killed_before_its_first_checkpoint_starts_fresh_metrics(backbone_dirs, tmp_path):
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "metrics.jsonl").write_text('{"step": 1, "loss": 9.0}\n{"step": 2, "loss": 8.0}\n')
    train(make_config(backbone_dirs["qwen3"], tmp_path / "run", **{"train.max_steps": 3}), make_examples())
    metrics = read_metrics(tmp_path / "run")
    assert [m["step"] for m in metrics] == [1, 2, 3] and metrics[0]["loss"] != 9.0


def test_a_second_run_into_a_run_directory_in_use_is_refused(backbone_dirs, tmp_path):
    from genvec.errors import BusyError
    from genvec.files import exclusive_lock, lock_file_for

    config = make_config(backbone_dirs["qwen3"], tmp_path / "run", **{"train.max_steps": 2})
    with (
        exclusive_lock(lock_file_for(tmp_path / "run"), "the run directory"),
        pytest.raises(BusyError, match=r"the run directory .*run is being written by process"),
    ):
        train(config, make_examples())
    assert not (tmp_path / "run" / "config.yaml").exists()  # nothing written by the refused run
    train(config, make_examples())


def test_damaged_training_checkpoints_and_a_checkpoint_past_max_steps_are_refused_clearly(backbone_dirs, tmp_path):
    config = make_config(backbone_dirs["qwen3"], tmp_path / "run", **{"train.max_steps": 4, "train.save_every": 2})
    train(config, make_examples())
    checkpoint = tmp_path / "run" / "checkpoints" / "step-00000004"
    with pytest.raises(TrainingError, match=r"is at step 4, past train.max_steps 2"):
        train(config.with_overrides({"train.resume": "latest", "train.max_steps": 2}), make_examples())
    (checkpoint / "optimizer.pt").write_bytes(b"not a torch file")
    with pytest.raises(TrainingError, match=r"optimizer state .* is missing or damaged"):
        train(config.with_overrides({"train.resume": "latest"}), make_examples())
    (checkpoint / "trainer_state.json").write_text('{"step": ')
    with pytest.raises(TrainingError, match=r"trainer_state.json' could not be read .*delete this checkpoint"):
        train(config.with_overrides({"train.resume": "latest"}), make_examples())


def test_training_refuses_unfinished_responses(backbone_dirs, tmp_path):
    from genvec.config import DataConfig
    from genvec.data.responses import generate_responses

    model = genvec.GenVecModel.from_backbone(str(backbone_dirs["qwen3"]), num_special_tokens=4,
                                             num_compression_tokens=2, embedding_dim=16, dtype="fp32", device="cpu")
    responses = tmp_path / "responses.jsonl"
    generate_responses([f"question {i}?" for i in range(6)], responses, model.loaded_backbone,
                       DataConfig(max_new_tokens=4, decoding="greedy"))
    meta = json.loads(responses.with_suffix(".meta.json").read_text())
    responses.with_suffix(".meta.json").write_text(json.dumps({**meta, "complete": False}))
    config = make_config(backbone_dirs["qwen3"], tmp_path / "run", **{"train.max_steps": 2,
                                                                      "data.responses": str(responses)})
    with pytest.raises(TrainingError, match=r"the responses are unfinished: .*responses.jsonl is incomplete \(6 of 6"):
        train(config)


def test_examples_of_the_wrong_kind_and_a_run_dir_that_is_a_file_are_refused(backbone_dirs, tmp_path):
    config = make_config(backbone_dirs["qwen3"], tmp_path / "run", **{"train.max_steps": 2})
    good = make_examples()
    cases = [
        (TrainingExamples(good.queries, good.responses, good.teacher_embeddings[:, 0]), "must be a 2-D numpy array"),
        (TrainingExamples([1, *good.queries[1:]], good.responses, good.teacher_embeddings), "queries must be a list"),
        (TrainingExamples(good.queries, good.responses, np.full_like(good.teacher_embeddings, np.nan)),
         "24 teacher embeddings hold NaN or infinite values"),
    ]
    for examples, message in cases:
        with pytest.raises(TrainingError, match=message):
            train(config, examples)
    (tmp_path / "a-file").write_text("x")
    with pytest.raises(ConfigError, match="train.run_dir .* is a file"):
        train(make_config(backbone_dirs["qwen3"], tmp_path / "a-file"), good)
    with pytest.raises(ConfigError, match="train\\(\\) takes a GenVecConfig, got str"):
        train("train.yaml")
