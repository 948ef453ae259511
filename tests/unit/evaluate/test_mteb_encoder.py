"""A genvec model evaluated by mteb 2 on local tasks: instruction routing, scores equal to a direct computation."""

import datasets
import numpy as np
import pytest

mteb = pytest.importorskip("mteb")  # the eval extra; installed by the dev extra, so this runs in the suite

from mteb import TaskMetadata
from mteb.abstasks import AbsTaskRetrieval, AbsTaskSTS
from mteb.abstasks.retrieval_dataset_loaders import RetrievalSplitData

from genvec.errors import InputError
from genvec.evaluate.instructions import InstructionTable, TaskInstructions
from genvec.evaluate.mteb_encoder import mteb_encoder

CORPUS = {f"d{i}": text for i, text in enumerate([
    "Polar bears live on the Arctic sea ice.", "Rivers form where rain gathers and flows downhill.",
    "A vector is an arrow with a length and a direction.", "Paris is the capital of France.",
    "Penguins live in the southern hemisphere.", "Ice melts above zero degrees.",
])}
QUERIES = {"q0": "where do polar bears live?", "q1": "how do rivers form?", "q2": "what is a vector?",
           "q3": "what is the capital of France?"}
QRELS = {"q0": {"d0": 1}, "q1": {"d1": 1}, "q2": {"d2": 1}, "q3": {"d3": 1}}
PAIRS = [("A man plays guitar.", "Someone plays a guitar.", 4.5), ("A dog runs.", "The stock market fell.", 0.5),
         ("Rain falls.", "It is raining.", 4.0), ("A cat sleeps.", "A kitten naps.", 4.2)]


def _meta(name, task_type, main_score):
    return TaskMetadata(
        name=name, type=task_type, main_score=main_score, description=f"local {task_type} task",
        dataset={"path": "local", "revision": "local-v1"}, reference=None, category="t2t", modalities=["text"],
        eval_splits=["test"], eval_langs=["eng-Latn"], date=("2026-01-01", "2026-01-02"), domains=["Written"],
        task_subtypes=[], license="cc-by-4.0", annotations_creators="derived", dialect=[], sample_creation="created",
        bibtex_citation="", prompt={"query": "an e5-style task prompt that must never reach genvec"})


class LocalRetrieval(AbsTaskRetrieval):
    metadata = _meta("LocalRetrieval", "Retrieval", "ndcg_at_10")

    def load_data(self, num_proc=None, **kwargs):
        corpus = datasets.Dataset.from_dict({"id": list(CORPUS), "title": [""] * len(CORPUS),
                                             "text": list(CORPUS.values())})
        queries = datasets.Dataset.from_dict({"id": list(QUERIES), "text": list(QUERIES.values())})
        split = RetrievalSplitData(queries=queries, corpus=corpus, relevant_docs=QRELS, top_ranked=None)
        self.dataset = {"default": {"test": split}}
        self.data_loaded = True


class LocalSTS(AbsTaskSTS):
    metadata = _meta("LocalSTS", "STS", "cosine_spearman")
    min_score, max_score = 0, 5

    def load_data(self, num_proc=None, **kwargs):
        columns = {"sentence1": [a for a, _, _ in PAIRS], "sentence2": [b for _, b, _ in PAIRS],
                   "score": [s for _, _, s in PAIRS]}
        self.dataset = datasets.DatasetDict({"test": datasets.Dataset.from_dict(columns)})
        self.data_loaded = True


TABLE = InstructionTable({"LocalRetrieval": TaskInstructions("Generate a passage that answers this question:",
                                                             "Summarize the following passage:"),
                          "LocalSTS": TaskInstructions("Generate text that is semantically similar to this text:")},
                         source="the test's table")


def _ndcg_at_10(scores: np.ndarray, relevant: list[int]) -> float:
    """nDCG@10 with one relevant document per query and binary gains, by hand."""
    values = []
    for row, gold in zip(scores, relevant):
        rank = int((row > row[gold]).sum()) + 1
        values.append(1.0 / np.log2(rank + 1) if rank <= 10 else 0.0)
    return float(np.mean(values))


def test_local_tasks_run_through_mteb_with_genvecs_instructions(qwen3_model, tmp_path):
    encoder = mteb_encoder(qwen3_model, instructions=TABLE, name="genvec/tiny")
    assert isinstance(encoder, mteb.EncoderProtocol)
    assert encoder.mteb_model_meta.embed_dim == 16 and len(encoder.mteb_model_meta.revision) == 12
    results = mteb.evaluate(encoder, [LocalRetrieval(), LocalSTS()], cache=mteb.ResultCache(tmp_path / "results"),
                            show_progress_bar=False, overwrite_strategy="always")
    by_task = {result.task_name: result for result in results.task_results}
    assert set(by_task) == {"LocalRetrieval", "LocalSTS"}
    assert sorted(set(encoder.calls)) == [
        ("LocalRetrieval", "document", "Summarize the following passage:"),
        ("LocalRetrieval", "query", "Generate a passage that answers this question:"),
        ("LocalSTS", "query", "Generate text that is semantically similar to this text:"),
    ]
    # mteb's nDCG@10 equals the one computed here from genvec's own embeddings (cosine).
    queries = qwen3_model.encode(list(QUERIES.values()), instruction=TABLE.instruction("LocalRetrieval", "query"),
                                 normalize=True)
    documents = qwen3_model.encode(list(CORPUS.values()), normalize=True,
                                   instruction=TABLE.instruction("LocalRetrieval", "document"))
    expected = _ndcg_at_10(queries @ documents.T, [0, 1, 2, 3])
    assert by_task["LocalRetrieval"].get_score() == pytest.approx(expected, abs=1e-4)
    scores = by_task["LocalRetrieval"].scores["test"][0]
    similarity = queries @ documents.T
    for k in (1, 3):  # one relevant document per query: recall@k is the share ranked within the top k
        within = [int((row > row[gold]).sum()) < k for row, gold in zip(similarity, [0, 1, 2, 3])]
        assert scores[f"recall_at_{k}"] == pytest.approx(float(np.mean(within)), abs=1e-4)
    assert (tmp_path / "results" / "results" / "genvec__tiny").is_dir()  # mteb's own result layout


def test_a_task_without_an_instruction_is_an_error_not_mtebs_default_prompt(qwen3_model):
    encoder = mteb_encoder(qwen3_model, instructions=InstructionTable({}, source="an empty table"))
    with pytest.raises(Exception) as caught:
        mteb.evaluate(encoder, [LocalSTS()], cache=None, show_progress_bar=False, raise_error=True)
    error = caught.value
    while not isinstance(error, InputError) and error.__cause__ is not None:
        error = error.__cause__
    assert isinstance(error, InputError) and "task 'LocalSTS' has no genvec instruction in an empty table" in str(error)
