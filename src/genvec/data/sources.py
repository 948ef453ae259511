"""Query sources: the unlabeled prompts the backbone answers to make its own training data (paper section 4).

`read_queries` reads JSONL/JSON, CSV/TSV, plain text (one query per line), Parquet, or a Hugging Face dataset (hub
id or local directory). Each query keeps a stable id: its 0-based row in the source, counting skipped rows, so the
same file always gives the same ids and shards of a generation run can be put back in order. Empty and duplicate
queries are skipped and counted. Reading is `data/records.py`'s: every problem names the file, the line or row, and
what was expected.

What it does not do: filter multi-turn conversations or apply chat templates (generation does that), or download
anything by itself (Hugging Face datasets go through `datasets.load_dataset`, behind the `data` extra).
"""

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from genvec.data.records import Records, open_records
from genvec.errors import InputError, check_positive_int

logger = logging.getLogger(__name__)

# Fields tried, in order, when no query field is named.
QUERY_FIELDS = ("query", "question", "prompt")
NAME_THE_FIELD = "Name the field that holds the query (field=..., or data.query_field in a config)."


@dataclass(frozen=True)
class SourceSummary:
    """What reading a source found: rows read, queries kept, and rows skipped as empty or duplicate."""

    source: str
    rows: int
    queries: int
    empty: int
    duplicates: int


@dataclass(frozen=True)
class QuerySet:
    """Queries in source order with their stable ids (0-based source rows), and what was skipped."""

    ids: list[int]
    queries: list[str]
    summary: SourceSummary

    def __len__(self) -> int:
        return len(self.queries)


def read_queries(
    source: str | Path, *, field: str | None = None, split: str = "train", limit: int | None = None
) -> QuerySet:
    """Read the queries of a file or dataset, skipping (and counting) empty and duplicate ones.

    Args:
        source: a `.jsonl`/`.ndjson`/`.json`, `.csv`, `.tsv`, `.txt` or `.parquet` file, or a Hugging Face dataset
            (hub id, or a local directory saved with `save_to_disk` or holding data files).
        field: the field or column holding the query; None tries `query`, `question` then `prompt`.
            Text files hold one query per line and take no field.
        split: the split of a Hugging Face dataset.
        limit: stop after this many kept queries; None reads everything.

    Returns:
        A `QuerySet`; queries are stripped of surrounding white space.

    Raises:
        InputError: the source is missing, unreadable, not what its name says, lacks the field, or a row holds a
            value that is not a string.

    Example:
        >>> queries = read_queries("prompts.jsonl", field="question", limit=1000)
        >>> queries.summary.duplicates
    """
    if limit is not None:
        check_positive_int(limit, "limit")
    records = open_records(source, split=split, text_field=field or QUERY_FIELDS[0])
    if records.format == "text" and field is not None:
        raise InputError(f"{records.name}: a text file holds one query per line and has no fields; do not pass a "
                         f"field (got {field!r}), or use .jsonl/.csv for records.")
    return _collect(str(source), _query_rows(records, field), limit)


def queries_from_texts(texts: Sequence[str], source: str = "<list>") -> QuerySet:
    """A `QuerySet` from strings given in code, with the same skipping rules as files."""
    if isinstance(texts, str) or not isinstance(texts, Sequence):
        raise InputError(f"queries must be a list of strings or a source path, got {type(texts).__name__}.")

    def rows() -> Iterator[tuple[str, object]]:
        for index, text in enumerate(texts):
            yield f"item {index}", text

    return _collect(source, rows(), None)


# ---------------------------------------------------------------------------------------------- collecting


def _query_rows(records: Records, field: str | None) -> Iterator[tuple[str, object]]:
    """(where, value) of every record's query field: `field`, or the first of QUERY_FIELDS the source has."""
    if field is None:
        if records.columns is not None:
            field = _find_field(records.name, records.columns_where, records.columns)
        elif (first := records.first()) is not None:
            field = _find_field(records.name, first.where, list(first.fields))
        else:
            return  # an empty source: no field to find, no query
    for record in records.read((field,), columns=(field,), fix=NAME_THE_FIELD):
        yield record.where, record.fields[field]


def _collect(source: str, rows: Iterator[tuple[str, object]], limit: int | None) -> QuerySet:
    """Turn (where, value) rows into a QuerySet: strip, skip empty and duplicate values, stop at `limit`."""
    ids, queries, seen = [], [], set()
    empty = duplicates = count = 0
    for index, (where, value) in enumerate(rows):
        count = index + 1
        if value is None:
            empty += 1
            continue
        if not isinstance(value, str):
            raise InputError(
                f"{source}: {where} holds a {type(value).__name__} ({value!r:.60}); expected the query as a string."
            )
        text = value.strip()
        if not text:
            empty += 1
        elif text in seen:
            duplicates += 1
        else:
            seen.add(text)
            ids.append(index)
            queries.append(text)
            if limit is not None and len(queries) >= limit:
                break
    summary = SourceSummary(source, count, len(queries), empty, duplicates)
    logger.info("read %d queries from %s (%d rows, %d empty, %d duplicate)", len(queries), source, count, empty,
                duplicates)
    return QuerySet(ids, queries, summary)




def _find_field(source: str, where: str, names: Sequence[str]) -> str:
    for candidate in QUERY_FIELDS:
        if candidate in names:
            return candidate
    raise InputError(
        f"{source}: {where} has no query field; found {', '.join(map(repr, names)) or 'none'}, looked for "
        f"{', '.join(map(repr, QUERY_FIELDS))}. {NAME_THE_FIELD}"
    )
