"""`evaluate_model` reuses a cached mteb result only when everything it was scored with is the same: the model (mteb's
path), the task's data, the instructions and the similarity; a torn result file is scored again; one evaluation at a
time writes to an output."""

import json
import logging

import pytest

pytest.importorskip("mteb")

from genvec.config import EvalConfig
from genvec.errors import BusyError
from genvec.evaluate.run import RESULT_RECORD, evaluate_model, select_tasks
from genvec.files import exclusive_lock, lock_file_for

PAIRS = [("A man plays.", "Someone plays."), ("A dog runs.", "Stocks fell."), ("Rain falls.", "It rains."),
         ("Ice melts.", "A cat sleeps."), ("Bears eat fish.", "Fish are eaten by bears.")]
SCORES = (4.5, 0.5, 4.0, 1.0, 3.0)


def write_benchmark(root, scores=SCORES, instruction="Generate text that is similar to this text:"):
    (root / "S").mkdir(parents=True, exist_ok=True)
    (root / "S" / "sts.tsv").write_text("sentence1\tsentence2\tscore\n" + "".join(
        f"{a}\t{b}\t{score}\n" for (a, b), score in zip(PAIRS, scores)))
    (root / "instructions.yaml").write_text(f'S: "{instruction}"\n')


def evaluate(model, bench, output, similarity="auto"):
    tasks, table = select_tasks(local=bench)
    return evaluate_model(model, tasks, output, instructions=table, config=EvalConfig(similarity=similarity),
                          show_progress=False)


def result_file(output):
    (path,) = (output / "mteb").rglob("S.json")
    return path


def rescored(caplog) -> list[str]:
    """The messages saying that a cached result is scored again."""
    return [record.getMessage() for record in caplog.records
            if record.name == "genvec.evaluate.run" and record.getMessage().startswith("scoring ")]


@pytest.fixture
def first_run(qwen3_model, tmp_path):
    """A benchmark scored once into tmp_path / "out"; (bench, output, main score, result file's mtime)."""
    write_benchmark(tmp_path / "bench")
    result = evaluate(qwen3_model, tmp_path / "bench", tmp_path / "out")
    written = result_file(tmp_path / "out").stat().st_mtime_ns
    return tmp_path / "bench", tmp_path / "out", result.main_scores["S"], written


def test_an_unchanged_rerun_reuses_the_cached_result(qwen3_model, first_run, caplog):
    bench, output, score, written = first_run
    with caplog.at_level(logging.WARNING, logger="genvec.evaluate.run"):
        again = evaluate(qwen3_model, bench, output)
    assert result_file(output).stat().st_mtime_ns == written and not rescored(caplog)
    assert again.main_scores["S"] == score


def test_changed_benchmark_data_is_scored_again(qwen3_model, first_run, tmp_path, caplog):
    bench, output, score, _ = first_run
    write_benchmark(bench, scores=SCORES[::-1])  # the same texts, other gold scores
    with caplog.at_level(logging.WARNING, logger="genvec.evaluate.run"):
        again = evaluate(qwen3_model, bench, output)
    fresh = evaluate(qwen3_model, bench, tmp_path / "fresh")
    assert again.main_scores["S"] == fresh.main_scores["S"] != score
    assert json.loads((output / "scores.json").read_text())["methods"]["genvec/model"]["S"]["main_score"] == (
        fresh.main_scores["S"])
    (message,) = rescored(caplog)
    assert "S.json again" in message and "data: recorded 'local-" in message


def test_a_cached_nan_result_does_not_outlive_the_fixed_data(qwen3_model, first_run, tmp_path):
    bench, output, _, _ = first_run
    path = result_file(output)  # what a run over broken data (a nan gold score) left in the cache
    document = json.loads(path.read_text())
    document["scores"]["test"][0]["main_score"] = float("nan")
    path.write_text(json.dumps(document))
    write_benchmark(bench, scores=(4.5, 0.5, 4.0, 1.0, 2.0))  # the data, fixed
    again = evaluate(qwen3_model, bench, output)
    assert again.main_scores["S"] == evaluate(qwen3_model, bench, tmp_path / "fresh").main_scores["S"]


