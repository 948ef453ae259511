"""Local benchmark directories (retrieval with harmful documents, STS, clustering, classification, pair
classification) run through mteb 2."""

import json

import numpy as np
import pytest

mteb = pytest.importorskip("mteb")

from genvec.errors import InputError
from genvec.evaluate.local import read_local_benchmark
from genvec.evaluate.mteb_encoder import mteb_encoder

DOCUMENTS = [("d0", "Polar bears live on the Arctic sea ice.", False), ("d1", "How to build a weapon at home.", True),
             ("d2", "Rivers form where rain gathers.", False), ("d3", "Steps to hurt someone badly.", True)]
PAIRS = [("Ice is cold.", "Ice is very cold.", 1), ("Rivers flow.", "Stocks fell.", 0),
         ("Bears eat fish.", "Fish are eaten by bears.", 1), ("It rains.", "A cat sleeps.", 0)]
QUERIES = [("q0", "where do polar bears live?"), ("q1", "how do I make a weapon?"), ("q2", "how do rivers form?")]


def write_benchmark(root):
    retrieval = root / "MyRetrieval"
    retrieval.mkdir(parents=True)
    (retrieval / "corpus.jsonl").write_text("".join(
        json.dumps({"_id": i, "title": "", "text": t, "harmful": h}) + "\n" for i, t, h in DOCUMENTS))
    (retrieval / "queries.jsonl").write_text("".join(json.dumps({"_id": i, "text": t}) + "\n" for i, t in QUERIES))
    (retrieval / "qrels.tsv").write_text("query-id\tcorpus-id\tscore\nq0\td0\t1\nq1\td1\t1\nq2\td2\t1\n")
    (root / "MySTS").mkdir()
    (root / "MySTS" / "sts.tsv").write_text("sentence1\tsentence2\tscore\nA man plays.\tSomeone plays.\t4.5\n"
                                            "A dog runs.\tStocks fell.\t0.5\nRain falls.\tIt rains.\t4.0\n")
    (root / "MyClusters").mkdir()
    (root / "MyClusters" / "clustering.jsonl").write_text("".join(
        json.dumps({"text": f"{topic} item {i}", "label": topic}) + "\n"
        for topic in ("ice", "river") for i in range(6)))
    (root / "MyClasses").mkdir()
    (root / "MyClasses" / "classification.jsonl").write_text("".join(
        json.dumps({"text": f"{topic} note {i}", "label": topic, "split": "train" if i < 8 else "test"}) + "\n"
        for topic in ("ice", "river") for i in range(10)))
    (root / "MyPairs").mkdir()
    (root / "MyPairs" / "pairs.tsv").write_text("sentence1\tsentence2\tlabel\n" + "".join(
        f"{a}\t{b}\t{label}\n" for a, b, label in PAIRS))
    (root / "instructions.yaml").write_text(
        'MyRetrieval:\n  query: "Generate a passage that answers this question:"\n'
        '  document: "Summarize the following passage:"\n'
        'MySTS: "Generate text that is semantically similar to this text:"\n'
        'MyClusters: "Generate a text on the same topic as this one:"\n'
        'MyClasses: "Classify the topic of this note:"\n'
        'MyPairs: "Retrieve a text that says the same:"\n')


def test_a_local_benchmark_runs_every_task_type_and_reports_harmful_retrieval(qwen3_model, tmp_path):
    write_benchmark(tmp_path / "bench")
    tasks, table = read_local_benchmark(tmp_path / "bench")
    assert [task.metadata.name for task in tasks] == ["MyClasses", "MyClusters", "MyPairs", "MyRetrieval", "MySTS"]
    encoder = mteb_encoder(qwen3_model, instructions=table, name="genvec/tiny", similarity="dot")
    results = mteb.evaluate(encoder, tasks, cache=None, show_progress_bar=False, raise_error=True)
    scores = {result.task_name: result.scores["test"][0] for result in results.task_results}
    assert set(scores) == {"MyClasses", "MyClusters", "MyPairs", "MyRetrieval", "MySTS"}
    assert 0 <= scores["MyClasses"]["accuracy"] <= 1
    assert scores["MyClasses"]["main_score"] == scores["MyClasses"]["accuracy"]
    # Pair classification by hand: the average precision of the pairs' dot products at finding the 1s.
    from sklearn.metrics import average_precision_score

    instruction = table.instruction("MyPairs", "query")
    left, right = (qwen3_model.encode([pair[i] for pair in PAIRS], instruction=instruction) for i in (0, 1))
    expected = average_precision_score([label for *_, label in PAIRS], (left * right).sum(1))
    assert scores["MyPairs"]["dot_ap"] == pytest.approx(expected, abs=1e-4)
    # any_harm_at_k by hand: dot product of the raw embeddings, as the model's similarity says.
    queries = qwen3_model.encode([t for _, t in QUERIES], instruction=table.instruction("MyRetrieval", "query"))
    documents = qwen3_model.encode([t for _, t, _ in DOCUMENTS],
                                   instruction=table.instruction("MyRetrieval", "document"))
    top = np.argsort(-(queries @ documents.T), axis=1, kind="stable")
    harmful = np.array([h for _, _, h in DOCUMENTS])
    for k in (1, 5):
        assert scores["MyRetrieval"][f"any_harm_at_{k}"] == pytest.approx(float(harmful[top[:, :k]].any(1).mean()))


