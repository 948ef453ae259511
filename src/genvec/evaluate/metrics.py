"""Evaluation metrics over embeddings: pure numpy functions, the similarity a parameter.

Retrieval (accuracy@k, mean reciprocal rank), harmful retrieval (share of queries with a harmful document in their
top k; lower is safer), clustering (k-means V-measure), nearest-neighbour agreement, and exact decoded matches.
`similarity` is "cosine" (rows L2-normalised first) or "dot" (raw inner product: AdvBench-IR scores with it).

What it does not do: encode texts, or read benchmark files; the callers do (the quickstart, `genvec evaluate`).
"""

from collections.abc import Sequence
from typing import Literal

import numpy as np

from genvec.errors import InputError, check_positive_int

Similarity = Literal["cosine", "dot"]
SIMILARITIES = ("cosine", "dot")


def normalize_rows(vectors: np.ndarray) -> np.ndarray:
    """Each row divided by its L2 norm (zero rows stay zero), as float64."""
    vectors = np.asarray(vectors, dtype=np.float64)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.where(norms == 0, 1.0, norms)


def similarity_matrix(
    query_vectors: np.ndarray, document_vectors: np.ndarray, similarity: Similarity = "cosine"
) -> np.ndarray:
    """(Q, D) x (C, D) -> (Q, C) scores, float64: cosine similarity or the raw dot product."""
    if similarity not in SIMILARITIES:
        raise InputError(f"similarity must be one of {', '.join(SIMILARITIES)}, got {similarity!r}.")
    if similarity == "cosine":
        return normalize_rows(query_vectors) @ normalize_rows(document_vectors).T
    return np.asarray(query_vectors, dtype=np.float64) @ np.asarray(document_vectors, dtype=np.float64).T


def relevant_ranks(
    query_vectors: np.ndarray,
    document_vectors: np.ndarray,
    relevant: Sequence[int] | np.ndarray,
    similarity: Similarity = "cosine",
) -> np.ndarray:
    """(Q,) rank of each query's one relevant document, 1 = first.

    Ties count against the query: a relevant document ranks below every document with the same score.

    Args:
        query_vectors: (Q, D).
        document_vectors: (C, D).
        relevant: (Q,) index of each query's relevant document.
        similarity: "cosine" or "dot".
    """
    scores = similarity_matrix(query_vectors, document_vectors, similarity)  # (Q, C)
    relevant = np.asarray(relevant)
    relevant_scores = scores[np.arange(len(relevant)), relevant][:, None]  # (Q, 1)
    return (scores >= relevant_scores).sum(1)


def accuracy_at_k(ranks: np.ndarray, k: int = 1) -> float:
    """Share of queries whose relevant document is among the top k."""
    check_positive_int(k, "k")
    return float(np.mean(np.asarray(ranks) <= k))


def mean_reciprocal_rank(ranks: np.ndarray) -> float:
    """Mean of 1 / rank of the relevant document."""
    return float(np.mean(1.0 / np.asarray(ranks, dtype=np.float64)))


def retrieval_scores(
    query_vectors: np.ndarray,
    document_vectors: np.ndarray,
    relevant: Sequence[int] | np.ndarray,
    similarity: Similarity = "cosine",
) -> tuple[float, float]:
    """Accuracy@1 and mean reciprocal rank of retrieving one relevant document per query (see `relevant_ranks`)."""
    ranks = relevant_ranks(query_vectors, document_vectors, relevant, similarity)
    return accuracy_at_k(ranks, 1), mean_reciprocal_rank(ranks)


def harmful_top_k_share(
    query_vectors: np.ndarray,
    document_vectors: np.ndarray,
    document_is_harmful: np.ndarray,
    k: int = 5,
    similarity: Similarity = "cosine",
) -> float:
    """Share of queries whose k most similar documents include a harmful one; lower is safer.

    Args:
        query_vectors: (Q, D), the harmful requests.
        document_vectors: (C, D), the corpus (harmless and harmful documents).
        document_is_harmful: (C,) bool.
        k: how many top documents to look at.
        similarity: "cosine" or "dot".
    """
    check_positive_int(k, "k")
    if len(query_vectors) == 0:
        raise InputError("harmful_top_k_share() got 0 queries; pass at least one harmful request.")
    scores = similarity_matrix(query_vectors, document_vectors, similarity)  # (Q, C)
    top = np.argsort(-scores, axis=1, kind="stable")[:, :k]  # (Q, k)
    return float(np.mean(np.asarray(document_is_harmful, dtype=bool)[top].any(1)))


def clustering_v_measure(vectors: np.ndarray, labels: Sequence[int] | np.ndarray, seed: int = 0) -> float:
    """V-measure of k-means (k = number of distinct labels) on L2-normalised vectors against the labels."""
    from sklearn.cluster import KMeans
    from sklearn.metrics import v_measure_score

    labels = np.asarray(labels)
    num_clusters = len(np.unique(labels))
    clusters = KMeans(n_clusters=num_clusters, n_init=10, random_state=seed).fit_predict(normalize_rows(vectors))
    return float(v_measure_score(labels, clusters))


def neighbour_agreement(
    query_vectors: np.ndarray,
    query_labels: Sequence[int] | np.ndarray,
    reference_vectors: np.ndarray,
    reference_labels: Sequence[int] | np.ndarray,
    similarity: Similarity = "cosine",
) -> float:
    """Share of queries whose most similar reference has the same label: how often "similar input" means "same
    label" for this encoder (e.g. held-out queries against training queries, labelled by their response)."""
    nearest = similarity_matrix(query_vectors, reference_vectors, similarity).argmax(1)
    return float(np.mean(np.asarray(reference_labels)[nearest] == np.asarray(query_labels)))


def decoded_match_share(decoded: Sequence[str], references: Sequence[str]) -> float:
    """Share of decoded texts equal to their reference after collapsing whitespace."""
    if len(decoded) != len(references) or not decoded:
        raise InputError(
            f"decoded_match_share() got {len(decoded)} decoded texts and {len(references)} references; pass the "
            "same non-zero number of each."
        )
    return float(np.mean([" ".join(a.split()) == " ".join(b.split()) for a, b in zip(decoded, references)]))
