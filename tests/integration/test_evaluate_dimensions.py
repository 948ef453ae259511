"""`genvec evaluate --dimensions ... --precision ...`: every (d, precision) setting of a truncatable tiny model, and of
the mean-pool baseline given the same post-hoc treatment, scores exactly the nDCG@10 computed by hand from the full
vectors (encode(dimensions=d), quantize, the documented similarity); the full vectors are encoded once and a rerun
encodes nothing; sizes the model cannot give are refused before anything runs."""

import json

import numpy as np
import pytest
import torch

pytest.importorskip("mteb")

import pytrec_eval  # mteb's own scorer (a dependency of mteb)

from genvec import GenVecModel
from genvec.cli import main
from genvec.config import EvalConfig
from genvec.errors import ConfigError, InputError
from genvec.evaluate.baselines import mean_pooled_encoder
from genvec.evaluate.run import evaluate_model, select_tasks
from genvec.loading import load_model
from genvec.quantization import calibrate, quantize
from genvec.truncation import make_truncatable, principal_directions

D = 16
QUERY, DOCUMENT = "Answer the question:", "Summarize the following passage:"
CORPUS = [f"{animal} {fact}" for animal in ("Polar bears", "Camels", "Salmon", "Owls")
          for fact in ("live in a cold place.", "eat what they find.", "travel far every year.")]
QUERIES = ["where do polar bears live?", "what do camels eat?", "do salmon travel?", "how far do owls fly?",
           "which animal likes the cold?", "what eats fish?"]
RELEVANT = [(0, 0), (0, 1), (1, 4), (2, 8), (3, 11), (4, 0), (5, 1), (5, 7)]  # (query, document), grade 1
SAMPLE = [f"{topic} {detail}" for topic in ("glaciers", "volcanoes", "markets", "cakes", "rivers", "deserts")
          for detail in ("form over time", "a short history", "why do they matter?", "what is inside?")]
PRECISIONS = ["float32", "int8", "binary"]


@pytest.fixture(scope="module")
def checkpoint(backbone_dirs, tmp_path_factory):
    """A saved tiny model made truncatable on SAMPLE (pca)."""
    torch.manual_seed(0)
    model = GenVecModel.from_backbone(str(backbone_dirs["qwen3"]), num_special_tokens=4, num_compression_tokens=2,
                                      embedding_dim=D, dtype="fp32", device="cpu")
    make_truncatable(model, SAMPLE)
    directory = tmp_path_factory.mktemp("truncatable") / "model"
    model.save_pretrained(directory)
    return directory


@pytest.fixture
def bench(tmp_path):
    """A retrieval task R and the calibration file; (benchmark directory, calibration file)."""
    task = tmp_path / "bench" / "R"
    task.mkdir(parents=True)
    (task / "corpus.jsonl").write_text("".join(json.dumps({"_id": f"d{j}", "text": text}) + "\n"
                                               for j, text in enumerate(CORPUS)))
    (task / "queries.jsonl").write_text("".join(json.dumps({"_id": f"q{i}", "text": text}) + "\n"
                                                for i, text in enumerate(QUERIES)))
    (task / "qrels.tsv").write_text("query-id\tcorpus-id\tscore\n" + "".join(f"q{i}\td{j}\t1\n" for i, j in RELEVANT))
    (tmp_path / "bench" / "instructions.yaml").write_text(f'R: {{query: "{QUERY}", document: "{DOCUMENT}"}}\n')
    (tmp_path / "sample.txt").write_text("\n".join(SAMPLE) + "\n")
    return tmp_path / "bench", tmp_path / "sample.txt"


def ndcg_at_10(queries: np.ndarray, documents: np.ndarray) -> float:
    """nDCG@10 of cosine similarity (trec_eval's, as mteb scores it, ties broken the same way)."""
    queries = queries / np.linalg.norm(queries, axis=1, keepdims=True)
    documents = documents / np.linalg.norm(documents, axis=1, keepdims=True)
    scores = queries.astype(np.float64) @ documents.astype(np.float64).T
    qrels = {f"q{i}": {} for i in range(len(QUERIES))}
    for i, j in RELEVANT:
        qrels[f"q{i}"][f"d{j}"] = 1
    run = {f"q{i}": {f"d{j}": float(scores[i, j]) for j in range(len(CORPUS))} for i in range(len(QUERIES))}
    values = pytrec_eval.RelevanceEvaluator(qrels, {"ndcg_cut.10"}).evaluate(run)
    return float(np.mean([values[key]["ndcg_cut_10"] for key in values]))


