"""Local benchmarks: a directory of a user's own data in plain formats, as mteb 2 tasks.

Every subdirectory of the benchmark directory is one task, named after the subdirectory, of the type its files say;
a task's directory may also be passed directly (a BEIR download, say), and is then the one task, named after it:

- retrieval: `corpus.jsonl` (`_id`, `text`, optional `title`, optional `harmful` true/false), `queries.jsonl`
  (`_id`, `text`) and the relevance judgements (header `query-id<TAB>corpus-id<TAB>score`), either in the BEIR
  release layout, `qrels/<split>.tsv` (`qrels/test.tsv`, `qrels/dev.tsv`, ...: the `split` parameter picks one, test
  by default), or in one file, `qrels.tsv` (scored as the test split). Both at once is refused (which one was meant
  cannot be told). Other fields (BEIR's `metadata`) are ignored; queries no judgement of the split names are not
  scored (mteb leaves them out). When any document is marked `harmful`, the task also reports
  `any_harm_at_{1,5,20,100}`: the share of queries with a harmful document among their top k (lower is safer), as
  AdvBench-IR does;
- STS: `sts.tsv` (header `sentence1<TAB>sentence2<TAB>score`);
- clustering: `clustering.jsonl` (`text`, `label`);
- classification: `classification.jsonl` (`text`, `label`, `split` "train" or "test"): mteb fits a logistic
  regression on embeddings of the train texts (8 per label, 10 draws, as on MTEB) and reports accuracy on the test
  texts;
- pair classification: `pairs.tsv` (header `sentence1<TAB>sentence2<TAB>label`, label 0 or 1): average precision
  of the pair similarity at telling the 1s from the 0s (`max_ap`, MTEB's main score).

Only a BEIR-layout retrieval task has splits; the others hold one set of data, scored as "test", and asking them
for another split is an error rather than a silent test score.

`instructions.yaml` (or `.json`) in the benchmark directory (in the task's directory, when it is passed directly)
gives each task its instructions (see `genvec.evaluate.instructions`). Files are read by `genvec.data.records`;
every file problem is an `InputError` naming the file, the line and the fix, raised while the directory is read,
before any text is encoded. Texts and titles are JSON strings (a title may be null); `_id`s are non-empty strings or
integers, unique within their file (`1` and `"1"` are one id: a qrels file cannot tell them apart); labels are
strings or integers; a qrels score is a whole number from -MAX_GRADE to MAX_GRADE, once per query and document; STS
scores are finite numbers, not all equal. Each task's dataset revision is `local-` and a digest of the files it is
read from (its directory's files, and the `qrels/<split>.tsv` read), so mteb's result cache never takes a result of
other data for this one.
"""

import math
import os
import re
import reprlib
from pathlib import Path

from genvec.data.records import Record, read_records
from genvec.errors import InputError
from genvec.evaluate.instructions import InstructionTable
from genvec.files import files_digest

HARM_K = (1, 5, 20, 100)
RETRIEVAL_FILES = ("corpus.jsonl", "queries.jsonl", "qrels.tsv")
QRELS_DIRECTORY = "qrels"  # the BEIR release layout: qrels/<split>.tsv beside corpus.jsonl and queries.jsonl
DEFAULT_SPLIT = "test"
# The file that makes a directory a task of each other type, in the order they are looked for.
TASK_FILES = (("sts.tsv", "STS"), ("clustering.jsonl", "clustering"), ("classification.jsonl", "classification"),
              ("pairs.tsv", "pair classification"))
LAYOUTS = ("corpus.jsonl + queries.jsonl + qrels/<split>.tsv (BEIR) or qrels.tsv (retrieval), sts.tsv (STS), "
           "clustering.jsonl (clustering), classification.jsonl (classification) or pairs.tsv (pair classification)")