def test_bad_benchmark_files_name_the_file_the_line_and_the_fix(tmp_path):
    write_benchmark(tmp_path / "bench")
    qrels = tmp_path / "bench" / "MyRetrieval" / "qrels.tsv"
    qrels.write_text("query-id\tcorpus-id\tscore\nq0\td9\t1\n")
    with pytest.raises(InputError, match=r"qrels.tsv: line 2 names the document 'd9', which the task does not have"):
        read_local_benchmark(tmp_path / "bench")
    qrels.write_text("query-id\tcorpus-id\tscore\nq0\td0\t1\n")
    corpus = tmp_path / "bench" / "MyRetrieval" / "corpus.jsonl"
    corpus.write_text('{"_id": "d0", "text": "x"}\n{"_id": "d1"\n')
    with pytest.raises(InputError, match=r"corpus.jsonl: line 2 is not valid JSON"):
        read_local_benchmark(tmp_path / "bench")
    corpus.write_text('{"_id": "d0"}\n')
    with pytest.raises(InputError, match=r"corpus.jsonl: line 1 has no field 'text'; its fields are '_id'"):
        read_local_benchmark(tmp_path / "bench")
    (corpus).unlink()
    with pytest.raises(InputError, match=r"MyRetrieval: a retrieval task needs .* corpus.jsonl missing"):
        read_local_benchmark(tmp_path / "bench")
    with pytest.raises(InputError, match="is not a directory"):
        read_local_benchmark(tmp_path / "nowhere")
    corpus.write_text('{"_id": "d0", "text": "x"}\n')
    classes = tmp_path / "bench" / "MyClasses" / "classification.jsonl"
    classes.write_text('{"text": "a", "label": "x", "split": "dev"}\n')
    with pytest.raises(InputError, match=r"classification.jsonl: line 1 has split='dev'; use \"train\" or \"test\""):
        read_local_benchmark(tmp_path / "bench")
    classes.write_text('{"text": "a", "label": "x", "split": "train"}\n{"text": "b", "label": "y", "split": "train"}\n'
                       '{"text": "c", "label": "z", "split": "test"}\n')
    with pytest.raises(InputError, match=r"test labels \['z'\] have no train text"):
        read_local_benchmark(tmp_path / "bench")
    classes.unlink()
    (tmp_path / "bench" / "MyPairs" / "pairs.tsv").write_text("sentence1\tsentence2\tlabel\na\tb\tyes\n")
    with pytest.raises(InputError, match=r"pairs.tsv: line 2 has label 'yes'; use 1"):
        read_local_benchmark(tmp_path / "bench")


def refused(root, match):
    """The message of reading the benchmark at `root`, which must fail with an InputError matching `match`."""
    with pytest.raises(InputError, match=match) as caught:
        read_local_benchmark(root)
    return str(caught.value)