def compared(vectors: np.ndarray, precision: str, ranges: np.ndarray | None) -> np.ndarray:
    """The documented comparison form: integer codes as numbers (compared by cosine), bits as +-1 (their cosine,
    1 - 2 Hamming / d, exact here as the dot product d - 2 Hamming is in mteb: the same ranking, ties included)."""
    codes = quantize(vectors, precision, ranges)
    if precision == "binary":
        bits = np.unpackbits((codes.astype(np.int16) + 128).astype(np.uint8), axis=1)[:, :vectors.shape[1]]
        return bits.astype(np.float32) * 2 - 1
    return codes.astype(np.float32)


def unit(vectors: np.ndarray) -> np.ndarray:
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def test_each_setting_scores_the_ndcg_computed_by_hand_for_the_model_and_the_baseline(checkpoint, bench, tmp_path):
    directory, sample = bench
    command = ["evaluate", "--model", str(checkpoint), "--device", "cpu", "--local", str(directory), "--output",
               str(tmp_path / "out"), "--baseline", "mean-pool", "--dimensions", "8", "16", "--precision",
               *PRECISIONS, "--calibration-texts", str(sample)]
    assert main(command) == 0
    scores = json.loads((tmp_path / "out" / "scores.json").read_text())
    sizes = scores["sizes"]
    model = load_model(checkpoint, device="cpu")
    pooled = mean_pooled_encoder(model.backbone, model.tokenizer)
    rotation = principal_directions(pooled(SAMPLE), "pca")[0].numpy().astype(np.float32)  # the model's basis kind
    for d in (8, 16):
        queries = model.encode(QUERIES, instruction=QUERY, dimensions=d, normalize=True)
        documents = model.encode(CORPUS, instruction=DOCUMENT, dimensions=d, normalize=True)
        own = np.concatenate([model.encode_query(SAMPLE, dimensions=d, normalize=True),
                              model.encode_document(SAMPLE, dimensions=d, normalize=True)])
        base_queries, base_documents = unit(pooled(QUERIES) @ rotation[:, :d]), unit(pooled(CORPUS) @ rotation[:, :d])
        base_own = unit(pooled(SAMPLE) @ rotation[:, :d])
        for precision in PRECISIONS:
            if (d, precision) == (D, "float32"):
                continue
            expected = ndcg_at_10(compared(queries, precision, calibrate(own)),
                                  compared(documents, precision, calibrate(own)))
            entry = sizes[f"genvec/model-d{d}-{precision}"]
            assert entry["tasks"]["R"]["main_score"] == pytest.approx(expected, abs=6e-6), (d, precision)
            assert (entry["dimensions"], entry["precision"], entry["method"]) == (d, precision, "genvec/model")
            assert entry["bytes_per_vector"] == {"float32": 4 * d, "int8": d, "binary": d // 8}[precision]
            expected = ndcg_at_10(compared(base_queries, precision, calibrate(base_own)),
                                  compared(base_documents, precision, calibrate(base_own)))
            baseline = sizes[f"baseline/mean-pool-d{d}-{precision}"]["tasks"]["R"]["main_score"]
            assert baseline == pytest.approx(expected, abs=6e-6), ("mean-pool", d, precision)
    full = ndcg_at_10(model.encode(QUERIES, instruction=QUERY), model.encode(CORPUS, instruction=DOCUMENT))
    assert sizes["genvec/model"]["tasks"]["R"]["main_score"] == pytest.approx(full, abs=6e-6)
    assert set(scores["methods"]) == {"genvec/model", "baseline/mean-pool"}  # the settings are kept apart
    summary = (tmp_path / "out" / "summary.md").read_text()
    assert "| R | 8, binary | 1 |" in summary and "Smaller vectors" in summary


def test_the_full_vectors_are_encoded_once_and_a_rerun_encodes_nothing(checkpoint, bench, tmp_path, monkeypatch):
    directory, sample = bench
    tasks, table = select_tasks(local=directory)
    model = load_model(checkpoint, device="cpu")
    calls = []
    encode = model.encode
    monkeypatch.setattr(model, "encode", lambda texts, **options: calls.append(len(texts)) or encode(texts, **options))
    config = EvalConfig(dimensions=[8], precision=["float32", "int8"], calibration_texts=str(sample))
    first = evaluate_model(model, tasks, tmp_path / "out", instructions=table, config=config, show_progress=False)
    # queries, documents and the sample's two sides: each once, whatever the number of settings
    assert sorted(calls) == sorted([len(QUERIES), len(CORPUS), len(SAMPLE), len(SAMPLE)])

    for result in (tmp_path / "out" / "mteb").rglob("R.json"):
        result.unlink()  # every score must be computed again: from the cached vectors
    calls.clear()
    more = EvalConfig(dimensions=[4, 8], precision=["float32", "int8"], calibration_texts=str(sample))
    again = evaluate_model(model, tasks, tmp_path / "out", instructions=table, config=more, show_progress=False)
    assert calls == []
    assert again.main_scores == first.main_scores
    for name, entry in first.sizes.items():
        assert again.sizes[name]["tasks"] == entry["tasks"]
    assert "genvec/model-d4-int8" in again.sizes


def test_without_a_calibration_sample_int8_uses_the_ranges_of_the_checkpoint_as_encode_does(checkpoint, bench,
                                                                                               tmp_path):
    directory, _ = bench
    tasks, table = select_tasks(local=directory)
    model = load_model(checkpoint, device="cpu")
    config = EvalConfig(dimensions=[8], precision=["int8"])
    result = evaluate_model(model, tasks, tmp_path / "out", instructions=table, config=config, show_progress=False)
    queries = model.encode(QUERIES, instruction=QUERY, dimensions=8, normalize=True, precision="int8")
    documents = model.encode(CORPUS, instruction=DOCUMENT, dimensions=8, normalize=True, precision="int8")
    expected = ndcg_at_10(queries.astype(np.float32), documents.astype(np.float32))
    assert result.sizes["genvec/model-d8-int8"]["tasks"]["R"]["main_score"] == pytest.approx(expected, abs=6e-6)


def test_sizes_the_model_cannot_give_are_refused_before_anything_runs(checkpoint, bench, backbone_dirs, tmp_path,
                                                                        capsys):
    directory, _ = bench
    tasks, table = select_tasks(local=directory)
    model = load_model(checkpoint, device="cpu")

    def refused(error, match, config, baselines=None, scored=model):
        with pytest.raises(error, match=match):
            evaluate_model(scored, tasks, tmp_path / "out", instructions=table, baselines=baselines, config=config,
                           show_progress=False)
        assert not (tmp_path / "out").exists()

    plain = GenVecModel.from_backbone(str(backbone_dirs["qwen3"]), num_special_tokens=4, num_compression_tokens=2,
                                      embedding_dim=D, dtype="fp32", device="cpu")
    refused(InputError, "not truncatable.*genvec make-truncatable", EvalConfig(dimensions=[8]), scored=plain)
    refused(InputError, r"larger than the model's embeddings \(16", EvalConfig(dimensions=[32]))
    refused(InputError, "int8 and uint8 need ranges.*--calibration-texts", EvalConfig(precision=["int8"]),
            scored=plain)
    refused(InputError, "baseline/mean-pool at smaller sizes needs a calibration sample.*--calibration-texts",
            EvalConfig(dimensions=[8]), baselines=["mean-pool"])
    refused(InputError, "does not exist", EvalConfig(dimensions=[8], calibration_texts=str(tmp_path / "none.txt")))
    refused(ConfigError, r"multiples of 8, got \[12\]", EvalConfig(dimensions=[12], precision=["binary"]))
    assert main(["evaluate", "--model", str(checkpoint), "--device", "cpu", "--local", str(directory), "--output",
                 str(tmp_path / "out"), "--precision", "int4"]) == 2
    assert "eval.precision: must be one of 'float32', 'int8', 'uint8', 'binary', 'ubinary', got 'int4'" in (
        capsys.readouterr().err)