_SPLIT_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
MAX_GRADE = 1000  # relevance grades are small whole numbers; pytrec_eval keeps them in a C int
_SHORT = reprlib.Repr()  # a wrong value shown in a message: a few items, two levels, cut strings
_SHORT.maxlevel, _SHORT.maxstring, _SHORT.maxother = 2, 60, 60


def read_local_benchmark(directory: str | Path, *, split: str = DEFAULT_SPLIT) -> tuple[list, InstructionTable | None]:
    """The tasks of a benchmark directory (mteb task objects, data loaded) and its instruction table, if it has one.

    Args:
        directory: a benchmark directory (one subdirectory per task), or one task's own directory, such as a BEIR
            download (`corpus.jsonl`, `queries.jsonl`, `qrels/test.tsv`), which is then the only task.
        split: the judgements a BEIR-layout retrieval task is scored with, `qrels/<split>.tsv`; tasks of the other
            layouts have only "test".

    Raises:
        InputError: not a directory, no task in it, a directory that is both a task and a benchmark, a split a task
            lacks (the message lists the splits it has), or a file that does not follow its layout.
    """
    directory = Path(directory)
    if not directory.is_dir():
        raise InputError(f"directory={str(directory)!r} is not a directory; pass a directory with one subdirectory "
                         f"per task, or one task's directory ({LAYOUTS}).", param="directory")
    if not isinstance(split, str) or not _SPLIT_NAME.fullmatch(split):
        raise InputError(f"split={split!r} is not a split name; pass a name such as \"test\" or \"dev\" (the file "
                         "qrels/<split>.tsv of a BEIR-layout task).", param="split")
    if _is_task(directory):
        nested = sorted(sub.name for sub in _subdirectories(directory) if sub.name != QRELS_DIRECTORY
                        and _is_task(sub))
        if nested:
            raise InputError(f"{directory} holds a task's own files and task subdirectories ({', '.join(nested)}); "
                             "pass the task's directory alone, or move its files into a subdirectory of their own.",
                             param="directory")
        tasks = [_task(directory, split, name=Path(os.path.abspath(directory)).name)]  # "." named too
    else:
        tasks = [task for sub in _subdirectories(directory) if (task := _task(sub, split, name=sub.name)) is not None]
    if not tasks:
        raise InputError(f"{str(directory)!r} holds no task: expected the files of one task ({LAYOUTS}), or "
                         "subdirectories holding them, one per task.", param="directory")
    table = next((InstructionTable.from_file(directory / name) for name in ("instructions.yaml", "instructions.yml",
                                                                            "instructions.json")
                  if (directory / name).is_file()), None)
    return tasks, table


def _subdirectories(directory: Path) -> list[Path]:
    return [sub for sub in sorted(directory.iterdir()) if sub.is_dir()]


def _is_task(directory: Path) -> bool:
    """Whether `directory` holds any task's file (complete or not: an incomplete one is reported when read)."""
    names = [*RETRIEVAL_FILES, *(name for name, _ in TASK_FILES)]
    return any((directory / name).is_file() for name in names) or (directory / QRELS_DIRECTORY).is_dir()


def _task(directory: Path, split: str, *, name: str):
    """The task of one directory, named `name` (None if it holds no task's files); its dataset revision is a digest
    of the files it is read from, so a result cached for other data is never taken for this one."""
    task, read = _task_of_layout(directory, split, name)
    if task is not None:
        names = sorted(path.name for path in directory.iterdir() if path.is_file()) + read
        task.metadata.dataset["revision"] = "local-" + files_digest(directory, names)
    return task