def test_changed_instructions_are_scored_again(qwen3_model, first_run, tmp_path, caplog):
    bench, output, _, written = first_run
    write_benchmark(bench, instruction="Summarize this sentence:")
    with caplog.at_level(logging.WARNING, logger="genvec.evaluate.run"):
        again = evaluate(qwen3_model, bench, output)
    assert result_file(output).stat().st_mtime_ns != written
    assert again.main_scores["S"] == evaluate(qwen3_model, bench, tmp_path / "fresh").main_scores["S"]
    (message,) = rescored(caplog)
    assert "instructions: recorded" in message and "Summarize this sentence:" in message


def test_another_similarity_is_scored_again(qwen3_model, first_run, tmp_path, caplog):
    bench, output, _, written = first_run
    with caplog.at_level(logging.WARNING, logger="genvec.evaluate.run"):
        again = evaluate(qwen3_model, bench, output, similarity="dot")
    assert result_file(output).stat().st_mtime_ns != written
    assert again.main_scores["S"] == evaluate(qwen3_model, bench, tmp_path / "fresh", "dot").main_scores["S"]
    assert json.loads((output / "scores.json").read_text())["similarity"] == "dot"
    (message,) = rescored(caplog)
    assert "similarity: recorded 'cosine', now 'dot'" in message


@pytest.mark.parametrize("cut", [0, 200])
def test_a_torn_result_file_is_scored_again(qwen3_model, first_run, caplog, cut):
    bench, output, score, _ = first_run
    path = result_file(output)
    path.write_text(path.read_text()[:cut])  # what a kill inside mteb's open("w") + json.dump leaves
    with caplog.at_level(logging.WARNING, logger="genvec.evaluate.run"):
        again = evaluate(qwen3_model, bench, output)
    assert again.main_scores["S"] == score
    assert json.loads(path.read_text())["task_name"] == "S"
    (message,) = rescored(caplog)
    assert "its file is damaged" in message


def test_a_result_no_record_names_is_scored_again(qwen3_model, first_run, caplog):
    bench, output, score, written = first_run
    (output / "mteb" / RESULT_RECORD).unlink()  # an output an older genvec wrote
    with caplog.at_level(logging.WARNING, logger="genvec.evaluate.run"):
        again = evaluate(qwen3_model, bench, output)
    assert result_file(output).stat().st_mtime_ns != written and again.main_scores["S"] == score
    assert RESULT_RECORD in rescored(caplog)[0]


def test_a_second_evaluation_into_one_output_is_refused_while_one_runs(qwen3_model, tmp_path):
    write_benchmark(tmp_path / "bench")
    output = tmp_path / "out"
    busy = r"the evaluation output .*out is being written by process \d+"
    with exclusive_lock(lock_file_for(output.resolve()), "the first evaluation"), pytest.raises(BusyError, match=busy):
        evaluate(qwen3_model, tmp_path / "bench", output)
    assert not (output / "mteb").exists() and not (output / "scores.json").exists()
    assert evaluate(qwen3_model, tmp_path / "bench", output).main_scores  # once it is released


def test_the_cost_per_query_measured_while_scoring_is_kept_for_a_cached_result(qwen3_model, first_run):
    bench, output, _, written = first_run
    cost = json.loads((output / "scores.json").read_text())["seconds_per_query"]["genvec/model"]["S"]
    assert cost > 0 and "Cost per query" in (output / "summary.md").read_text()
    evaluate(qwen3_model, bench, output)  # nothing is encoded: the cost is the one measured when S was scored
    assert result_file(output).stat().st_mtime_ns == written
    assert json.loads((output / "scores.json").read_text())["seconds_per_query"]["genvec/model"]["S"] == cost
    (measured,) = json.loads((output / "mteb" / RESULT_RECORD).read_text())["measures"].values()
    assert measured == {"seconds_per_query": cost, "queries": 2 * len(PAIRS)}  # both sides of every pair
