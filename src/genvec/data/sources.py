"""Query sources: the unlabeled prompts the backbone answers to make its own training data (paper section 4).

`read_queries` reads JSONL/JSON, CSV/TSV, plain text (one query per line), Parquet, or a Hugging Face dataset (hub
id or local directory). Each query keeps a stable id: its 0-based row in the source, counting skipped rows, so the
same file always gives the same ids and shards of a generation run can be put back in order. Empty and duplicate
queries are skipped and counted. Every problem names the file, the line or row, and what was expected.

What it does not do: filter multi-turn conversations or apply chat templates (generation does that), or download
anything by itself (Hugging Face datasets go through `datasets.load_dataset`, behind the `data` extra).
"""

import csv
import json
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from genvec.errors import InputError

logger = logging.getLogger(__name__)

# Fields tried, in order, when no query field is named.
QUERY_FIELDS = ("query", "question", "prompt")
TEXT_SUFFIXES = (".txt",)
JSON_SUFFIXES = (".jsonl", ".ndjson", ".json")
TABLE_SUFFIXES = {".csv": ",", ".tsv": "\t"}
PARQUET_SUFFIXES = (".parquet",)
SUPPORTED = ".jsonl, .ndjson, .json, .csv, .tsv, .txt, .parquet, or a Hugging Face dataset (hub id or directory)"


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
    if limit is not None and (not isinstance(limit, int) or limit < 1):
        raise InputError(f"limit must be a positive integer or None, got {limit!r}.")
    path = Path(source)
    if path.is_file():
        rows = _file_rows(path, field)
    elif path.is_dir() or _looks_like_hub_id(str(source)):
        rows = _dataset_rows(str(source), field, split)
    else:
        raise InputError(f"query source {str(source)!r} does not exist; pass a file ({SUPPORTED}).")
    return _collect(str(source), rows, limit)


def queries_from_texts(texts: Sequence[str], source: str = "<list>") -> QuerySet:
    """A `QuerySet` from strings given in code, with the same skipping rules as files."""
    if isinstance(texts, str) or not isinstance(texts, Sequence):
        raise InputError(f"queries must be a list of strings or a source path, got {type(texts).__name__}.")

    def rows() -> Iterator[tuple[str, object]]:
        for index, text in enumerate(texts):
            yield f"item {index}", text

    return _collect(source, rows(), None)


# ---------------------------------------------------------------------------------------------- collecting


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


# ---------------------------------------------------------------------------------------------- files


def _file_rows(path: Path, field: str | None) -> Iterator[tuple[str, object]]:
    suffix = path.suffix.lower()
    if suffix in TEXT_SUFFIXES:
        if field is not None:
            raise InputError(f"{path}: a text file holds one query per line and has no fields; do not pass a field "
                             f"(got {field!r}), or use .jsonl/.csv for records.")
        return _text_rows(path)
    if suffix in JSON_SUFFIXES:
        return _json_rows(path, field)
    if suffix in TABLE_SUFFIXES:
        return _table_rows(path, field, TABLE_SUFFIXES[suffix])
    if suffix in PARQUET_SUFFIXES:
        return _parquet_rows(path, field)
    raise InputError(f"{path}: unknown file type {suffix or '(no extension)'!r}; use {SUPPORTED}.")


def _text_lines(path: Path) -> Iterator[tuple[int, str]]:
    """(1-based line number, line) of a UTF-8 file; a byte that is not UTF-8 is an error naming its line."""
    try:
        file = open(path, "rb")
    except OSError as err:
        raise InputError(f"{path}: cannot be read ({err.strerror}); check the path and its permissions.") from err
    with file:
        for number, raw in enumerate(file, 1):
            if number == 1 and raw.startswith(b"\xef\xbb\xbf"):
                raw = raw[3:]  # a UTF-8 byte-order mark is not part of the first query or header
            try:
                yield number, raw.decode("utf-8")
            except UnicodeDecodeError as err:
                raise InputError(
                    f"{path}: line {number} is not UTF-8 text ({err.reason} at byte {err.start}); expected a "
                    f"{path.suffix or 'text'} file of UTF-8 text. Is it a binary file with the wrong extension?"
                ) from err


def _text_rows(path: Path) -> Iterator[tuple[str, object]]:
    for number, line in _text_lines(path):
        if "\x00" in line:
            raise InputError(f"{path}: line {number} holds NUL bytes; expected plain text, one query per line.")
        # A line with carriage returns inside was written with old Mac line endings (CR alone): each is a line.
        for part in line.rstrip("\r\n").split("\r"):
            yield f"line {number}", part


def _json_rows(path: Path, field: str | None) -> Iterator[tuple[str, object]]:
    if path.suffix.lower() == ".json":
        whole = _whole_json(path)
        if whole is not None:  # one JSON document (an array of records, or a single record), however laid out
            yield from _json_array_rows(path, whole if isinstance(whole, list) else [whole], field)
            return
    chosen = field
    for number, line in _text_lines(path):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise InputError(
                f"{path}: line {number} is not valid JSON ({err.msg} at column {err.colno}); expected one JSON "
                "object per line (JSON Lines)."
            ) from err
        chosen = _check_record(path, f"line {number}", record, chosen)
        yield f"line {number}", record.get(chosen) if isinstance(record, dict) else record


def _whole_json(path: Path) -> object | None:
    """The document of a .json file that is one JSON value, or None (then it is read as JSON Lines)."""
    text = "".join(line for _, line in _text_lines(path))
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        if text.lstrip().startswith("["):
            raise InputError(f"{path}: not valid JSON ({err.msg} at line {err.lineno}); expected a JSON array.") from err
        return None  # several documents, one per line, or broken: the JSON Lines reader names the line