def _task_of_layout(directory: Path, split: str, name: str) -> tuple[object | None, list[str]]:
    """The task of `directory` and the files it read below the directory itself (a BEIR task's qrels file)."""
    retrieval = _retrieval_layout(directory, split)
    if retrieval is not None:
        return _retrieval_task(directory, name, retrieval, split), ([retrieval] if "/" in retrieval else [])
    readers = {"sts.tsv": _sts_task, "clustering.jsonl": _clustering_task,
               "classification.jsonl": _classification_task, "pairs.tsv": _pair_task}
    for file, kind in TASK_FILES:
        if (directory / file).is_file():
            if split != DEFAULT_SPLIT:
                raise InputError(f"{directory}: split={split!r}, but this {kind} task ({file}) holds one set of data, "
                                 "scored as its test split; splits are the qrels/<split>.tsv files of BEIR-layout "
                                 "retrieval tasks. Score this task without a split, apart from the others.",
                                 param="split")
            return readers[file](directory, name), []
    return None, []


def _retrieval_layout(directory: Path, split: str) -> str | None:
    """The qrels file of a retrieval task in `directory` (`qrels/<split>.tsv` or `qrels.tsv`, relative to it); None
    when it holds no retrieval file at all.

    Raises:
        InputError: some of the task's files are missing, both layouts are present, or no file of `split`.
    """
    single, beir = (directory / "qrels.tsv").is_file(), (directory / QRELS_DIRECTORY).is_dir()
    present = [name for name in RETRIEVAL_FILES[:2] if (directory / name).is_file()]
    if not present and not single and not beir:
        return None
    missing = [name for name in RETRIEVAL_FILES[:2] if name not in present]
    if not (single or beir):
        missing.append("qrels/<split>.tsv or qrels.tsv")
    if missing:
        raise InputError(f"{directory}: a retrieval task needs corpus.jsonl, queries.jsonl and qrels/<split>.tsv "
                         f"(the BEIR layout) or qrels.tsv; {', '.join(missing)} missing.")
    if single and beir:
        raise InputError(f"{directory}: holds both qrels.tsv and the BEIR layout's qrels/ directory, so which "
                         "judgements to score is unclear; keep one (delete qrels.tsv to score qrels/<split>.tsv, or "
                         "move qrels/ away).")
    if single:
        if split != DEFAULT_SPLIT:
            raise InputError(f"{directory}: split={split!r}, but its judgements are one file, qrels.tsv, scored as "
                             "the test split; put the judgements of each split in qrels/<split>.tsv (the BEIR "
                             "layout), or score it without a split.", param="split")
        return "qrels.tsv"
    if not (directory / QRELS_DIRECTORY / f"{split}.tsv").is_file():
        splits = sorted(path.stem for path in (directory / QRELS_DIRECTORY).glob("*.tsv") if path.is_file())
        held = f"the splits {', '.join(splits)}" if splits else "no <split>.tsv file"
        raise InputError(f"{directory}: no qrels/{split}.tsv; its qrels/ holds {held}. Pass one of them as the "
                         "split.", param="split")
    return f"{QRELS_DIRECTORY}/{split}.tsv"


def _metadata(name: str, task_type: str, main_score: str, split: str = DEFAULT_SPLIT):
    from mteb import TaskMetadata

    return TaskMetadata(
        name=name, type=task_type, main_score=main_score, description=f"local {task_type} task {name}",
        dataset={"path": "local", "revision": "local"}, reference=None, category="t2t", modalities=["text"],
        eval_splits=[split], eval_langs=["eng-Latn"], date=None, domains=None, task_subtypes=None, license=None,
        annotations_creators=None, dialect=None, sample_creation=None, bibtex_citation="",
    )


def _retrieval_task(directory: Path, name: str, qrels_file: str, split: str):
    corpus_path, queries_path = directory / "corpus.jsonl", directory / "queries.jsonl"
    documents = _by_id(corpus_path)
    queries = _by_id(queries_path)
    corpus = {key: (_text(corpus_path, record, "title", nullable=True), _text(corpus_path, record, "text"))
              for key, record in documents.items()}
    query_texts = {key: _text(queries_path, record, "text") for key, record in queries.items()}
    qrels = _qrels(directory / qrels_file, set(query_texts), set(corpus))
    harmful = {key for key, record in documents.items() if _flag(record, "harmful", corpus_path)}
    return retrieval_task(name, corpus, query_texts, qrels, harmful, split=split)


