"""The quickstart end to end: a reduced world in CI, the real-backbone path on a tiny model, and its guards."""

import json

import numpy as np
import pytest

from genvec.cli import main
from genvec.errors import InputError
from genvec.inference import relevance
from genvec.loading import load_model
from genvec.quickstart.pipeline import QuickstartOptions, run_quickstart
from genvec.quickstart.world import SMALL_WORLD, build_world
from genvec.truncation import make_truncatable


def test_reduced_quickstart_beats_mean_pooling_and_reuses_its_world_lm(tmp_path):
    options = QuickstartOptions(run_dir=tmp_path / "run", size="small", cache_dir=tmp_path / "cache", device="cpu",
                                show_progress=False)
    result = run_quickstart(options)
    genvec, mean_pool = result.scores["genvec"], result.scores["LM mean-pool"]
    assert genvec["retrieval_accuracy"] > mean_pool["retrieval_accuracy"]
    assert genvec["retrieval_mrr"] > mean_pool["retrieval_mrr"]
    for name in ("report.md", "metrics.json", "embeddings.png"):
        assert (tmp_path / "run" / name).stat().st_size > 0
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert set(metrics["methods"]) == {"genvec", "LM mean-pool", "MiniLM"}
    assert "decoded_match" in metrics["methods"]["genvec"]
    # Decoded texts are scored against held-out responses generated with the training responses' settings.
    heldout_meta = json.loads((tmp_path / "run" / "heldout_responses.meta.json").read_text())
    training_meta = json.loads((tmp_path / "run" / "responses.meta.json").read_text())
    assert heldout_meta["complete"]
    assert heldout_meta["counts"]["queries"] == len(build_world(SMALL_WORLD).heldout_queries)
    for key in ("backbone", "requested", "generation"):
        assert heldout_meta[key] == training_meta[key]
    first = json.loads((tmp_path / "run" / "heldout_responses.jsonl").read_text().splitlines()[0])
    example = metrics["summary"]["decoding examples"][0]
    assert (example["query"], example["response"]) == (first["query"], first["response"])
    assert (tmp_path / "run" / "train" / "config.yaml").is_file()  # trained through genvec.train and a config

    # Made truncatable (genvec make-truncatable's rotation), the trained model keeps every full-size similarity.
    model = load_model(tmp_path / "run" / "train" / "final", device="cpu")
    texts = [query.text for query in build_world(SMALL_WORLD).heldout_queries[:24]]
    before = np.concatenate([model.encode_query(texts), model.encode_document(texts)])
    make_truncatable(model, texts)
    after = np.concatenate([model.encode_query(texts), model.encode_document(texts)])
    assert np.abs(after - before).max() > 1e-2  # the coordinates did change
    scale = np.abs(before @ before.T).max()
    assert np.abs(after @ after.T - before @ before.T).max() < 1e-5 * scale
    assert np.abs(relevance(after, after) - relevance(before, before)).max() < 1e-5

    # The second run finds the world LM in the cache, and replaces its own earlier run directory.
    again = run_quickstart(options)
    assert len([p for p in (tmp_path / "cache" / "world_lm").iterdir() if p.is_dir()]) == 1  # one LM, and its lock
    assert "reused from the cache" in (tmp_path / "run" / "report.md").read_text()
    assert again.scores["genvec"]["retrieval_accuracy"] == pytest.approx(genvec["retrieval_accuracy"], abs=0.05)


def test_real_backbone_path_runs_the_same_stages(backbone_dirs, tmp_path):
    words = ["polar", "bear", "ice", "river", "city", "question", "answer", "arctic", "train", "model", "vector"]
    queries = [f"what does the {words[i % 11]} of {words[(i * 7) % 11]} mean, number {i}?" for i in range(40)]
    (tmp_path / "queries.txt").write_text("\n".join(queries) + "\n")
    status = main(["quickstart", "--backbone", str(backbone_dirs["qwen3"]), "--queries", str(tmp_path / "queries.txt"),
                   "--steps", "4", "--run-dir", str(tmp_path / "run"), "--device", "cpu"])
    assert status == 0
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert set(metrics["methods"]["MiniLM"]) == {"retrieval_accuracy", "retrieval_mrr"}
    assert "decoded_similarity" in metrics["methods"]["genvec"]
    assert "clustering and (c) harmful retrieval need the world" in (tmp_path / "run" / "report.md").read_text()


def test_quickstart_guards(tmp_path):
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "notes.txt").write_text("keep me")
    with pytest.raises(InputError, match="is not an earlier quickstart run"):
        run_quickstart(QuickstartOptions(run_dir=tmp_path / "mine"))
    assert (tmp_path / "mine" / "notes.txt").read_text() == "keep me"
    with pytest.raises(InputError, match="needs both backbone and queries"):
        run_quickstart(QuickstartOptions(run_dir=tmp_path / "run", backbone="some/model"))


def test_real_backbone_with_fewer_queries_than_a_batch_trains_on_a_batch_that_fits(backbone_dirs, tmp_path):
    """24 queries: 8 are held out, so the 16 left make the batch (32 would not fit); nothing fails after generation."""
    queries = [f"question number {i} about the arctic?" for i in range(24)]
    (tmp_path / "queries.txt").write_text("\n".join(queries) + "\n")
    status = main(["quickstart", "--backbone", str(backbone_dirs["qwen3"]), "--queries", str(tmp_path / "queries.txt"),
                   "--steps", "2", "--run-dir", str(tmp_path / "run"), "--device", "cpu"])
    assert status == 0
    resolved = (tmp_path / "run" / "train" / "config.yaml").read_text()
    assert "batch_size: 16\n" in resolved
    assert len((tmp_path / "run" / "responses.jsonl").read_text().splitlines()) == 16


def test_quickstart_refuses_zero_steps_before_any_work(tmp_path):
    with pytest.raises(InputError, match="steps must be a positive integer"):
        run_quickstart(QuickstartOptions(run_dir=tmp_path / "run", steps=0))
    assert not (tmp_path / "run").exists()