def _json_array_rows(path: Path, records: list, field: str | None) -> Iterator[tuple[str, object]]:
    chosen = field
    for index, record in enumerate(records):
        chosen = _check_record(path, f"item {index}", record, chosen)
        yield f"item {index}", record.get(chosen) if isinstance(record, dict) else record


def _check_record(path: Path, where: str, record: object, field: str | None) -> str | None:
    """The field to read from `record` (chosen on the first record); strings are accepted as bare queries."""
    if isinstance(record, str) and field is None:
        return None
    if not isinstance(record, dict):
        raise InputError(
            f"{path}: {where} is a JSON {type(record).__name__}; expected an object with a query field"
            f"{f' {field!r}' if field else ''}."
        )
    chosen = field or _find_field(path, where, list(record))
    if chosen not in record:
        raise InputError(f"{path}: {where} has no field {chosen!r}; its fields are {', '.join(map(repr, record))}.")
    return chosen


def _pick_column(source: Path | str, where: str, field: str | None, names: list[str]) -> str:
    """`field` if the table has it, else (no field named) the first of QUERY_FIELDS; errors name `source`, `where`."""
    if field is None:
        return _find_field(source, where, names)
    if field not in names:
        raise InputError(f"{source}: no column {field!r}; {where} has {', '.join(map(repr, names))}.")
    return field


def _find_field(path: Path | str, where: str, names: list[str]) -> str:
    for candidate in QUERY_FIELDS:
        if candidate in names:
            return candidate
    raise InputError(
        f"{path}: {where} has no query field; found {', '.join(map(repr, names)) or 'none'}, looked for "
        f"{', '.join(map(repr, QUERY_FIELDS))}. Name the field (--data.query_field / field=...)."
    )


def _table_rows(path: Path, field: str | None, delimiter: str) -> Iterator[tuple[str, object]]:
    lines = (line for _, line in _text_lines(path))
    # TSV has no quoting: a quote is part of the text and a row ends at its line end (CSV keeps its quoting rules).
    quoting = csv.QUOTE_NONE if delimiter == "\t" else csv.QUOTE_MINIMAL
    reader = csv.reader(lines, delimiter=delimiter, quoting=quoting)
    try:
        header = next(reader, None)
        if header is None:
            return
        column = header.index(_pick_column(path, "the header (line 1)", field, header))
        for row in reader:
            where = f"line {reader.line_num}"
            if not row:
                continue
            if len(row) != len(header):
                hint = "" if quoting == csv.QUOTE_NONE else (
                    " If an earlier line opens a double quote it never closes, every line up to here was read as "
                    "one field: close the quote, or double the quote characters inside the text."
                )
                raise InputError(
                    f"{path}: {where} has {len(row)} columns, the header has {len(header)}; expected "
                    f"{'tab' if delimiter == chr(9) else 'comma'}-separated values with one header line.{hint}"
                )
            yield where, row[column]
    except csv.Error as err:
        raise InputError(f"{path}: line {reader.line_num} is not valid CSV ({err}).") from err


def _parquet_rows(path: Path, field: str | None) -> Iterator[tuple[str, object]]:
    pyarrow_parquet = _import_optional("pyarrow.parquet", "Parquet files")
    import pyarrow

    try:
        table_file = pyarrow_parquet.ParquetFile(path)
    except (pyarrow.ArrowInvalid, OSError) as err:
        raise InputError(f"{path}: not a Parquet file ({err}); expected Apache Parquet, as the name says.") from err
    column = _pick_column(path, "the schema", field, table_file.schema_arrow.names)
    row = 0
    for batch in table_file.iter_batches(columns=[column], batch_size=4096):
        for value in batch.column(0).to_pylist():
            yield f"row {row}", value
            row += 1


# ---------------------------------------------------------------------------------------------- datasets


def _looks_like_hub_id(source: str) -> bool:
    """`name` or `org/name` not ending in a file extension we read: worth asking the Hugging Face hub (or its cache)."""
    parts = source.split("/")
    known = (*TEXT_SUFFIXES, *JSON_SUFFIXES, *TABLE_SUFFIXES, *PARQUET_SUFFIXES)
    return 1 <= len(parts) <= 2 and all(parts) and Path(source).suffix.lower() not in known and source[0] != "."


def _dataset_rows(source: str, field: str | None, split: str) -> Iterator[tuple[str, object]]:
    dataset = _load_dataset(source, split)
    column = _pick_column(f"dataset {source!r}", f"split {split!r}", field, list(dataset.column_names))
    row = 0
    for batch in dataset.select_columns([column]).iter(batch_size=4096):
        for value in batch[column]:
            yield f"row {row}", value
            row += 1


def _load_dataset(source: str, split: str):
    datasets = _import_optional("datasets", "Hugging Face datasets")
    path = Path(source)
    try:
        if path.is_dir() and ((path / "state.json").is_file() or (path / "dataset_dict.json").is_file()):
            loaded = datasets.load_from_disk(source)
            if isinstance(loaded, datasets.DatasetDict):
                if split not in loaded:
                    raise InputError(f"dataset {source!r} has no split {split!r}; its splits are "
                                     f"{', '.join(map(repr, loaded))}.")
                loaded = loaded[split]
            return loaded
        return datasets.load_dataset(source, split=split)
    except InputError:
        raise
    except Exception as err:  # datasets raises many unrelated types (hub, file, split and schema errors)
        raise InputError(
            f"could not load the query dataset {source!r} (split {split!r}): {type(err).__name__}: {err}\n"
            f"Pass a local file ({SUPPORTED}); hub datasets need internet access or a filled cache."
        ) from err


def _import_optional(module: str, what: str):
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError as err:
        message = f"reading {what} needs the optional `data` dependencies; run `pip install genvec[data]`."
        raise InputError(message) from err
