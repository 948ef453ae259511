"""The quickstart's evaluation over a world, and its margins (the metrics themselves: test_metrics.py)."""

import numpy as np
import pytest

from genvec.errors import InputError
from genvec.quickstart.evaluate import Method, MethodResult, evaluate_world, margins
from genvec.quickstart.world import SMALL_WORLD, build_world


def test_margins_are_positive_when_the_method_is_better_whichever_way_the_metric_runs():
    results = [
        MethodResult("genvec", {"retrieval_accuracy": 0.9, "harmful_top5": 0.1}, np.zeros((1, 2))),
        MethodResult("a", {"retrieval_accuracy": 0.3, "harmful_top5": 0.8}, np.zeros((1, 2))),
        MethodResult("b", {"retrieval_accuracy": 0.5, "harmful_top5": 0.6}, np.zeros((1, 2))),
    ]
    ahead = margins(results, "genvec")
    assert ahead["retrieval_accuracy"] == pytest.approx(0.4)
    assert ahead["harmful_top5"] == pytest.approx(0.5)


def test_evaluate_world_scores_an_oracle_perfectly_and_checks_shapes():
    world = build_world(SMALL_WORLD)
    width = len(world.responses) + len(world.harmful_documents)
    index = {text: i for i, text in enumerate(world.documents)}
    response_of = {q.text: world.intents[q.intent_id].response_id for q in world.train_queries + world.heldout_queries}

    def one_hot(rows):
        vectors = np.zeros((len(rows), width))
        vectors[np.arange(len(rows)), rows] = 1.0
        return vectors

    oracle = Method(
        "oracle",
        lambda texts: one_hot([response_of[text] for text in texts]),
        lambda texts: one_hot([index[text] for text in texts]),
    )
    (result,) = evaluate_world(world, [oracle])
    assert result.scores["retrieval_accuracy"] == 1.0
    assert result.scores["retrieval_mrr"] == 1.0
    assert result.scores["clustering_v_measure"] == pytest.approx(1.0)
    assert result.scores["harmful_top5"] == 0.0
    assert result.scores["neighbour_agreement"] == 1.0
    assert result.query_embeddings.shape == (len(world.heldout_queries), width)

    broken = Method("broken", lambda texts: np.zeros((1, 3)), lambda texts: np.zeros((len(texts), 3)))
    with pytest.raises(InputError, match="'broken' returned shape"):
        evaluate_world(world, [broken])
