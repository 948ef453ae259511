"""AdvBench-IR (harmful retrieval) as the official evaluation script defines it, built as an mteb retrieval task.

Data: `McGill-NLP/AdvBench-IR` (fields `ID`, `query`, `title`, `document`: a harmful request and a malicious
document answering it) and the distractor corpus `McGill-NLP/AdvBench-IR-Small-Wiki-100` (`ID`, `title`,
`passage`). Each malicious document is cut into 100-word chunks; the first chunk and every chunk of exactly 100
words are kept, as passages `"<title> # <chunk>"` with ids `malicious_<ID>-<j>`; wiki passages become
`"<title> # <passage>"` with ids `wiki_<ID>`. A query's relevant passages are its own chunks. Scored with the raw dot
product: `hit_rate_at_k` (mteb's name for the official `top_k_acc`: a query's own chunk is in its top k) and
`any_harm_at_k` (any malicious passage in the top k), k in 1, 5, 20, 100; lower is safer.

Loading takes the hub names above (the hub is needed), or local files in the same schema (JSON Lines, or any other
format `genvec.data.records` reads).
"""

from collections.abc import Iterable
from pathlib import Path

from genvec.data.records import read_records
from genvec.errors import InputError
from genvec.evaluate.instructions import ADVBENCH_IR
from genvec.evaluate.local import retrieval_task

MALICIOUS = "McGill-NLP/AdvBench-IR"
WIKI = "McGill-NLP/AdvBench-IR-Small-Wiki-100"
CHUNK_WORDS = 100
# The official script ranks passages by the raw dot product of the embeddings: `evaluate_model` scores this task with
# it unless its caller chooses a similarity (`EvalConfig.similarity`).
SIMILARITY = "dot"


def chunk_document(text: str, words: int = CHUNK_WORDS) -> list[str]:
    """The official chunking: consecutive `words`-word pieces; the first piece always, later ones only when full."""
    tokens = text.split()
    pieces = [" ".join(tokens[start : start + words]) for start in range(0, len(tokens), words)]
    return [piece for index, piece in enumerate(pieces) if index == 0 or len(piece.split()) == words]


def advbench_corpus(malicious: Iterable[dict], wiki: Iterable[dict]):
    """(corpus {id: ("", passage)}, queries {id: text}, qrels, harmful ids) from the records of the two datasets."""
    corpus: dict[str, tuple[str, str]] = {}
    queries: dict[str, str] = {}
    qrels: dict[str, dict[str, int]] = {}
    for record in malicious:
        query_id = f"q{record['ID']}"
        queries[query_id] = str(record["query"])
        for index, chunk in enumerate(chunk_document(str(record["document"]))):
            passage_id = f"malicious_{record['ID']}-{index}"
            corpus[passage_id] = ("", f"{record['title']} # {chunk}")  # the whole passage as text: no title added
            qrels.setdefault(query_id, {})[passage_id] = 1
    harmful = set(corpus)
    for record in wiki:
        corpus[f"wiki_{record['ID']}"] = ("", f"{record['title']} # {record['passage']}")
    return corpus, queries, qrels, harmful


def advbench_task(malicious: str | Path = MALICIOUS, wiki: str | Path = WIKI):
    """The AdvBench-IR mteb task from the hub datasets (or local files of the same schema, e.g. JSON Lines)."""
    corpus, queries, qrels, harmful = advbench_corpus(
        (record.fields for record in read_records(malicious, required=("ID", "query", "title", "document"))),
        (record.fields for record in read_records(wiki, required=("ID", "title", "passage"))))
    if not queries:
        raise InputError(f"{malicious}: no AdvBench-IR query found.")
    return retrieval_task(ADVBENCH_IR, corpus, queries, qrels, harmful)
