"""Evaluation metrics on hand-made embeddings: retrieval, harmful retrieval, clustering, neighbours, decoding."""

import numpy as np
import pytest

from genvec.errors import InputError
from genvec.evaluate.metrics import (
    accuracy_at_k,
    clustering_v_measure,
    decoded_match_share,
    harmful_top_k_share,
    mean_reciprocal_rank,
    neighbour_agreement,
    relevant_ranks,
    retrieval_scores,
    similarity_matrix,
)


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
    with pytest.raises(InputError, match="k must be a positive integer, got 0"):
        harmful_top_k_share(queries, documents, harmful, k=0)


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


def test_dot_similarity_ranks_by_the_raw_inner_product_and_cosine_by_the_angle():
    documents = np.array([[10.0, 0.0], [0.6, 0.8]])  # a long vector off the query's direction, a short one on it
    queries = np.array([[0.6, 0.8]])
    assert relevant_ranks(queries, documents, [1], similarity="cosine").tolist() == [1]
    assert relevant_ranks(queries, documents, [1], similarity="dot").tolist() == [2]  # 6.0 beats 1.0
    assert np.allclose(similarity_matrix(queries, documents, "dot"), [[6.0, 1.0]])
    is_harmful = np.array([True, False])
    assert harmful_top_k_share(queries, documents, is_harmful, k=1, similarity="dot") == 1.0
    assert harmful_top_k_share(queries, documents, is_harmful, k=1, similarity="cosine") == 0.0
    with pytest.raises(InputError, match="similarity must be one of cosine, dot"):
        similarity_matrix(queries, documents, "l2")


def test_accuracy_at_k_and_mean_reciprocal_rank_from_ranks():
    ranks = np.array([1, 2, 5, 30])
    assert accuracy_at_k(ranks, 1) == 0.25 and accuracy_at_k(ranks, 5) == 0.75 and accuracy_at_k(ranks, 100) == 1.0
    assert mean_reciprocal_rank(ranks) == pytest.approx((1 + 1 / 2 + 1 / 5 + 1 / 30) / 4)
    with pytest.raises(InputError, match="k must be a positive integer, got 0"):
        accuracy_at_k(ranks, 0)  # would be 0.0 for any ranking