def retrieval_task(
    name: str,
    corpus: dict[str, tuple[str, str]],
    queries: dict[str, str],
    qrels: dict[str, dict[str, int]],
    harmful: set[str] = frozenset(),
    *,
    split: str = DEFAULT_SPLIT,
):
    """An mteb retrieval task over documents `{id: (title, text)}` and queries `{id: text}`, scored as `split`; with
    `harmful` document ids it also reports `any_harm_at_k` for k in HARM_K (mteb's `hit_rate_at_k` is the share of
    queries with a relevant document in their top k)."""
    import datasets
    import numpy as np
    from mteb.abstasks import AbsTaskRetrieval
    from mteb.abstasks.retrieval_dataset_loaders import RetrievalSplitData

    class LocalRetrieval(AbsTaskRetrieval):
        metadata = _metadata(name, "Retrieval", "ndcg_at_10", split)

        def load_data(self, num_proc=None, **kwargs):
            corpus_set = datasets.Dataset.from_dict({"id": list(corpus), "title": [t for t, _ in corpus.values()],
                                                     "text": [x for _, x in corpus.values()]})
            query_set = datasets.Dataset.from_dict({"id": list(queries), "text": list(queries.values())})
            data = RetrievalSplitData(queries=query_set, corpus=corpus_set, relevant_docs=qrels, top_ranked=None)
            self.dataset = {"default": {split: data}}
            self.data_loaded = True

        def task_specific_scores(self, scores, qrels, results, hf_split, hf_subset):
            if not harmful:
                return {}
            ranked = [sorted(found.items(), key=lambda item: -item[1]) for found in results.values()]
            return {f"any_harm_at_{k}": float(np.mean([any(doc in harmful for doc, _ in top[:k]) for top in ranked]))
                    for k in HARM_K}

    return LocalRetrieval()


def _sts_task(directory: Path, name: str):
    import datasets
    from mteb.abstasks import AbsTaskSTS

    path = directory / "sts.tsv"
    rows = _rows(path, ("sentence1", "sentence2", "score"))
    if not rows:
        raise InputError(f"{path}: no sentence pair; add lines sentence1<TAB>sentence2<TAB>score under the header.")
    scores = [_number(row["score"], path, line) for line, row in rows]
    _check_sts_scores(scores, path)

    class LocalSTS(AbsTaskSTS):
        metadata = _metadata(name, "STS", "cosine_spearman")
        min_score, max_score = min(scores), max(scores)

        def load_data(self, num_proc=None, **kwargs):
            columns = {"sentence1": [row["sentence1"] for _, row in rows],
                       "sentence2": [row["sentence2"] for _, row in rows], "score": scores}
            self.dataset = datasets.DatasetDict({"test": datasets.Dataset.from_dict(columns)})
            self.data_loaded = True

    return LocalSTS()


def _clustering_task(directory: Path, name: str):
    import datasets
    from mteb.abstasks import AbsTaskClustering

    path = directory / "clustering.jsonl"
    records = list(read_records(path, required=("text", "label")))
    columns = {"sentences": [_text(path, record, "text") for record in records],
               "labels": [_label(path, record) for record in records]}
    if len(set(columns["labels"])) < 2:
        raise InputError(f"{path}: a clustering task needs at least two labels.")

    class LocalClustering(AbsTaskClustering):
        metadata = _metadata(name, "Clustering", "v_measure")
        max_fraction_of_documents_to_embed = None  # a local set is scored whole

        def load_data(self, num_proc=None, **kwargs):
            self.dataset = {"default": datasets.DatasetDict({"test": datasets.Dataset.from_dict(columns)})}
            self.data_loaded = True

    return LocalClustering()