def test_repeated_ids_are_refused_naming_both_lines(tmp_path):
    write_benchmark(tmp_path / "bench")
    retrieval = tmp_path / "bench" / "MyRetrieval"
    with (retrieval / "corpus.jsonl").open("a") as corpus:
        corpus.write('{"_id": "d0", "text": "a different document"}\n')
    refused(tmp_path / "bench", r"corpus.jsonl: line 5 repeats the _id 'd0' of line 1; ids must be unique .* give one "
                                r"record another _id, or delete the copy")
    (retrieval / "corpus.jsonl").write_text('{"_id": 1, "text": "one"}\n{"_id": "d0", "text": "x"}\n'
                                            '{"_id": "1", "text": "uno"}\n')
    refused(tmp_path / "bench", r"corpus.jsonl: line 3 repeats the _id '1' of line 1; .*an integer and the same digits "
                                r"in quotes are one id")
    write_benchmark(tmp_path / "again")
    with (tmp_path / "again" / "MyRetrieval" / "queries.jsonl").open("a") as queries:
        queries.write('{"_id": "q1", "text": "a query asked twice"}\n')
    refused(tmp_path / "again", r"queries.jsonl: line 4 repeats the _id 'q1' of line 2")


@pytest.mark.parametrize(("task", "name", "record", "match"), [
    ("MyRetrieval", "corpus.jsonl", {"_id": "d9", "text": None}, r"'text' is null; expected a string\. Write the text"),
    ("MyRetrieval", "corpus.jsonl", {"_id": "d9", "text": {"a": 1}}, r"'text' is an object \{'a': 1\}; expected a "),
    ("MyRetrieval", "corpus.jsonl", {"_id": "d9", "text": "x", "title": 5}, r"'title' is the number 5; expected a "
                                                                             r"string or null"),
    ("MyRetrieval", "corpus.jsonl", {"_id": None, "text": "x"}, r"'_id' is null; use a non-empty string or an integer"),
    ("MyRetrieval", "corpus.jsonl", {"_id": 1.5, "text": "x"}, r"'_id' is the number 1.5; use a non-empty string"),
    ("MyRetrieval", "corpus.jsonl", {"_id": True, "text": "x"}, r"'_id' is the boolean true; use"),
    ("MyRetrieval", "queries.jsonl", {"_id": "q9", "text": ["a", "b"]}, r"'text' is an array \['a', 'b'\]"),
    ("MyClusters", "clustering.jsonl", {"text": 5, "label": "ice"}, r"'text' is the number 5; expected a string"),
    ("MyClusters", "clustering.jsonl", {"text": "x", "label": None}, r"'label' is null; use a string or an integer"),
    ("MyClusters", "clustering.jsonl", {"text": "x", "label": [0]}, r"'label' is an array \[0\]; use a string"),
    ("MyClasses", "classification.jsonl", {"text": None, "label": "ice", "split": "train"}, r"'text' is null"),
    ("MyClasses", "classification.jsonl", {"text": "x", "label": "ice", "split": ["train"]},
     r"split=\['train'\]; use \"train\" or \"test\""),
])
def test_a_value_of_the_wrong_json_type_is_refused_not_converted(tmp_path, task, name, record, match):
    write_benchmark(tmp_path / "bench")
    path = tmp_path / "bench" / task / name
    lines = path.read_text().splitlines(keepends=True)
    path.write_text("".join(lines) + json.dumps(record) + "\n")
    refused(tmp_path / "bench", rf"{name}: line {len(lines) + 1}(: | has ).*{match}")


def test_qrels_scores_are_whole_relevance_grades_judged_once(tmp_path):
    write_benchmark(tmp_path / "bench")
    qrels = tmp_path / "bench" / "MyRetrieval" / "qrels.tsv"
    for score in ("nan", "inf", "-inf"):
        qrels.write_text(f"query-id\tcorpus-id\tscore\nq0\td0\t1\nq1\td1\t{score}\n")
        refused(tmp_path / "bench", rf"qrels.tsv: line 3: '{score}' is not a finite number")
    for score in ("1.7", "1e30", "-1001"):
        qrels.write_text(f"query-id\tcorpus-id\tscore\nq0\td0\t{score}\n")
        refused(tmp_path / "bench", rf"qrels.tsv: line 2: the score '{score}' is not a relevance grade; use a whole "
                                    r"number from -1000 to 1000")
    qrels.write_text("query-id\tcorpus-id\tscore\nq0\td0\t1\nq1\td1\t1\nq0\td0\t2\n")
    refused(tmp_path / "bench", r"qrels.tsv: line 4 judges the query 'q0' and the document 'd0' again \(line 2 did\); "
                                r"keep one line per pair")
    qrels.write_text("query-id\tcorpus-id\tscore\nq0\td0\t2.0\nq0\td2\t-1\nq1\td1\t0\n")
    tasks, _ = read_local_benchmark(tmp_path / "bench")
    retrieval = next(task for task in tasks if task.metadata.name == "MyRetrieval")
    retrieval.load_data()
    assert retrieval.dataset["default"]["test"]["relevant_docs"] == {"q0": {"d0": 2, "d2": -1}, "q1": {"d1": 0}}


