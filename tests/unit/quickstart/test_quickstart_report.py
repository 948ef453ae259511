"""The quickstart's table, report, metrics file and plot."""

import json

import numpy as np
import pytest

from genvec.quickstart.evaluate import MethodResult
from genvec.quickstart.report import beats_every_baseline, format_table, render_report, wins, write_run

LABELS = np.repeat(np.arange(4), 4)  # 16 held-out queries, 4 responses


def _results(genvec_harmful: float = 0.1) -> list[MethodResult]:
    rng = np.random.default_rng(0)
    scores = {
        "genvec": {"retrieval_accuracy": 0.9, "retrieval_mrr": 0.95, "clustering_v_measure": 0.8,
                   "harmful_top5": genvec_harmful, "decoded_match": 0.7},
        "LM mean-pool": {"retrieval_accuracy": 0.1, "retrieval_mrr": 0.2, "clustering_v_measure": 0.5,
                         "harmful_top5": 0.9},
        "MiniLM": {"retrieval_accuracy": 0.2, "retrieval_mrr": 0.3, "clustering_v_measure": 0.6, "harmful_top5": 1.0},
    }
    return [MethodResult(name, values, rng.normal(size=(len(LABELS), 8))) for name, values in scores.items()]


def test_table_has_every_method_and_signed_margins():
    table = format_table(_results())
    lines = table.splitlines()
    assert lines[0].split() == ["metric", "genvec", "LM", "mean-pool", "MiniLM", "margin"]
    assert any(line.startswith("(a) retrieval acc@1") and line.endswith("+0.700") for line in lines)
    assert any(line.startswith("(c) harmful@5") and line.endswith("+0.800") for line in lines)
    decoded = next(line for line in lines if line.startswith("(d)"))
    assert decoded.split()[-2:] == ["-", "-"]  # measured for genvec only, so no margin either
    assert len({len(line) for line in lines if not line.startswith("(d)")}) <= 2


def test_wins_require_strictly_better_on_every_required_metric():
    assert all(wins(_results()).values())
    tied = wins(_results(genvec_harmful=0.9))
    assert tied["harmful_top5"] is False and tied["retrieval_accuracy"] is True


def test_wins_and_the_verdict_cover_only_the_metrics_measured():
    """The real-backbone mode measures retrieval only: no verdict on (b) and (c), and no loss for lacking them."""
    results = [MethodResult(r.name, {k: v for k, v in r.scores.items() if k.startswith("retrieval")},
                            r.query_embeddings) for r in _results()]
    assert wins(results) == {"retrieval_accuracy": True, "retrieval_mrr": True}
    assert "genvec beats every baseline on (a)." in render_report(results, {})
    # A required metric the baselines have and genvec lacks is lost, not skipped.
    del results[0].scores["retrieval_mrr"]
    assert wins(results) == {"retrieval_accuracy": True, "retrieval_mrr": False}
    assert not beats_every_baseline(wins(results))
    assert "genvec does NOT beat every baseline" in render_report(results, {})
    assert not beats_every_baseline({})  # nothing measured is no verdict of success


def test_write_run_writes_report_metrics_and_plot(tmp_path):
    summary = {"world": {"intents": 4}, "world LM held-out accuracy": 0.99}
    paths = write_run(tmp_path / "run", _results(), LABELS, summary, highlight=3)
    assert sorted(p.name for p in (tmp_path / "run").iterdir()) == ["embeddings.png", "metrics.json", "report.md"]
    metrics = json.loads(paths["metrics"].read_text())
    assert metrics["methods"]["genvec"]["retrieval_accuracy"] == 0.9
    assert metrics["margins"]["clustering_v_measure"] == pytest.approx(0.2)
    assert metrics["wins"] == {"retrieval_accuracy": True, "retrieval_mrr": True, "clustering_v_measure": True,
                               "harmful_top5": True}
    assert metrics["summary"]["world LM held-out accuracy"] == 0.99
    assert paths["plot"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    report = paths["report"].read_text()
    assert "- world: intents 4" in report
    assert "| (a) response retrieval, accuracy@1 | 0.900 | 0.100 | 0.200 | +0.700 |" in report
    assert "genvec beats every baseline" in report
    assert "![held-out query embeddings" in report


def test_report_says_so_when_genvec_loses():
    assert "does NOT beat" in render_report(_results(genvec_harmful=0.95), {})
