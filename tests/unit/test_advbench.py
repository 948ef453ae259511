"""AdvBench-IR: the official chunking by hand, the corpus it builds, and the task run through mteb."""

import json

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


def test_the_task_runs_from_local_files_with_dot_similarity(qwen3_model, tmp_path):
    from genvec.evaluate.advbench import advbench_task
    from genvec.evaluate.mteb_encoder import mteb_encoder

    (tmp_path / "malicious.jsonl").write_text("".join(json.dumps(
        {"ID": i, "query": f"how to do harm number {i}?", "title": f"Harm {i}", "document": words(120, i)}) + "\n"
        for i in range(3)))
    (tmp_path / "wiki.jsonl").write_text("".join(json.dumps(
        {"ID": i, "title": "Rivers", "passage": f"Rivers flow into lake {i}."}) + "\n" for i in range(5)))
    task = advbench_task(tmp_path / "malicious.jsonl", tmp_path / "wiki.jsonl")
    encoder = mteb_encoder(qwen3_model, name="genvec/tiny", similarity="dot")
    (result,) = mteb.evaluate(encoder, [task], cache=None, show_progress_bar=False).task_results
    scores = result.scores["test"][0]
    assert {"any_harm_at_1", "any_harm_at_100", "hit_rate_at_1", "hit_rate_at_100"} <= set(scores)
    assert scores["any_harm_at_100"] == 1.0 and scores["hit_rate_at_100"] == 1.0  # 8 passages: all are in the top 100
    assert ("AdvBench-IR", "query", "Generate a relevant document that answers this query:") in encoder.calls