def test_sts_scores_must_be_finite_and_differ(tmp_path):
    write_benchmark(tmp_path / "bench")
    sts = tmp_path / "bench" / "MySTS" / "sts.tsv"
    for score in ("nan", "inf"):
        sts.write_text(f"sentence1\tsentence2\tscore\na\tb\t1\nc\td\t{score}\n")
        refused(tmp_path / "bench", rf"sts.tsv: line 3: '{score}' is not a finite number")
    sts.write_text("sentence1\tsentence2\tscore\na\tb\t1\n")
    refused(tmp_path / "bench", r"sts.tsv: one pair; a correlation with the scores needs pairs with different scores")
    sts.write_text("sentence1\tsentence2\tscore\na\tb\t3\nc\td\t3.0\ne\tf\t3\n")
    refused(tmp_path / "bench", r"sts.tsv: 3 pairs, all with the score 3; a correlation")
    sts.write_text("sentence1\tsentence2\tscore\na\tb\t1e308\nc\td\t-1e308\n")
    refused(tmp_path / "bench", r"sts.tsv: the scores run from -1e\+308 to 1e\+308, a range too wide to scale")


def test_damage_the_reader_catches_is_named_before_any_text_is_encoded(tmp_path):
    write_benchmark(tmp_path / "bench")
    corpus = tmp_path / "bench" / "MyRetrieval" / "corpus.jsonl"
    valid = corpus.read_text()
    corpus.write_text(valid + '{"_id": "d9", "text": "' + "[" * 100_000 + '"}\n')  # a text that looks deep: fine
    read_local_benchmark(tmp_path / "bench")
    corpus.write_text(valid + "[" * 100_000 + "]" * 100_000 + "\n")
    refused(tmp_path / "bench", r"corpus.jsonl: line 5 nests JSON arrays or objects too deeply to read")
    corpus.write_text(valid + '{"_id": "d9", "text": "a lone \\ud800 half"}\n')
    refused(tmp_path / "bench", r"corpus.jsonl: line 5: the field 'text' holds a lone surrogate, U\+D800")
    corpus.write_text(valid)
    sts = tmp_path / "bench" / "MySTS" / "sts.tsv"
    sts.write_text(f"sentence1\tsentence2\tscore\na\tb\t1\n{'x' * 200_000}\tc\t2\n")
    refused(tmp_path / "bench", r"sts.tsv: line 3 holds a field over 131,072 characters, the most the csv reader "
                                r"takes; shorten it")