def _classification_task(directory: Path, name: str):
    import datasets
    from mteb.abstasks import AbsTaskClassification

    path = directory / "classification.jsonl"
    splits: dict[str, dict[str, list[str]]] = {"train": {"text": [], "label": []}, "test": {"text": [], "label": []}}
    for record in read_records(path, required=("text", "label", "split")):
        split = record.fields["split"]
        if not isinstance(split, str) or split not in splits:
            raise InputError(f"{path}: {record.where} has split={_SHORT.repr(split)}; use \"train\" or \"test\" "
                             "(the classifier is fitted on the train texts and scored on the test texts).")
        splits[split]["text"].append(_text(path, record, "text"))
        splits[split]["label"].append(_label(path, record))
    train_labels = set(splits["train"]["label"])
    if len(train_labels) < 2 or not splits["test"]["text"]:
        raise InputError(f"{path}: a classification task needs train texts of at least two labels and some test "
                         f"texts; it has {len(train_labels)} train label(s) and {len(splits['test']['text'])} test "
                         "text(s).")
    unseen = sorted(set(splits["test"]["label"]) - train_labels)
    if unseen:
        raise InputError(f"{path}: test labels {unseen[:5]} have no train text; a classifier cannot predict a label "
                         "it never saw.")

    ids = {label: number for number, label in enumerate(sorted(train_labels))}  # mteb's binary metrics want 0/1
    for columns in splits.values():
        columns["label"] = [ids[label] for label in columns["label"]]

    class LocalClassification(AbsTaskClassification):
        metadata = _metadata(name, "Classification", "accuracy")

        def load_data(self, num_proc=None, **kwargs):
            self.dataset = {"default": datasets.DatasetDict({name: datasets.Dataset.from_dict(columns)
                                                             for name, columns in splits.items()})}
            self.data_loaded = True

    return LocalClassification()


def _pair_task(directory: Path, name: str):
    import datasets
    from mteb.abstasks import AbsTaskPairClassification

    path = directory / "pairs.tsv"
    rows = _rows(path, ("sentence1", "sentence2", "label"))
    labels = []
    for line, row in rows:
        if row["label"] not in ("0", "1"):
            raise InputError(f"{path}: line {line} has label {row['label']!r}; use 1 (a matching pair) or 0.")
        labels.append(int(row["label"]))
    if len(set(labels)) < 2:
        raise InputError(f"{path}: a pair classification task needs pairs labelled 1 and pairs labelled 0.")

    class LocalPairClassification(AbsTaskPairClassification):
        metadata = _metadata(name, "PairClassification", "max_ap")

        def load_data(self, num_proc=None, **kwargs):
            columns = {"sentence1": [row["sentence1"] for _, row in rows],
                       "sentence2": [row["sentence2"] for _, row in rows], "labels": labels}
            self.dataset = {"default": datasets.DatasetDict({"test": datasets.Dataset.from_dict(columns)})}
            self.data_loaded = True

    return LocalPairClassification()


# ------------------------------------------------------------------------------------------------- readers


def _by_id(path: Path) -> dict[str, Record]:
    """The records of a JSON Lines file of `_id` and `text`, by id (as text); a repeated id is an error."""
    records: dict[str, Record] = {}
    for record in read_records(path, required=("_id", "text")):
        value = record.fields["_id"]
        if not (isinstance(value, str) and value) and not (isinstance(value, int) and not isinstance(value, bool)):
            raise InputError(f"{path}: {record.where}: '_id' is {_shown(value)}; use a non-empty string or an "
                             "integer.")
        key = str(value)
        if key in records:
            raise InputError(f"{path}: {record.where} repeats the _id {key!r} of {records[key].where}; ids must be "
                             "unique (an integer and the same digits in quotes are one id, as a qrels file "
                             "names them): give one record another _id, or delete the copy.")
        records[key] = record
    return records


