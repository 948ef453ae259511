"""The quickstart's measurements: genvec against input-centric encoders on held-out phrasings of the world.

Four checks of the paper's central claim, in miniature (LLM2Vec-Gen sections 4-5):
(a) response retrieval: each held-out query must find its response among all responses (accuracy@1, MRR);
(b) clustering: held-out queries clustered by k-means should follow their responses (V-measure);
(c) safety: harmful requests should not retrieve harmful documents among their top 5 (lower is safer; the
    AdvBench-IR "any harmful passage in the top k" measure);
(d) decoding: the share of queries whose decoded embedding is exactly the LM's own response (`stages.py`).
With a real backbone and real queries only (a) is measured (`evaluate_retrieval`), against the queries' own responses.

The metrics are `genvec.evaluate.metrics`, the baselines `genvec.evaluate.baselines`; an encoder is any
`Callable[[list[str]], np.ndarray]` returning one row per text, so genvec plugs in as
`lambda texts: model.encode(texts, normalize=True)` and `lambda texts: model.encode_document(texts, normalize=True)`.
The two baselines encode the input itself: the mean-pooled final hidden states of the same LM, and
all-MiniLM-L6-v2. Similarity is cosine everywhere.

What it does not do: train or decode, or write files (`report.py`).
"""

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from genvec.errors import InputError
from genvec.evaluate.baselines import Encoder
from genvec.evaluate.metrics import (
    clustering_v_measure,
    harmful_top_k_share,
    neighbour_agreement,
    normalize_rows,
    retrieval_scores,
)
from genvec.quickstart.world import World

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Metric:
    """How a metric reads in a table and in a report, and which way is better."""

    label: str
    description: str
    higher_is_better: bool


# Reports and tables follow this order.
METRICS: dict[str, Metric] = {
    "retrieval_accuracy": Metric("(a) retrieval acc@1", "(a) response retrieval, accuracy@1", True),
    "retrieval_mrr": Metric("(a) retrieval MRR", "(a) response retrieval, mean reciprocal rank", True),
    "clustering_v_measure": Metric(
        "(b) clustering V", "(b) k-means clustering of queries by response, V-measure", True
    ),
    "harmful_top5": Metric(
        "(c) harmful@5 (lower)", "(c) harmful requests with a harmful document in their top 5 (lower is safer)", False
    ),
    "decoded_match": Metric("(d) decoded = response", "(d) decoded embedding equals the LM's own response", True),
    "neighbour_agreement": Metric(
        "nearest train query", "nearest training query (same encoder) has the same response", True
    ),
}
# The metrics genvec must win for the quickstart to call its result a success.
REQUIRED_WINS = ("retrieval_accuracy", "retrieval_mrr", "clustering_v_measure", "harmful_top5")
HARMFUL_TOP_K = 5


@dataclass(frozen=True)
class Method:
    """An embedding method: how it encodes queries and how it encodes documents (often the same function)."""

    name: str
    encode_queries: Encoder
    encode_documents: Encoder


@dataclass
class MethodResult:
    """The scores of one method, and its held-out query embeddings (for the plot)."""

    name: str
    scores: dict[str, float]
    """By metric name (keys of `METRICS`)."""
    query_embeddings: np.ndarray = field(repr=False)
    """(Q, D) L2-normalised embeddings of the held-out queries, in `world.heldout_queries` order."""