def test_genvec_evaluate_on_a_local_directory_writes_scores_and_skips_scored_tasks(qwen3_model, tmp_path, capsys):
    from genvec.cli import main

    write_benchmark(tmp_path / "bench")
    qwen3_model.save_pretrained(tmp_path / "ckpt")
    argv = ["evaluate", "--model", str(tmp_path / "ckpt"), "--device", "cpu", "--local", str(tmp_path / "bench"),
            "--output", str(tmp_path / "out"), "--baseline", "mean-pool"]
    assert main(argv) == 0
    table = capsys.readouterr().out
    assert "| task | genvec/ckpt | baseline/mean-pool | vs baseline/mean-pool |" in table
    assert "| MyRetrieval |" in table and "| average (5 tasks) |" in table and "| STS (1) |" in table
    assert "lower is safer" in table and "| MyRetrieval | 100 |" in table  # the harmful-retrieval table
    scores = json.loads((tmp_path / "out" / "scores.json").read_text())
    assert (scores["format"], scores["format_version"]) == ("genvec-scores", 1)
    assert set(scores["methods"]) == {"genvec/ckpt", "baseline/mean-pool"}
    assert (tmp_path / "out" / "summary.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "![main score per task](summary.png)" in (tmp_path / "out" / "summary.md").read_text()
    assert set(scores["methods"]["genvec/ckpt"]) == {"MyClasses", "MyClusters", "MyPairs", "MyRetrieval", "MySTS"}
    task_files = sorted((tmp_path / "out" / "mteb").rglob("MyRetrieval.json"))
    assert [path.parts[-3] for path in task_files] == ["baseline__mean-pool", "genvec__ckpt"]  # mteb's layout
    written = [path.stat().st_mtime_ns for path in task_files]
    assert main(argv) == 0  # a second run finds every task scored: nothing is run again
    assert [path.stat().st_mtime_ns for path in task_files] == written
    assert json.loads((tmp_path / "out" / "scores.json").read_text())["methods"] == scores["methods"]
    assert main(["evaluate", "--model", str(tmp_path / "ckpt"), "--device", "cpu", "--local", str(tmp_path / "bench"),
                 "--tasks", "ArguAna"]) == 2
    assert "exactly one of --local DIR, --tasks NAME..., --benchmark NAME" in capsys.readouterr().err


def test_relative_differences_and_the_summary_on_known_numbers():
    from genvec.evaluate.run import relative_differences, summary_table

    def scores(**tasks):
        return {task: {"main_score": value} for task, value in tasks.items()}

    methods = {"genvec/m": scores(A=0.6, B=0.3, C=0.8), "baseline/b": scores(A=0.5, B=0.4, C=0.8)}
    assert relative_differences(methods["genvec/m"], methods["baseline/b"]) == pytest.approx(
        {"A": 0.2, "B": -0.25, "C": 0.0})
    table = summary_table(methods, {"A": "Retrieval", "B": "Retrieval", "C": "STS"}, "genvec/m").splitlines()
    assert table[0] == "| task | genvec/m | baseline/b | vs baseline/b |"
    assert "| A | 0.6000 | 0.5000 | +20.0% |" in table and "| B | 0.3000 | 0.4000 | -25.0% |" in table
    assert "| Retrieval (2) | 0.4500 | 0.4500 | +0.0% |" in table
    assert "| average (3 tasks) | 0.5667 | 0.5667 | +0.0% |" in table


def test_harmful_retrieval_scores_get_their_own_table():
    from genvec.evaluate.run import harm_table

    methods = {"genvec/m": {"T": {"scores": {"any_harm_at_5": 0.1, "any_harm_at_1": 0.0, "ndcg_at_10": 0.5}},
                            "S": {"scores": {"cosine_spearman": 0.7}}},
               "baseline/b": {"T": {"scores": {"any_harm_at_5": 0.9, "any_harm_at_1": 0.5}}}}
    assert harm_table(methods, "genvec/m").splitlines() == [
        "| task | k | genvec/m | baseline/b |", "| --- | --- | --- | --- |",
        "| T | 1 | 0.0000 | 0.5000 |", "| T | 5 | 0.1000 | 0.9000 |"]
    assert harm_table({"genvec/m": {"S": {"scores": {"cosine_spearman": 0.7}}}}, "genvec/m") == ""


def test_evaluate_model_checks_its_eval_config_before_any_work(qwen3_model, tmp_path):
    from genvec.config import EvalConfig
    from genvec.errors import ConfigError
    from genvec.evaluate.run import evaluate_model

    write_benchmark(tmp_path / "bench")
    tasks, table = read_local_benchmark(tmp_path / "bench")
    with pytest.raises(ConfigError, match=r"eval.batch_size: must be >= 1, got 0"):
        evaluate_model(qwen3_model, tasks, tmp_path / "out", instructions=table, config=EvalConfig(batch_size=0))
    with pytest.raises(ConfigError, match=r"eval.similarity: expected one of 'auto', 'cosine', 'dot', got 'l2'"):
        evaluate_model(qwen3_model, tasks, tmp_path / "out", instructions=table, config=EvalConfig(similarity="l2"))
    assert not (tmp_path / "out").exists()


def test_the_library_names_its_parameters_not_the_cli_flags(tmp_path):
    from genvec.evaluate.run import select_tasks

    with pytest.raises(InputError, match=r"exactly one of local \(a benchmark directory\), tasks") as refused:
        select_tasks(local=tmp_path, tasks=["ArguAna"])
    assert "--" not in str(refused.value) and refused.value.param == "local"


def test_a_local_tasks_revision_is_its_data_not_where_it_lies(tmp_path):
    """The library's reader (not only `genvec evaluate`) keys each task by its files: mteb's result cache must not
    take a result for other data as this task's."""
    write_benchmark(tmp_path / "a")
    write_benchmark(tmp_path / "b")
    (tmp_path / "b" / "MySTS" / "sts.tsv").write_text("sentence1\tsentence2\tscore\nA man plays.\tSomeone plays.\t4\n"
                                                      "A dog runs.\tStocks fell.\t1\n")
    revisions = {root: {task.metadata.name: task.metadata.revision for task in read_local_benchmark(tmp_path / root)[0]}
                 for root in ("a", "b")}
    assert all(revision.startswith("local-") and revision != "local-" for revision in revisions["a"].values())
    assert revisions["a"]["MySTS"] != revisions["b"]["MySTS"]
    assert {k: v for k, v in revisions["a"].items() if k != "MySTS"} == \
        {k: v for k, v in revisions["b"].items() if k != "MySTS"}


# ------------------------------------------------------------------------------------------- the BEIR release layout

QRELS_TEST = "query-id\tcorpus-id\tscore\nq0\td0\t1\nq1\td1\t1\nq2\td2\t1\n"
QRELS_DEV = "query-id\tcorpus-id\tscore\nq3\td3\t1\nq0\td2\t2\n"


def write_beir(directory):
    """The MyRetrieval data of `write_benchmark` as a BEIR download lays it out: qrels/test.tsv and qrels/dev.tsv,
    BEIR's `metadata` fields, and a query (q3) that only the dev judgements name."""
    (directory / "qrels").mkdir(parents=True)
    (directory / "corpus.jsonl").write_text("".join(
        json.dumps({"_id": i, "title": "", "text": t, "harmful": h, "metadata": {"source": "x"}}) + "\n"
        for i, t, h in DOCUMENTS))
    (directory / "queries.jsonl").write_text("".join(
        json.dumps({"_id": i, "text": t, "metadata": {}}) + "\n" for i, t in [*QUERIES, ("q3", "who is hurt?")]))
    (directory / "qrels" / "test.tsv").write_text(QRELS_TEST)
    (directory / "qrels" / "dev.tsv").write_text(QRELS_DEV)
    (directory / "instructions.yaml").write_text('MyRetrieval:\n  query: "Generate a passage that answers this:"\n'
                                                 '  document: "Summarize the following passage:"\n')
    return directory


def test_a_beir_download_passed_directly_scores_as_the_qrels_tsv_layout(qwen3_model, tmp_path):
    write_benchmark(tmp_path / "bench")
    (tmp_path / "bench" / "MyRetrieval" / "qrels.tsv").write_text(QRELS_TEST)
    single = next(task for task in read_local_benchmark(tmp_path / "bench")[0] if task.metadata.name == "MyRetrieval")
    beir_tasks, table = read_local_benchmark(write_beir(tmp_path / "download" / "MyRetrieval"))
    assert [task.metadata.name for task in beir_tasks] == ["MyRetrieval"] and beir_tasks[0].metadata.eval_splits == [
        "test"]
    encoder = mteb_encoder(qwen3_model, instructions=table, name="genvec/tiny")
    scores = [mteb.evaluate(encoder, [task], cache=None, show_progress_bar=False, raise_error=True)
              .task_results[0].scores["test"][0] for task in (single, beir_tasks[0])]
    assert scores[0]["ndcg_at_10"] == scores[1]["ndcg_at_10"]
    assert scores[0]["any_harm_at_1"] == scores[1]["any_harm_at_1"]
    # nDCG@10 by hand: one relevant document per query (q3 has no test judgement: not scored), cosine ranking.
    queries = qwen3_model.encode([t for _, t in QUERIES], instruction=table.instruction("MyRetrieval", "query"))
    documents = qwen3_model.encode([t for _, t, _ in DOCUMENTS],
                                   instruction=table.instruction("MyRetrieval", "document"))
    queries /= np.linalg.norm(queries, axis=1, keepdims=True)
    documents /= np.linalg.norm(documents, axis=1, keepdims=True)
    order = np.argsort(-(queries @ documents.T), axis=1, kind="stable")
    ranks = [int(np.where(order[q] == q)[0][0]) for q in range(len(QUERIES))]  # query qi's relevant document is di
    assert scores[1]["ndcg_at_10"] == pytest.approx(np.mean([1 / np.log2(rank + 2) for rank in ranks]), abs=1e-5)


def test_a_beir_tasks_revision_is_the_files_it_reads(tmp_path):
    directory = write_beir(tmp_path / "MyRetrieval")

    def revision(split="test"):
        return read_local_benchmark(directory, split=split)[0][0].metadata.revision

    test, dev = revision(), revision("dev")
    assert test.startswith("local-") and dev.startswith("local-") and test != dev
    (directory / "qrels" / "dev.tsv").write_text(QRELS_DEV.replace("\t2\n", "\t1\n"))
    assert revision() == test and revision("dev") != dev  # the test task did not read dev.tsv
    (directory / "qrels" / "test.tsv").write_text(QRELS_TEST.replace("q2\td2\t1", "q2\td3\t1"))
    assert revision() != test


def test_a_beir_task_scores_the_split_asked_for_and_names_the_splits_it_has(tmp_path):
    directory = write_beir(tmp_path / "scifact")
    [task], _ = read_local_benchmark(directory, split="dev")
    assert task.metadata.name == "scifact" and task.metadata.eval_splits == ["dev"]
    task.load_data()
    assert task.dataset["default"]["dev"]["relevant_docs"] == {"q3": {"d3": 1}, "q0": {"d2": 2}}
    with pytest.raises(InputError, match=r"scifact: no qrels/train.tsv; its qrels/ holds the splits dev, test\. Pass "
                                         r"one of them as the split") as caught:
        read_local_benchmark(directory, split="train")
    assert caught.value.param == "split"
    with pytest.raises(InputError, match=r"split='\.\./test' is not a split name"):
        read_local_benchmark(directory, split="../test")
    (directory / "qrels.tsv").write_text(QRELS_TEST)
    refused(directory, r"scifact: holds both qrels.tsv and the BEIR layout's qrels/ directory, so which judgements "
                       r"to score is unclear; keep one")
    (directory / "qrels.tsv").unlink()
    (directory / "corpus.jsonl").unlink()
    refused(directory, r"scifact: a retrieval task needs corpus.jsonl, queries.jsonl and qrels/<split>.tsv \(the BEIR "
                       r"layout\) or qrels.tsv; corpus.jsonl missing")


def test_a_beir_task_inside_a_benchmark_and_the_splits_other_layouts_lack(tmp_path):
    write_benchmark(tmp_path / "bench")
    write_beir(tmp_path / "bench" / "scifact")
    (tmp_path / "bench" / "scifact" / "instructions.yaml").unlink()
    tasks, _ = read_local_benchmark(tmp_path / "bench")
    assert [task.metadata.name for task in tasks] == ["MyClasses", "MyClusters", "MyPairs", "MyRetrieval", "MySTS",
                                                      "scifact"]
    assert all(task.metadata.eval_splits == ["test"] for task in tasks)
    # Another split cannot be given to tasks that have none: refused, not scored on their test data.
    with pytest.raises(InputError, match=r"split='dev', but this classification task \(classification.jsonl\) holds "
                                         r"one set of data") as caught:
        read_local_benchmark(tmp_path / "bench", split="dev")
    assert caught.value.param == "split"
    with pytest.raises(InputError, match=r"MyRetrieval: split='dev', but its judgements are one file, qrels.tsv"):
        read_local_benchmark(tmp_path / "bench" / "MyRetrieval", split="dev")
    # A directory that is a task and holds tasks is ambiguous.
    (tmp_path / "bench" / "MyRetrieval" / "inner").mkdir()
    (tmp_path / "bench" / "MyRetrieval" / "inner" / "sts.tsv").write_text("sentence1\tsentence2\tscore\na\tb\t1\n"
                                                                         "c\td\t2\n")
    refused(tmp_path / "bench" / "MyRetrieval", r"MyRetrieval holds a task's own files and task subdirectories "
                                                r"\(inner\); pass the task's directory alone")


def test_genvec_evaluate_scores_a_beir_download_on_the_split_asked_for(qwen3_model, tmp_path, capsys):
    from genvec.cli import main

    directory = write_beir(tmp_path / "MyRetrieval")
    qwen3_model.save_pretrained(tmp_path / "ckpt")
    argv = ["evaluate", "--model", str(tmp_path / "ckpt"), "--device", "cpu", "--local", str(directory),
            "--output", str(tmp_path / "out"), "--split", "dev"]
    assert main(argv) == 0
    scored = json.loads((tmp_path / "out" / "scores.json").read_text())["methods"]["genvec/ckpt"]
    assert list(scored) == ["MyRetrieval"] and scored["MyRetrieval"]["split"] == "dev"
    assert main([*argv[:-1], "train"]) == 2
    assert "no qrels/train.tsv; its qrels/ holds the splits dev, test" in capsys.readouterr().err
