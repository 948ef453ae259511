"""Quickstart metrics on hand-made embeddings, the mean-pooling baseline, and the evaluation over a world."""

import numpy as np
import pytest
from transformers import AutoModelForCausalLM, AutoTokenizer

from genvec.errors import InputError
from genvec.quickstart.evaluate import (
    Method,
    MethodResult,
    clustering_v_measure,
    decoded_match_share,
    evaluate_world,
    harmful_top_k_share,
    margins,
    mean_pooled_encoder,
    neighbour_agreement,
    retrieval_scores,
)
from genvec.quickstart.world import SMALL_WORLD, build_world


def test_retrieval_scores_by_hand():
    documents = np.eye(3)
    queries = np.array(
        [
            [1.0, 0.1, 0.0],  # relevant: doc 0, ranked 1st
            [0.2, 1.0, 0.5],  # relevant: doc 0, ranked 3rd (after docs 1 and 2)
            [0.0, 0.3, 1.0],  # relevant: doc 1, ranked 2nd (after doc 2)
        ]
    )
    accuracy, mrr = retrieval_scores(queries, documents, [0, 0, 1])
    assert accuracy == pytest.approx(1 / 3)
    assert mrr == pytest.approx((1 + 1 / 3 + 1 / 2) / 3)


def test_retrieval_is_cosine_and_ties_count_against_the_query():
    documents = np.array([[1.0, 0.0], [2.0, 0.0], [0.0, 1.0]])  # docs 0 and 1 point the same way
    accuracy, mrr = retrieval_scores(np.array([[5.0, 0.0]]), documents, [0])
    assert accuracy == 0.0
    assert mrr == pytest.approx(0.5)


def test_harmful_top_k_share():
    documents = np.eye(4)  # document 3 is harmful
    harmful = np.array([False, False, False, True])
    queries = np.array([[0.0, 0.0, 0.1, 1.0], [1.0, 0.5, 0.2, 0.1], [1.0, 0.5, 0.0, 0.0]])
    assert harmful_top_k_share(queries, documents, harmful, k=1) == pytest.approx(1 / 3)
    # Queries 1 and 2 rank the harmful document 4th (query 2 ties it with document 2, which comes first).
    assert harmful_top_k_share(queries, documents, harmful, k=3) == pytest.approx(1 / 3)
    assert harmful_top_k_share(queries, documents, harmful, k=4) == pytest.approx(1.0)
    with pytest.raises(InputError, match="0 queries"):
        harmful_top_k_share(np.zeros((0, 4)), documents, harmful)


def test_v_measure_is_one_for_separated_clusters_and_low_for_mixed_ones():
    rng = np.random.default_rng(0)
    centres = np.eye(4) * 10
    labels = np.repeat(np.arange(4), 10)
    separated = centres[labels] + rng.normal(scale=0.1, size=(40, 4))
    assert clustering_v_measure(separated, labels) == pytest.approx(1.0)
    mixed = centres[rng.permutation(labels)] + rng.normal(scale=0.1, size=(40, 4))
    assert clustering_v_measure(mixed, labels) < 0.3


def test_neighbour_agreement():
    references = np.array([[1.0, 0.0], [0.0, 1.0]])
    queries = np.array([[0.9, 0.1], [0.2, 0.8], [0.7, 0.3]])
    assert neighbour_agreement(queries, [5, 6, 6], references, [5, 6]) == pytest.approx(2 / 3)


def test_decoded_match_share_ignores_whitespace_only():
    assert decoded_match_share(["a  b", "c", "d."], ["a b", "c ", "d"]) == pytest.approx(2 / 3)
    with pytest.raises(InputError, match="same non-zero number"):
        decoded_match_share(["a"], ["a", "b"])


def test_margins_are_positive_when_the_method_is_better_whichever_way_the_metric_runs():
    results = [
        MethodResult("genvec", {"retrieval_accuracy": 0.9, "harmful_top5": 0.1}, np.zeros((1, 2))),
        MethodResult("a", {"retrieval_accuracy": 0.3, "harmful_top5": 0.8}, np.zeros((1, 2))),
        MethodResult("b", {"retrieval_accuracy": 0.5, "harmful_top5": 0.6}, np.zeros((1, 2))),
    ]
    ahead = margins(results, "genvec")
    assert ahead["retrieval_accuracy"] == pytest.approx(0.4)
    assert ahead["harmful_top5"] == pytest.approx(0.5)


def test_mean_pooling_excludes_pads(backbone_dirs):
    directory = backbone_dirs["qwen3"]
    backbone = AutoModelForCausalLM.from_pretrained(directory).eval()
    tokenizer = AutoTokenizer.from_pretrained(directory)
    encode = mean_pooled_encoder(backbone, tokenizer)
    texts = ["the river", "a much longer text about the river and the city"]
    together = encode(texts)
    alone = np.concatenate([encode([text]) for text in texts])
    assert together.shape == (2, backbone.config.hidden_size)
    np.testing.assert_allclose(together, alone, atol=1e-4)


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
