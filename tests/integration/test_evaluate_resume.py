"""A killed `genvec evaluate` loses at most the task in progress: a rerun scores only what was missing."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time

import pytest

pytest.importorskip("mteb")


def write_tasks(root):
    """A quick STS task (scored first: mteb runs tasks in the directory's order) and a retrieval task big enough to
    be still running when the test kills the process."""
    (root / "A_STS").mkdir(parents=True)
    (root / "A_STS" / "sts.tsv").write_text("sentence1\tsentence2\tscore\nA man plays.\tSomeone plays.\t4.5\n"
                                            "A dog runs.\tStocks fell.\t0.5\nRain falls.\tIt rains.\t4.0\n")
    retrieval = root / "B_Retrieval"
    retrieval.mkdir()
    (retrieval / "corpus.jsonl").write_text("".join(
        json.dumps({"_id": f"d{i}", "text": f"passage {i} about rivers, lakes and the number {i * 7}"}) + "\n"
        for i in range(4000)))
    (retrieval / "queries.jsonl").write_text("".join(json.dumps({"_id": f"q{i}", "text": f"where is {i}?"}) + "\n"
                                                     for i in range(50)))
    (retrieval / "qrels.tsv").write_text("query-id\tcorpus-id\tscore\n"
                                         + "".join(f"q{i}\td{i}\t1\n" for i in range(50)))
    (root / "instructions.yaml").write_text('A_STS: "Generate similar text:"\n'
                                            'B_Retrieval: {query: "Answer:", document: "Summarize:"}\n')


def test_a_killed_evaluation_resumes_without_rescoring_finished_tasks(qwen3_model, tmp_path):
    write_tasks(tmp_path / "bench")
    qwen3_model.save_pretrained(tmp_path / "ckpt")
    command = [sys.executable, "-m", "genvec", "evaluate", "--model", str(tmp_path / "ckpt"), "--device", "cpu",
               "--local", str(tmp_path / "bench"), "--output", str(tmp_path / "out"), "--batch-size", "8"]
    environment = {**os.environ, "HF_HUB_OFFLINE": "1"}
    process = subprocess.Popen(command, env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 180
        while not list((tmp_path / "out" / "mteb").rglob("A_STS.json")) and time.monotonic() < deadline:
            assert process.poll() is None, "the evaluation ended before the test could kill it"
            time.sleep(0.05)
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    (first,) = list((tmp_path / "out" / "mteb").rglob("A_STS.json"))
    assert not list((tmp_path / "out" / "mteb").rglob("B_Retrieval.json")), "killed too late: retrieval had finished"
    assert not (tmp_path / "out" / "scores.json").exists()
    written = first.stat().st_mtime_ns

    rerun = subprocess.run(command, env=environment, capture_output=True, text=True, timeout=600, check=False)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert first.stat().st_mtime_ns == written  # the finished task was read back, not run again
    assert len(list((tmp_path / "out" / "mteb").rglob("B_Retrieval.json"))) == 1
    scores = json.loads((tmp_path / "out" / "scores.json").read_text())
    assert set(scores["methods"]["genvec/ckpt"]) == {"A_STS", "B_Retrieval"}
    assert scores["methods"]["genvec/ckpt"]["A_STS"]["main_score"] == pytest.approx(
        json.loads(first.read_text())["scores"]["test"][0]["main_score"], abs=1e-6)
    assert "| B_Retrieval |" in rerun.stdout


def test_a_rerun_scores_again_a_torn_result_and_changed_data(qwen3_model, tmp_path):
    """A kill inside mteb's in-place write leaves half a result file; an edited benchmark makes a result stale: the
    next `genvec evaluate` says so and scores the task again, instead of failing on every rerun or reusing it."""
    sts = tmp_path / "bench" / "A_STS" / "sts.tsv"
    write_tasks(tmp_path / "bench")
    shutil.rmtree(tmp_path / "bench" / "B_Retrieval")  # the STS task alone
    qwen3_model.save_pretrained(tmp_path / "ckpt")
    command = [sys.executable, "-m", "genvec", "evaluate", "--model", str(tmp_path / "ckpt"), "--device", "cpu",
               "--local", str(tmp_path / "bench"), "--output", str(tmp_path / "out")]
    environment = {**os.environ, "HF_HUB_OFFLINE": "1"}

    def evaluate() -> subprocess.CompletedProcess:
        done = subprocess.run(command, env=environment, capture_output=True, text=True, timeout=600, check=False)
        assert done.returncode == 0, done.stderr[-2000:]
        return done

    def row(done) -> str:
        # The first table's row: the scores (the cost table after it has the task's row too, with timings).
        return next(line for line in done.stdout.splitlines() if line.startswith("| A_STS |"))

    first = evaluate()
    (result,) = list((tmp_path / "out" / "mteb").rglob("A_STS.json"))
    result.write_text(result.read_text()[:200])
    torn = evaluate()
    assert "A_STS.json again: its file is damaged" in torn.stderr and row(torn) == row(first)
    assert json.loads(result.read_text())["task_name"] == "A_STS"

    revision = json.loads(result.read_text())["dataset_revision"]
    sts.write_text("sentence1\tsentence2\tscore\nA man plays.\tSomeone plays.\t0.5\n"  # the gold ranks reversed:
                   "A dog runs.\tStocks fell.\t4.5\nRain falls.\tIt rains.\t1.0\n")  # Spearman changes sign
    edited = evaluate()
    assert json.loads(result.read_text())["dataset_revision"] not in (revision, "local")
    assert "A_STS.json again: it was scored with other inputs (data: recorded 'local-" in edited.stderr
    assert row(edited) != row(first)
