"""The quickstart's table, report, metrics file and plot."""

import json

import numpy as np
import pytest

from genvec.quickstart.evaluate import MethodResult
from genvec.quickstart.report import (
    beats_every_baseline,
    decoding_paragraph,
    format_spread,
    format_table,
    render_report,
    spread,
    spreads,
    wins,
    write_run,
)

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


def test_the_decoding_paragraph_reports_the_measures_that_were_taken():
    scores = {"queries": 60, "exact_match": 0.05, "round_trip": 0.8123}
    plain = decoding_paragraph(scores, "SmolLM2")
    assert plain.startswith("60 held-out queries' embeddings decoded: exact match with SmolLM2's own response 0.050; ")
    assert "round trip 0.812 (genvec's cosine" in plain and "MiniLM" not in plain
    measured = decoding_paragraph({**scores, "cosine_to_own_response": 0.131, "cosine_to_other_responses": 0.055,
                                   "own_response_nearest": 0.1}, "SmolLM2")
    assert measured.startswith(plain[:-1] + "; MiniLM cosine to the own response 0.131 (to other queries' responses "
                               "0.055); decoded text nearest to its own response among all 60: 0.100")
    assert "round trip" not in decoding_paragraph({"queries": 2, "exact_match": 1.0})


def test_a_spread_over_seeds_is_the_mean_the_range_and_the_sample_standard_deviation():
    assert spread([0.2, 0.4, 0.9]) == {"mean": pytest.approx(0.5), "min": 0.2, "max": 0.9,
                                       "std": pytest.approx((0.13) ** 0.5), "values": [0.2, 0.4, 0.9]}
    assert spread([0.7])["std"] == 0.0 and spread([0.7])["mean"] == 0.7
    seeds = [{"NQ": {"main_score": 0.1, "name": "ndcg"}, "count": 5, "loss": np.float32(0.5)},
             {"NQ": {"main_score": 0.3, "name": "ndcg"}, "count": 5, "loss": np.float32(0.25), "only_here": 0.9}]
    found = spreads(seeds)
    assert set(found) == {"NQ", "loss"} and set(found["NQ"]) == {"main_score"}  # no counts, names or lone keys
    assert found["NQ"]["main_score"]["mean"] == pytest.approx(0.2)
    assert found["NQ"]["main_score"]["std"] == pytest.approx(np.std([0.1, 0.3], ddof=1))
    assert found["loss"]["values"] == [0.5, 0.25]
    assert format_spread(spread([0.2, 0.4, 0.9])) == "0.500 (0.200-0.900, sd 0.361)"


def test_the_report_gives_the_spread_over_seeds_and_says_what_varies_between_cpus(tmp_path):
    one = render_report(_results(), {})
    assert "Seeds: one training seed" in one and "baseline columns do not" in one
    seeds = {"count": 3, "training_seeds": [0, 1, 2],
             "scores": {"retrieval_accuracy": spread([0.85, 0.9, 0.95]), "decoded_match": spread([0.6, 0.7, 0.8])}}
    paths = write_run(tmp_path / "run", _results(), LABELS, {}, seeds=seeds)
    report = paths["report"].read_text()
    assert "Seeds: 3 training seeds (0-2" in report
    assert "the baselines, which train nothing, were measured once" in report
    assert "| (a) response retrieval, accuracy@1 | 0.900 | 0.850-0.950 | 0.050 | 0.850, 0.900, 0.950 |" in report
    assert "vary from one CPU to another" in report
    assert json.loads(paths["metrics"].read_text())["seeds"]["scores"]["decoded_match"]["values"] == [0.6, 0.7, 0.8]
