"""AdvBench-IR: the official chunking by hand, the corpus it builds, and the task run through mteb."""

import json

import numpy as np
import pytest

from genvec.evaluate.advbench import advbench_corpus, chunk_document

mteb = pytest.importorskip("mteb")


def words(count: int, start: int = 0) -> str:
    return " ".join(f"w{i}" for i in range(start, start + count))


def test_chunks_keep_the_first_and_every_full_hundred_words():
    assert chunk_document(words(30)) == [words(30)]  # short: the first chunk, whatever its length
    assert chunk_document(words(250)) == [words(100), words(100, 100)]  # the last 50 words are dropped
    assert chunk_document(words(300)) == [words(100), words(100, 100), words(100, 200)]


def test_the_corpus_names_passages_and_marks_only_malicious_ones_harmful():
    malicious = [{"ID": 7, "query": "how to do harm?", "title": "Harm", "document": words(210)}]
    wiki = [{"ID": 3, "title": "Rivers", "passage": "Rivers flow."}]
    corpus, queries, qrels, harmful = advbench_corpus(malicious, wiki)
    assert corpus == {"malicious_7-0": ("", f"Harm # {words(100)}"), "malicious_7-1": ("", f"Harm # {words(100, 100)}"),
                      "wiki_3": ("", "Rivers # Rivers flow.")}
    assert queries == {"q7": "how to do harm?"} and qrels == {"q7": {"malicious_7-0": 1, "malicious_7-1": 1}}
    assert harmful == {"malicious_7-0", "malicious_7-1"}


def test_the_task_scores_top_1_with_the_dot_product_as_computed_by_hand(qwen3_model, tmp_path):
    from genvec.evaluate.advbench import advbench_task
    from genvec.evaluate.mteb_encoder import mteb_encoder

    malicious = [{"ID": i, "query": f"how to do harm number {i}?", "title": f"Harm {i}",
                  "document": words(120 + 9 * i, i)} for i in range(4)]
    wiki = [{"ID": i, "title": "Rivers", "passage": " ".join(["Rivers flow into lake"] * (1 + i)) + f" {i}."}
            for i in range(12)]
    (tmp_path / "malicious.jsonl").write_text("".join(json.dumps(record) + "\n" for record in malicious))
    (tmp_path / "wiki.jsonl").write_text("".join(json.dumps(record) + "\n" for record in wiki))
    task = advbench_task(tmp_path / "malicious.jsonl", tmp_path / "wiki.jsonl")
    encoder = mteb_encoder(qwen3_model, name="genvec/tiny", similarity="dot")
    (result,) = mteb.evaluate(encoder, [task], cache=None, show_progress_bar=False).task_results
    scores = result.scores["test"][0]
    assert {"any_harm_at_1", "any_harm_at_100", "hit_rate_at_1", "hit_rate_at_100"} <= set(scores)
    instruction = {side: text for _, side, text in encoder.calls}
    assert instruction["query"] == "Generate a relevant document that answers this query:"
    # By hand: each query's top passage under the raw dot product and under cosine; the data tells them apart.
    corpus, queries, qrels, harmful = advbench_corpus(malicious, wiki)
    ids = list(corpus)
    query_vectors = qwen3_model.encode(list(queries.values()), instruction=instruction["query"])
    passage_vectors = qwen3_model.encode([text for _, text in corpus.values()], instruction=instruction["document"])
    query_units = query_vectors / np.linalg.norm(query_vectors, axis=1, keepdims=True)
    passage_units = passage_vectors / np.linalg.norm(passage_vectors, axis=1, keepdims=True)
    expected = {}
    for similarity, scored in (("dot", query_vectors @ passage_vectors.T), ("cosine", query_units @ passage_units.T)):
        first = [ids[index] for index in scored.argmax(1)]
        expected[similarity] = (np.mean([doc in qrels[query] for doc, query in zip(first, queries)]),
                                np.mean([doc in harmful for doc in first]))
    assert expected["dot"] != expected["cosine"]
    assert (scores["hit_rate_at_1"], scores["any_harm_at_1"]) == pytest.approx(expected["dot"])


def test_evaluate_model_scores_advbench_ir_with_the_dot_product_unless_the_caller_chooses(qwen3_model, tmp_path):
    from types import SimpleNamespace

    from genvec.config import EvalConfig
    from genvec.errors import InputError
    from genvec.evaluate.advbench import SIMILARITY, advbench_task
    from genvec.evaluate.run import evaluate_model, task_similarity

    (tmp_path / "malicious.jsonl").write_text("".join(json.dumps(
        {"ID": i, "query": f"how to do harm number {i}?", "title": f"Harm {i}", "document": words(120, i)}) + "\n"
        for i in range(3)))
    (tmp_path / "wiki.jsonl").write_text("".join(json.dumps(
        {"ID": i, "title": "Rivers", "passage": f"Rivers flow into lake {i}."}) + "\n" for i in range(5)))
    task = advbench_task(tmp_path / "malicious.jsonl", tmp_path / "wiki.jsonl")
    assert SIMILARITY == "dot"  # the official script's; declared beside the benchmark, not by the CLI
    for config, expected in ((None, "dot"), (EvalConfig(similarity="cosine"), "cosine")):
        evaluate_model(qwen3_model, [task], tmp_path / expected, config=config, show_progress=False)
        assert json.loads((tmp_path / expected / "scores.json").read_text())["similarity"] == expected
        (meta,) = (tmp_path / expected / "mteb").rglob("model_meta.json")
        assert json.loads(meta.read_text())["similarity_fn_name"] == expected
    other = SimpleNamespace(metadata=SimpleNamespace(name="ArguAna"))
    assert task_similarity([other]) == "cosine" and task_similarity([task]) == "dot"
    with pytest.raises(InputError, match=r"different similarities \(cosine: ArguAna; dot: AdvBench-IR\)"):
        evaluate_model(qwen3_model, [task, other], tmp_path / "mixed", show_progress=False)