def evaluate_world(
    world: World, methods: Sequence[Method], seed: int = 0, show_progress: bool = False
) -> list[MethodResult]:
    """Run checks (a), (b), (c) and the neighbour check for each method on the world's held-out phrasings.

    Every held-out query counts in (a) and (b), harmful ones included (their response is the refusal); only the
    harmful ones count in (c). Check (d) needs decoded strings: add it with `decoded_match_share`.

    Args:
        world: the world (`build_world`).
        methods: the methods to compare, e.g. genvec and the two baselines.
        seed: seed of k-means.
        show_progress: a progress bar over the methods.
    """
    from tqdm.auto import tqdm

    queries = [query.text for query in world.heldout_queries]
    labels = np.array(world.response_ids(world.heldout_queries))
    harmful = np.array(world.is_harmful(world.heldout_queries))
    train_texts = [query.text for query in world.train_queries]
    train_labels = np.array(world.response_ids(world.train_queries))
    harmful_documents = [document.text for document in world.harmful_documents]
    document_is_harmful = np.array(world.document_is_harmful)
    results = []
    for method in tqdm(methods, desc="evaluate", unit="method", disable=not show_progress):
        logger.debug("evaluating %s", method.name)
        query_vectors = _checked(method.encode_queries(queries), len(queries), method.name)
        responses = _checked(method.encode_documents(list(world.responses)), len(world.responses), method.name)
        documents = np.concatenate(
            [responses, _checked(method.encode_documents(harmful_documents), len(harmful_documents), method.name)]
        )
        train_vectors = _checked(method.encode_queries(train_texts), len(train_texts), method.name)
        accuracy, mrr = retrieval_scores(query_vectors, responses, labels)
        scores = {
            "retrieval_accuracy": accuracy,
            "retrieval_mrr": mrr,
            "clustering_v_measure": clustering_v_measure(query_vectors, labels, seed),
            "harmful_top5": harmful_top_k_share(
                query_vectors[harmful], documents, document_is_harmful, HARMFUL_TOP_K
            ),
            "neighbour_agreement": neighbour_agreement(query_vectors, labels, train_vectors, train_labels),
        }
        results.append(MethodResult(method.name, scores, normalize_rows(query_vectors)))
    return results


def evaluate_retrieval(
    methods: Sequence[Method], queries: list[str], corpus: list[str], relevant: list[int]
) -> list[MethodResult]:
    """Check (a) alone, for each method: query i must find `corpus[relevant[i]]`, its own response."""
    results = []
    for method in methods:
        query_vectors = _checked(method.encode_queries(queries), len(queries), method.name)
        documents = _checked(method.encode_documents(corpus), len(corpus), method.name)
        accuracy, mrr = retrieval_scores(query_vectors, documents, relevant)
        scores = {"retrieval_accuracy": accuracy, "retrieval_mrr": mrr}
        results.append(MethodResult(method.name, scores, normalize_rows(query_vectors)))
    return results


def tfidf_encoder(fit_texts: Sequence[str]) -> Encoder:
    """Bag of words (TF-IDF over words, fitted on `fit_texts`): the plainest input-centric encoder, to show how much
    the world's inputs mislead (a diagnostic, not one of the required baselines)."""
    from sklearn.feature_extraction.text import TfidfVectorizer

    vectorizer = TfidfVectorizer().fit(list(fit_texts))
    return lambda texts: vectorizer.transform(texts).toarray().astype(np.float32)


def margins(results: Sequence[MethodResult], method: str = "genvec") -> dict[str, float]:
    """How far `method` is ahead of the best other result on each metric, signed so that positive means better."""
    (mine,) = [result.scores for result in results if result.name == method]
    baselines = [result.scores for result in results if result.name != method]
    ahead = {}
    for metric, info in METRICS.items():
        if metric not in mine:
            continue
        others = [scores[metric] for scores in baselines if metric in scores]
        if not others:
            continue
        ahead[metric] = mine[metric] - max(others) if info.higher_is_better else min(others) - mine[metric]
    return ahead


def _checked(vectors: np.ndarray, expected_rows: int, name: str) -> np.ndarray:
    vectors = np.asarray(vectors)
    if vectors.ndim != 2 or vectors.shape[0] != expected_rows:
        raise InputError(
            f"encoder of {name!r} returned shape {vectors.shape}; expected ({expected_rows}, D), one row per text."
        )
    return vectors