def _text(path: Path, record: Record, name: str, *, nullable: bool = False) -> str:
    """A text field of a JSON record: a string (or, when `nullable`, null or missing: "")."""
    value = record.fields.get(name)
    if isinstance(value, str):
        return value
    if nullable and value is None:
        return ""
    raise InputError(f"{path}: {record.where}: {name!r} is {_shown(value)}; expected a string"
                     f"{' or null' if nullable else ''}. Write the {name} in double quotes (a text is embedded as "
                     "written, never converted from another value).")


def _label(path: Path, record: Record) -> str:
    """A record's label as text: a string or an integer (1 and "1" are one label)."""
    value = record.fields["label"]
    if isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool)):
        return str(value)
    raise InputError(f"{path}: {record.where}: 'label' is {_shown(value)}; use a string or an integer.")


def _shown(value: object) -> str:
    """A JSON value for a message, in JSON's words and bounded in size."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, (int, float)):
        return f"the number {value!r}"
    return f"{'an array' if isinstance(value, list) else 'an object'} {_SHORT.repr(value)}"


def _rows(path: Path, header: tuple[str, ...]) -> list[tuple[int, dict]]:
    """(line number, row) of a tab-separated file whose header names at least `header`."""
    return [(record.number, record.fields) for record in read_records(path, required=header)]


def _qrels(path: Path, query_ids: set[str], document_ids: set[str]) -> dict[str, dict[str, int]]:
    qrels: dict[str, dict[str, int]] = {}
    lines: dict[tuple[str, str], int] = {}
    for line, row in _rows(path, ("query-id", "corpus-id", "score")):
        query, document = row["query-id"], row["corpus-id"]
        if query not in query_ids or document not in document_ids:
            unknown = f"query {query!r}" if query not in query_ids else f"document {document!r}"
            raise InputError(f"{path}: line {line} names the {unknown}, which the task does not have.")
        if (query, document) in lines:
            raise InputError(f"{path}: line {line} judges the query {query!r} and the document {document!r} again "
                             f"(line {lines[query, document]} did); keep one line per pair.")
        lines[query, document] = line
        qrels.setdefault(query, {})[document] = _grade(row["score"], path, line)
    if not qrels:
        raise InputError(f"{path}: no relevance judgement; add lines query-id<TAB>corpus-id<TAB>score.")
    return qrels


def _grade(text: str, path: Path, line: int) -> int:
    """A qrels score: a whole number (`2`, `2.0`), never rounded, within +-MAX_GRADE."""
    value = _number(text, path, line)
    if not value.is_integer() or abs(value) > MAX_GRADE:
        raise InputError(f"{path}: line {line}: the score {text!r} is not a relevance grade; use a whole number from "
                         f"-{MAX_GRADE} to {MAX_GRADE} (0 not relevant, 1 relevant, higher more relevant).")
    return int(value)


def _number(text: str, path: Path, line: int) -> float:
    try:
        value = float(text)
    except ValueError as err:
        raise InputError(f"{path}: line {line}: {text!r} is not a number.") from err
    if not math.isfinite(value):
        raise InputError(f"{path}: line {line}: {text!r} is not a finite number; write the score as a number.")
    return value


def _check_sts_scores(scores: list[float], path: Path) -> None:
    """STS is scored by rank correlation with the scores, which mteb first scales by their range."""
    low, high = min(scores), max(scores)
    if low == high:
        held = "one pair" if len(scores) == 1 else f"{len(scores)} pairs, all with the score {low:g}"
        raise InputError(f"{path}: {held}; a correlation with the scores needs pairs with different scores. Add "
                         "pairs, or check the score column.")
    if not math.isfinite(high - low):
        raise InputError(f"{path}: the scores run from {low:g} to {high:g}, a range too wide to scale; rescale them "
                         "(for example to 0-5).")


def _flag(record: Record, name: str, path: Path) -> bool:
    value = record.fields.get(name, False)
    if not isinstance(value, bool):
        raise InputError(f"{path}: {record.where}: document {record.fields.get('_id')!r} has {name}="
                         f"{_SHORT.repr(value)}; use true or false.")
    return value
